/**
 * The 2-D map's geometry: the virtual disk cut into cells of `cellBytes` from byte `start`,
 * laid out on a canvas row after row (or along Hilbert squares), each cell a square of `cellPx`
 * device pixels. Pure functions, unit-tested; the map's components and store only call them.
 *
 * Cell i covers [start + i·cellBytes, start + (i+1)·cellBytes), clipped to the disk: every
 * cell is one contiguous byte range, and the same range the engine counted (the map asks
 * `heatmap` for `count` cells over [start, start + count·cellBytes), whose boundaries are then
 * exactly i·cellBytes). Cell sizes are whole granules, and whole index blocks (4096 granules)
 * once a cell spans a block, with `start` a multiple of the cell size: then every boundary of a
 * wide view is a block edge, which the engine answers from the scan's block index without
 * reading bitmap data.
 */
import { BLOCK_BITS } from '../../../engine/shared.js'
import { hilbertDistance, hilbertPoint } from './hilbert.js'

/** Bits per block of the engine's block index (BitmapReader): counts at block edges cost no read. */
export const BLOCK_GRANULES = BLOCK_BITS

/** How cells follow each other on the canvas. */
export type MapOrder = 'rows' | 'hilbert'

/** What the map shows (the store keeps it): cells of `cellBytes` from `start`, `cellPx` wide. */
export interface MapView {
  start: number
  cellBytes: number
  /** side of a cell in device pixels */
  cellPx: number
  /** the view fits the whole disk (kept when the canvas is resized) */
  whole: boolean
}

/** A canvas (one pane) in device pixels, and the smallest cell side it allows. */
export interface MapCanvas {
  width: number
  height: number
  /** smallest cell side in device pixels (one CSS pixel: devicePixelRatio, rounded) */
  minPx: number
}

/** The grid a view makes on a canvas. */
export interface MapGrid {
  start: number
  cellBytes: number
  cellPx: number
  order: MapOrder
  cols: number
  rows: number
  /** Hilbert squares' side in cells (order 'hilbert'), else 1 */
  tile: number
  /** squares across (order 'hilbert'), else cols */
  tilesAcross: number
  /** cells the grid can hold */
  capacity: number
  /** cells holding disk bytes: from start towards the disk's end, at most capacity */
  count: number
  diskLength: number
}

/** Largest cell side a zoom reaches, in CSS pixels (times minPx). */
export const MAX_CELL_CSS_PX = 32

/**
 * A cell size allowed for `want` bytes: at least one granule, whole granules, and whole index
 * blocks from one block up. `round` 'up' gives the smallest allowed size ≥ want, 'down' the
 * largest ≤ want (never below one granule).
 */
export function allowedCellBytes(want: number, granularity: number, round: 'up' | 'down' = 'up'): number {
  const g = Math.max(1, granularity)
  const block = g * BLOCK_GRANULES
  const f = round === 'up' ? Math.ceil : Math.floor
  if (want <= g) return g
  if (want < block) return Math.max(g, f(want / g) * g)
  const blocks = f(want / block)
  return blocks >= 1 ? blocks * block : Math.max(g, Math.floor(want / g) * g)
}

function hilbertTile(cols: number, rows: number): number {
  // The largest power-of-two square that keeps at least 85% of the row-order capacity.
  const full = cols * rows
  let best = 1
  for (let t = 2; t <= Math.min(cols, rows); t *= 2) {
    if (Math.floor(cols / t) * Math.floor(rows / t) * t * t >= 0.85 * full) best = t
  }
  return best
}

