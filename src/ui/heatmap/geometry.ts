/**
 * Heatmap geometry: the maths between byte offsets on the virtual disk, pixels on the canvas
 * and heatmap cells. Pure functions, unit-tested; components only call them.
 *
 * A view is a byte range [start, end) of the disk. Cell i of N over a view covers
 * [start + floor(i*len/N), start + floor((i+1)*len/N)), exactly as the engine's `heatmap`
 * cuts it, so the range a tooltip shows is the range the dirty count was computed for.
 */

/** A byte range [start, end) of the virtual disk. */
export interface View {
  start: number
  end: number
}

/** The deepest zoom shows this many granules across the whole width. */
export const MIN_GRANULES = 8

/** Bytes a view spans. */
export function viewSpan(v: View): number {
  return v.end - v.start
}

/** The whole disk. */
export function fullView(diskLength: number): View {
  return { start: 0, end: diskLength }
}

/**
 * Make a view valid: inside [0, diskLength), at least MIN_GRANULES granules wide (or the whole
 * disk), with both ends on granule boundaries (the end may be the disk's end), keeping the
 * requested span when it has to be moved back inside the disk.
 */
export function clampView(v: View, diskLength: number, granularity: number): View {
  if (diskLength <= 0) return { start: 0, end: 0 }
  const g = Math.max(1, granularity)
  const minSpan = Math.min(diskLength, g * MIN_GRANULES)
  const want = Number.isFinite(v.end - v.start) ? v.end - v.start : diskLength
  const span = Math.min(diskLength, Math.max(minSpan, Math.ceil(want / g) * g))
  let start = Math.min(Math.max(0, v.start), diskLength - span)
  start = Math.floor(start / g) * g
  // start is a granule multiple and span one too (or the whole disk), so end is on a boundary.
  return { start, end: Math.min(diskLength, start + span) }
}

/** Zoom by `factor` (< 1 zooms in) keeping byte `anchor` under the same pixel. */
export function zoomView(v: View, factor: number, anchor: number, diskLength: number, granularity: number): View {
  const span = viewSpan(v)
  const newSpan = Math.max(1, Math.round(span * factor))
  const a = Math.min(Math.max(anchor, v.start), v.end)
  const frac = span > 0 ? (a - v.start) / span : 0
  const start = Math.round(a - frac * newSpan)
  return clampView({ start, end: start + newSpan }, diskLength, granularity)
}

/** Move the view by `delta` bytes (positive: towards the end of the disk), keeping its span. */
export function panView(v: View, delta: number, diskLength: number, granularity: number): View {
  return clampView({ start: v.start + delta, end: v.end + delta }, diskLength, granularity)
}

/** A view that shows [offset, offset+length) with `margin` of its length on each side. */
export function viewAround(offset: number, length: number, diskLength: number, granularity: number, margin = 0.25): View {
  const pad = Math.round(length * margin)
  return clampView({ start: offset - pad, end: offset + length + pad }, diskLength, granularity)
}

/** Pixel x (0..width) of byte `offset`. */
export function offsetToX(offset: number, v: View, width: number): number {
  const span = viewSpan(v)
  return span > 0 ? ((offset - v.start) / span) * width : 0
}

/** Byte under pixel x, clamped to the view. */
export function xToOffset(x: number, v: View, width: number): number {
  const span = viewSpan(v)
  if (span <= 0 || width <= 0) return v.start
  const o = v.start + Math.floor((x / width) * span)
  return Math.min(Math.max(o, v.start), v.end - 1)
}

/** Start of cell i of `cells` over [start, end): exact even when i*len passes 2^53. */
export function cellBoundary(start: number, end: number, cells: number, i: number): number {
  const len = end - start
  if (Number.isSafeInteger(len * i)) return start + Math.floor((i * len) / cells)
  return start + Number((BigInt(i) * BigInt(len)) / BigInt(cells))
}

/** The byte range of cell i. */
export function cellRange(v: View, cells: number, i: number): { offset: number; length: number } {
  const a = cellBoundary(v.start, v.end, cells, i)
  const b = cellBoundary(v.start, v.end, cells, i + 1)
  return { offset: a, length: b - a }
}

/** The cell under pixel x when `cells` cells fill `width` pixels. */
export function cellAtX(x: number, width: number, cells: number): number {
  if (width <= 0 || cells <= 0) return 0
  return Math.min(cells - 1, Math.max(0, Math.floor((x * cells) / width)))
}

