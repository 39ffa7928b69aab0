/**
 * The part of the engine the page loads itself: functions of plain data that must say the same
 * words on both sides of the session (what an edit does, sizes in human units, which heatmap
 * cells to ask for). Everything else
 * reaches the page through the session's API. Nothing reachable from here reads an image
 * (dependency-cruiser holds this file to that: .dependency-cruiser.cjs).
 */
export { describeEdit } from './edits/kinds/index.js'
export { humanBytes, hex } from './analysis/units.js'
export { defaultGranularity } from './qcow2/bitmaps/constraints.js'
export { BLOCK_BITS } from './qcow2/bitmaps/data/bits.js'
export { cellsFor, heatRequest } from './analysis/heat-request.js'