/** Columns, rows and capacity of cells of `cellPx` on `canvas` in `order`. */
export function gridShape(canvas: MapCanvas, cellPx: number, order: MapOrder): { cols: number; rows: number; tile: number; tilesAcross: number; capacity: number } {
  const s = Math.max(1, Math.floor(cellPx))
  const cols = Math.max(1, Math.floor(canvas.width / s))
  const rows = Math.max(1, Math.floor(canvas.height / s))
  if (order === 'rows') return { cols, rows, tile: 1, tilesAcross: cols, capacity: cols * rows }
  const tile = hilbertTile(cols, rows)
  const tilesAcross = Math.floor(cols / tile)
  return { cols: tilesAcross * tile, rows: Math.floor(rows / tile) * tile, tile, tilesAcross, capacity: tilesAcross * Math.floor(rows / tile) * tile * tile }
}

/** The grid of `view` on `canvas`. */
export function layoutMap(view: MapView, canvas: MapCanvas, order: MapOrder, diskLength: number): MapGrid {
  const shape = gridShape(canvas, view.cellPx, order)
  const left = Math.max(0, diskLength - view.start)
  const count = Math.min(shape.capacity, Math.ceil(left / view.cellBytes))
  return { start: view.start, cellBytes: view.cellBytes, cellPx: Math.max(1, Math.floor(view.cellPx)), order, ...shape, count, diskLength }
}

/**
 * The view that shows the whole disk: the smallest allowed cells that fit it at the smallest
 * cell side, and when the disk has fewer granules than the canvas has cells, granule cells as
 * large as still fit.
 */
export function fitWhole(canvas: MapCanvas, order: MapOrder, diskLength: number, granularity: number): MapView {
  const minPx = Math.max(1, canvas.minPx)
  const cap = gridShape(canvas, minPx, order).capacity
  const cellBytes = allowedCellBytes(Math.ceil(Math.max(1, diskLength) / cap), granularity, 'up')
  let cellPx = minPx
  if (cellBytes === Math.max(1, granularity)) {
    const n = Math.ceil(diskLength / cellBytes)
    const max = minPx * MAX_CELL_CSS_PX
    while (cellPx < max && gridShape(canvas, cellPx + 1, order).capacity >= n) cellPx++
  }
  return { start: 0, cellBytes, cellPx, whole: true }
}

/** The largest start that still fills the grid up to the disk's end (0 when the rest fits). */
function maxStart(canvas: MapCanvas, order: MapOrder, cellBytes: number, cellPx: number, diskLength: number): number {
  const cap = gridShape(canvas, cellPx, order).capacity
  const over = diskLength - cap * cellBytes
  return over <= 0 ? 0 : Math.ceil(over / cellBytes) * cellBytes
}

/** Make a view valid on `canvas`: start a multiple of the cell size, inside [0, maxStart]. */
export function clampMapView(v: MapView, canvas: MapCanvas, order: MapOrder, diskLength: number, granularity: number): MapView {
  if (v.whole) return fitWhole(canvas, order, diskLength, granularity)
  const whole = fitWhole(canvas, order, diskLength, granularity)
  const cellBytes = Math.min(allowedCellBytes(v.cellBytes, granularity, 'up'), whole.cellBytes)
  const minPx = Math.max(1, canvas.minPx)
  const cellPx = Math.min(minPx * MAX_CELL_CSS_PX, Math.max(minPx, Math.floor(v.cellPx)))
  let start = Math.floor(Math.max(0, v.start) / cellBytes) * cellBytes
  start = Math.min(start, maxStart(canvas, order, cellBytes, cellPx, diskLength))
  return { start, cellBytes, cellPx, whole: false }
}

/** Cell index at cell coordinates (col, row), or -1 outside the grid. */
export function indexAt(g: MapGrid, col: number, row: number): number {
  if (col < 0 || row < 0 || col >= g.cols || row >= g.rows) return -1
  if (g.order === 'rows') return row * g.cols + col
  const t = g.tile
  const tx = Math.floor(col / t)
  const ty = Math.floor(row / t)
  return (ty * g.tilesAcross + tx) * t * t + hilbertDistance(t, col - tx * t, row - ty * t)
}

