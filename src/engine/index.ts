/**
 * The engine's whole public surface. Pure TypeScript: no DOM, no Node, no React; storage
 * arrives as a BlockDevice.
 */
export type { BlockDevice, WritableBlockDevice } from './device.js'
export { isWritable } from './device.js'
export * from './errors.js'
export { openImage, findBitmap } from './image.js'
export type { Image, Bitmap, BitmapStatus, OpenOptions } from './image.js'
export type { Header } from './qcow2/header.js'
export * as constants from './qcow2/constants.js'
export { BitmapReader } from './qcow2/bitmaps/data.js'
export type { Progress, ScanOptions, ReaderOptions } from './qcow2/bitmaps/data.js'
export { extentPage, extentsInRange, allExtents } from './analysis/extents.js'
export type { Extent } from './analysis/extents.js'
export { heatmap, cellBoundaries } from './analysis/heatmap.js'
export { bitmapSha256, digestLength } from './analysis/digest.js'
export { Sha256, sha256Hex } from './analysis/sha256.js'
export { humanBytes, humanAndExact, parseSize, hex } from './analysis/units.js'
export { displayName, encodeName } from './names.js'
export {
  defaultGranularity, expectedTableSize, bitmapBits, checkNewName,
} from './qcow2/bitmaps/constraints.js'
export { describeImage } from './describe.js'
export type { ImageSummary, BitmapSummary } from './describe.js'
export * from './edits/index.js'
export { combineExtents, heatmapFromExtents, SET_OPS } from './analysis/algebra.js'
export type { SetOp } from './analysis/algebra.js'
export { parseCheckpointXml, crossCheck, pickDisk } from './analysis/checkpoints.js'
export type { Checkpoint, CheckpointDisk, CheckpointReport, CheckpointFinding, CheckpointState } from './analysis/checkpoints.js'
export { checkImage } from './check/check.js'
export type { CheckReport, CheckOptions, CheckPhase, CheckFinding, FindingKind } from './check/check.js'
export { AllocationMap, allocationCells, splitByAllocation, kindOf } from './analysis/allocation.js'
export type { AllocRun, AllocKind, AllocationCells, DirtySplit } from './analysis/allocation.js'