/** Left and right pixel edges of cell i, rounded so neighbouring cells share an edge. */
export function cellPixels(i: number, cells: number, width: number): [number, number] {
  return [Math.round((i * width) / cells), Math.round(((i + 1) * width) / cells)]
}

/** The cell that holds byte `offset` (inverse of cellRange). */
export function cellOfOffset(offset: number, v: View, cells: number): number {
  const span = viewSpan(v)
  if (span <= 0) return 0
  // floor((i+1)*len/N) > offset-start  ⇔  i ≥ ceil(((offset-start+1)*N)/len) - 1
  let i = Math.min(cells - 1, Math.max(0, Math.floor(((offset - v.start) * cells) / span)))
  while (i > 0 && cellBoundary(v.start, v.end, cells, i) > offset) i--
  while (i < cells - 1 && cellBoundary(v.start, v.end, cells, i + 1) <= offset) i++
  return i
}

// The heatmap request (which cells to ask the engine for) is the engine's own arithmetic, so the
// benchmarks measure what the page asks: INDEX_BLOCK_BITS granules per index block.
export { BLOCK_BITS as INDEX_BLOCK_BITS, cellsFor, heatRequest } from '../../engine/shared.js'

/** A ruler tick: its byte offset, its x and its label. */
export interface Tick {
  offset: number
  x: number
  label: string
}

const UNITS: Array<[number, string]> = [
  [2 ** 60, 'EiB'], [2 ** 50, 'PiB'], [2 ** 40, 'TiB'], [2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB'], [1, 'B'],
]

/** A tick label: the largest binary unit that writes `offset` with at most two decimals. */
export function tickLabel(offset: number): string {
  if (offset === 0) return '0'
  for (const [size, name] of UNITS) {
    if (offset < size) continue
    const hundredths = (offset / size) * 100
    if (Number.isInteger(hundredths) || size === 1) {
      const v = offset / size
      return `${Number.isInteger(v) ? v : v.toFixed(2).replace(/0$/, '')} ${name}`
    }
  }
  return `${offset} B`
}

/** Ruler ticks: power-of-two steps at least `minSpacingPx` apart, labelled in binary units. */
export function rulerTicks(v: View, widthPx: number, minSpacingPx = 90): Tick[] {
  const span = viewSpan(v)
  if (span <= 0 || widthPx <= 0) return []
  const minStep = (span * minSpacingPx) / widthPx
  let step = 1
  while (step < minStep) step *= 2
  const out: Tick[] = []
  for (let o = Math.ceil(v.start / step) * step; o <= v.end; o += step) {
    out.push({ offset: o, x: offsetToX(o, v, widthPx), label: tickLabel(o) })
    if (out.length > 1000) break
  }
  return out
}

/** Zoom level as "×N" relative to the whole disk, for display. */
export function zoomFactor(v: View, diskLength: number): number {
  const span = viewSpan(v)
  return span > 0 ? diskLength / span : 1
}

/** Counts over cells: `cells` cells over the byte range `view` (HeatData, OverlayData, AlgebraHeat). */
export interface CellsOver {
  view: View
  cells: number
}

/**
 * The cell under pixel x of a strip `width` pixels wide showing `shown`, and its bytes clipped
 * to the disk. Cells computed for exactly the shown view map pixels to cells directly; wider
 * (block-aligned) cells are found by the byte under the pixel.
 */
export function cellUnderX(x: number, width: number, shown: View, c: CellsOver, diskLength: number): { index: number; offset: number; length: number } {
  const same = c.view.start === shown.start && c.view.end === shown.end
  const index = same ? cellAtX(x, width, c.cells) : cellOfOffset(xToOffset(x, shown, width), c.view, c.cells)
  const r = cellRange(c.view, c.cells, index)
  return { index, offset: r.offset, length: Math.max(0, Math.min(r.offset + r.length, diskLength) - r.offset) }
}

/** The cells whose bytes meet [from, to) of the disk: [first, last) indexes. */
export function cellsMeeting(c: CellsOver, from: number, to: number, diskLength: number): { first: number; last: number } {
  if (to <= from) return { first: 0, last: 0 }
  return { first: cellOfOffset(from, c.view, c.cells), last: cellOfOffset(Math.max(from, Math.min(to, diskLength) - 1), c.view, c.cells) + 1 }
}