/** Cell coordinates of index i (0 ≤ i < capacity). */
export function cellXY(g: MapGrid, i: number): { col: number; row: number } {
  if (g.order === 'rows') return { col: i % g.cols, row: Math.floor(i / g.cols) }
  const t = g.tile
  const tileIndex = Math.floor(i / (t * t))
  const p = hilbertPoint(t, i - tileIndex * t * t)
  return { col: (tileIndex % g.tilesAcross) * t + p.x, row: Math.floor(tileIndex / g.tilesAcross) * t + p.y }
}

/**
 * Pixel offsets (x + y·width, top-left of each cell) of every cell in order, for painting;
 * computed once per grid shape.
 */
export function cellOrigins(g: MapGrid, width: number): Uint32Array {
  const out = new Uint32Array(g.capacity)
  const s = g.cellPx
  if (g.order === 'rows') {
    let i = 0
    for (let r = 0; r < g.rows; r++) for (let c = 0; c < g.cols; c++) out[i++] = r * s * width + c * s
    return out
  }
  for (let i = 0; i < g.capacity; i++) {
    const { col, row } = cellXY(g, i)
    out[i] = row * s * width + col * s
  }
  return out
}

/** The cell under device pixel (x, y), or -1 (outside the grid, or past the disk's end). */
export function hitCell(g: MapGrid, x: number, y: number): number {
  const i = indexAt(g, Math.floor(x / g.cellPx), Math.floor(y / g.cellPx))
  return i >= 0 && i < g.count ? i : -1
}

/** The bytes of cell i, clipped to the disk. */
export function mapCellRange(g: MapGrid, i: number): { offset: number; length: number } {
  const offset = g.start + i * g.cellBytes
  return { offset, length: Math.max(0, Math.min(g.diskLength, offset + g.cellBytes) - offset) }
}

/** The cell holding byte `offset` (may be < 0 or ≥ count when the byte is not on the map). */
export function cellOfByte(g: MapGrid, offset: number): number {
  return Math.floor((offset - g.start) / g.cellBytes)
}

/** Bytes the grid shows: [start, end) clipped to the disk. */
export function gridRange(g: MapGrid): { start: number; end: number } {
  return { start: g.start, end: Math.min(g.diskLength, g.start + g.count * g.cellBytes) }
}

/** Device pixels from the top of the grid to the bottom of its last row holding disk bytes. */
export function usedHeightPx(g: MapGrid): number {
  const band = g.order === 'rows' ? g.cols : g.tilesAcross * g.tile * g.tile
  const bands = Math.max(1, Math.ceil(g.count / band))
  return Math.min(g.rows, bands * (g.order === 'rows' ? 1 : g.tile)) * g.cellPx
}

/** Bytes one row of cells covers (order 'rows'), or one row of Hilbert squares. */
export function rowSpanBytes(g: MapGrid): number {
  return g.order === 'rows' ? g.cols * g.cellBytes : g.tilesAcross * g.tile * g.tile * g.cellBytes
}

/** The byte range of the row (of cells, or of Hilbert squares) under cell row `row`. */
export function rowRange(g: MapGrid, row: number): { start: number; end: number } | null {
  const band = g.order === 'rows' ? row : Math.floor(row / g.tile)
  const span = rowSpanBytes(g)
  const start = g.start + band * span
  const end = Math.min(g.diskLength, start + span, g.start + g.count * g.cellBytes)
  return end > start ? { start, end } : null
}

/** The contiguous byte range the cells inside a rectangle of cell coordinates cover (first to last cell). */
export function rectRange(g: MapGrid, c0: number, r0: number, c1: number, r1: number): { start: number; end: number } | null {
  const ca = Math.max(0, Math.min(c0, c1))
  const cb = Math.min(g.cols - 1, Math.max(c0, c1))
  const ra = Math.max(0, Math.min(r0, r1))
  const rb = Math.min(g.rows - 1, Math.max(r0, r1))
  if (ca > cb || ra > rb) return null
  let lo = Infinity
  let hi = -1
  if (g.order === 'rows') {
    lo = ra * g.cols + ca
    hi = rb * g.cols + cb
  } else {
    for (let r = ra; r <= rb; r++) {
      for (let c = ca; c <= cb; c++) {
        const i = indexAt(g, c, r)
        if (i < lo) lo = i
        if (i > hi) hi = i
      }
    }
  }
  hi = Math.min(hi, g.count - 1)
  if (lo > hi) return null
  return { start: g.start + lo * g.cellBytes, end: Math.min(g.diskLength, g.start + (hi + 1) * g.cellBytes) }
}

/**
 * Zoom one step around device pixel (x, y): in (`dir` < 0) halves the cells' bytes, and once
 * they are single granules doubles their side; out reverses that, up to the whole disk. The
 * byte under the pointer stays under it (to within a cell).
 */
export function zoomMap(v: MapView, dir: -1 | 1, x: number, y: number, canvas: MapCanvas, order: MapOrder, diskLength: number, granularity: number): MapView {
  const g = layoutMap(v, canvas, order, diskLength)
  const col = Math.min(g.cols - 1, Math.max(0, Math.floor(x / g.cellPx)))
  const row = Math.min(g.rows - 1, Math.max(0, Math.floor(y / g.cellPx)))
  const here = indexAt(g, col, row)
  // The byte under the pointer: its cell, and how far across the cell the pointer is.
  const across = Math.min(1, Math.max(0, x / g.cellPx - col))
  const anchor = g.start + Math.max(0, here) * g.cellBytes + Math.floor(across * g.cellBytes)
  const gran = Math.max(1, granularity)
  const minPx = Math.max(1, canvas.minPx)
  const whole = fitWhole(canvas, order, diskLength, granularity)
  let cellBytes = v.cellBytes
  let cellPx = v.cellPx
  if (dir < 0) {
    if (cellBytes > gran) cellBytes = allowedCellBytes(Math.floor(cellBytes / 2), gran, 'down')
    else cellPx = Math.min(minPx * MAX_CELL_CSS_PX, cellPx * 2)
  } else {
    if (cellPx > Math.max(minPx, whole.cellBytes === cellBytes ? whole.cellPx : minPx)) cellPx = Math.max(minPx, Math.floor(cellPx / 2))
    else if (cellBytes >= whole.cellBytes) return whole
    else cellBytes = Math.min(whole.cellBytes, allowedCellBytes(cellBytes * 2, gran, 'up'))
  }
  if (cellBytes === whole.cellBytes && cellPx <= whole.cellPx) return whole
  // Keep the anchor byte in the cell now under (x, y).
  const ng = layoutMap({ start: 0, cellBytes, cellPx, whole: false }, canvas, order, diskLength)
  const ncol = Math.min(ng.cols - 1, Math.floor(x / ng.cellPx))
  const nrow = Math.min(ng.rows - 1, Math.floor(y / ng.cellPx))
  const at = Math.max(0, indexAt(ng, ncol, nrow))
  const start = Math.floor(anchor / cellBytes) * cellBytes - at * cellBytes
  return clampMapView({ start, cellBytes, cellPx, whole: false }, canvas, order, diskLength, granularity)
}

/** Scroll by `bands` rows (of cells, or of Hilbert squares); positive: towards the disk's end. */
export function panMap(v: MapView, bands: number, canvas: MapCanvas, order: MapOrder, diskLength: number, granularity: number): MapView {
  if (bands === 0) return v
  const g = layoutMap(v, canvas, order, diskLength)
  const next = clampMapView({ ...v, start: v.start + Math.round(bands) * rowSpanBytes(g), whole: false }, canvas, order, diskLength, granularity)
  return next.start === v.start ? v : next
}

/** One line of a range's outline, in cell coordinates (x along columns, y along rows). */
export type Segment = [x1: number, y1: number, x2: number, y2: number]

/**
 * The outline of the cells holding bytes [from, to): the edges between cells inside and cells
 * outside. Row order gives at most eight edges; Hilbert order walks the cells, except whole
 * squares in the middle of the range, which are outlined as squares.
 */
export function rangeOutline(g: MapGrid, from: number, to: number): Segment[] {
  if (to <= from || g.count === 0) return []
  const i0 = Math.max(0, cellOfByte(g, from))
  const i1 = Math.min(g.count - 1, cellOfByte(g, to - 1))
  if (i1 < 0 || i0 >= g.count || i1 < i0) return []
  if (g.order === 'rows') return rowOutline(g.cols, i0, i1)
  const inside = (c: number, r: number): boolean => {
    const i = indexAt(g, c, r)
    return i >= i0 && i <= i1
  }
  const out: Segment[] = []
  const t2 = g.tile * g.tile
  const firstTile = Math.floor(i0 / t2)
  const lastTile = Math.floor(i1 / t2)
  for (let tix = firstTile; tix <= lastTile; tix++) {
    const tx = (tix % g.tilesAcross) * g.tile
    const ty = Math.floor(tix / g.tilesAcross) * g.tile
    const full = tix * t2 >= i0 && (tix + 1) * t2 - 1 <= i1
    if (full) {
      // Only the square's sides, where the cell across is outside the range.
      const t = g.tile
      for (let k = 0; k < t; k++) {
        if (!inside(tx + k, ty - 1)) out.push([tx + k, ty, tx + k + 1, ty])
        if (!inside(tx + k, ty + t)) out.push([tx + k, ty + t, tx + k + 1, ty + t])
        if (!inside(tx - 1, ty + k)) out.push([tx, ty + k, tx, ty + k + 1])
        if (!inside(tx + t, ty + k)) out.push([tx + t, ty + k, tx + t, ty + k + 1])
      }
      continue
    }
    for (let r = ty; r < ty + g.tile; r++) {
      for (let c = tx; c < tx + g.tile; c++) {
        if (!inside(c, r)) continue
        if (!inside(c, r - 1)) out.push([c, r, c + 1, r])
        if (!inside(c, r + 1)) out.push([c, r + 1, c + 1, r + 1])
        if (!inside(c - 1, r)) out.push([c, r, c, r + 1])
        if (!inside(c + 1, r)) out.push([c + 1, r, c + 1, r + 1])
      }
    }
  }
  return out
}

/** Outline of cells i0..i1 laid out row after row, `cols` per row. */
function rowOutline(cols: number, i0: number, i1: number): Segment[] {
  const r0 = Math.floor(i0 / cols)
  const c0 = i0 - r0 * cols
  const r1 = Math.floor(i1 / cols)
  const c1 = i1 - r1 * cols + 1 // exclusive
  const rect = (x0: number, y0: number, x1: number, y1: number): Segment[] => [[x0, y0, x1, y0], [x1, y0, x1, y1], [x1, y1, x0, y1], [x0, y1, x0, y0]]
  if (r0 === r1) return rect(c0, r0, c1, r0 + 1)
  if (r1 === r0 + 1 && c1 <= c0) return [...rect(c0, r0, cols, r0 + 1), ...rect(0, r1, c1, r1 + 1)]
  // One polygon: the partial first row, the full rows, the partial last row.
  const pts: Array<[number, number]> = [[c0, r0], [cols, r0], [cols, r1], [c1, r1], [c1, r1 + 1], [0, r1 + 1], [0, r0 + 1], [c0, r0 + 1]]
  const out: Segment[] = []
  for (let k = 0; k < pts.length; k++) {
    const a = pts[k]!
    const b = pts[(k + 1) % pts.length]!
    if (a[0] !== b[0] || a[1] !== b[1]) out.push([a[0], a[1], b[0], b[1]])
  }
  return out
}
