/**
 * Painting heatmap cells into RGBA pixels. Cells are placed by their byte ranges in the view
 * being shown, so a result computed for a slightly different view (the next one is still on
 * its way from the worker) still lands where its bytes are.
 */
import { OVERLAY_KINDS, type OverlayKind, heatColor, overlayColor, rampPosition, type Rgb, type Theme } from './colors.js'
import { cellBoundary, offsetToX, type View } from './geometry.js'

/** Counts over cells: `cells` cells over the byte range `view`. */
export interface Cells {
  view: View
  cells: number
  counts: Float64Array
}

/**
 * Per-column dirty fraction (-1: no data for that column). A column covering several cells
 * shows the dirtiest. `diskLength` clips the last cell, which may run past the end of the disk.
 */
export function columnFractions(heat: Cells, view: View, width: number, diskLength = Infinity): Float64Array {
  const out = new Float64Array(width).fill(-1)
  const { cells, counts } = heat
  for (let i = 0; i < cells; i++) {
    const a = cellBoundary(heat.view.start, heat.view.end, cells, i)
    const b = Math.min(diskLength, cellBoundary(heat.view.start, heat.view.end, cells, i + 1))
    if (b <= view.start || a >= view.end || b <= a) continue
    // Every column the cell touches, however little (the epsilon absorbs rounding noise).
    let x0 = Math.floor(offsetToX(a, view, width) + 1e-9)
    let x1 = Math.ceil(offsetToX(b, view, width) - 1e-9)
    if (x1 <= x0) x1 = x0 + 1
    x0 = Math.max(0, x0)
    x1 = Math.min(width, x1)
    const f = counts[i]! / (b - a)
    for (let x = x0; x < x1; x++) if (f > out[x]!) out[x] = f
  }
  return out
}

/** Cell edges in pixels when every cell is at least `minPx` wide (granule-level zoom), else []. */
export function cellEdges(heat: Cells, view: View, width: number, minPx = 6): number[] {
  if (heat.view.start !== view.start || heat.view.end !== view.end) return []
  if (width / heat.cells < minPx) return []
  const out: number[] = []
  for (let i = 1; i < heat.cells; i++) out.push(Math.round((i * width) / heat.cells))
  return out
}

/**
 * Fill `px` (RGBA, width×height) with the heatmap: each column in its dirty colour, columns
 * without data in `missing`, and a 1-pixel gap at cell edges at granule-level zoom.
 */
export function paint(
  px: Uint8ClampedArray, width: number, height: number, heat: Cells | null, view: View, diskLength: number,
  theme: Theme, missing: Rgb, gap: Rgb,
): void {
  const fr = heat ? columnFractions(heat, view, width, diskLength) : new Float64Array(width).fill(-1)
  const row = new Uint8ClampedArray(width * 4)
  for (let x = 0; x < width; x++) {
    const c = fr[x]! < 0 ? missing : heatColor(fr[x]!, theme)
    row[x * 4] = c[0]
    row[x * 4 + 1] = c[1]
    row[x * 4 + 2] = c[2]
    row[x * 4 + 3] = 255
  }
  if (heat) {
    for (const x of cellEdges(heat, view, width)) {
      if (x <= 0 || x >= width) continue
      row[x * 4] = gap[0]
      row[x * 4 + 1] = gap[1]
      row[x * 4 + 2] = gap[2]
    }
  }
  for (let y = 0; y < height; y++) px.set(row, y * width * 4)
}

/** Overlay cells: bytes per category per cell over `view` (see worker/overlay.ts). */
export interface OverlayCellsView {
  view: View
  cells: number
  dirtyData: Float64Array
  dirtyZero: Float64Array
  dirtyUnallocated: Float64Array
  cleanData: Float64Array
}

/**
 * Per-column sums of each overlay category and of the bytes the column covers (-1 bytes: no
 * data for that column). A cell is split across the columns it touches in proportion to the
 * overlap, so a column's share of each category is the share over the bytes it shows.
 */
export function overlayColumns(o: OverlayCellsView, view: View, width: number, diskLength = Infinity): { bytes: Float64Array; sums: Record<OverlayKind, Float64Array> } {
  const bytes = new Float64Array(width).fill(-1)
  const sums = { dirtyData: new Float64Array(width), dirtyZero: new Float64Array(width), dirtyUnallocated: new Float64Array(width), cleanData: new Float64Array(width) }
  const span = view.end - view.start
  if (span <= 0) return { bytes, sums }
  for (let i = 0; i < o.cells; i++) {
    const a = Math.max(view.start, cellBoundary(o.view.start, o.view.end, o.cells, i))
    const b = Math.min(view.end, diskLength, cellBoundary(o.view.start, o.view.end, o.cells, i + 1))
    if (b <= a) continue
    const cellA = cellBoundary(o.view.start, o.view.end, o.cells, i)
    const cellLen = Math.min(diskLength, cellBoundary(o.view.start, o.view.end, o.cells, i + 1)) - cellA
    if (cellLen <= 0) continue
    const x0 = Math.max(0, Math.floor(offsetToX(a, view, width) + 1e-9))
    const x1 = Math.min(width, Math.max(x0 + 1, Math.ceil(offsetToX(b, view, width) - 1e-9)))
    for (let x = x0; x < x1; x++) {
      // bytes of this cell under column x
      const ca = Math.max(a, view.start + (x * span) / width)
      const cb = Math.min(b, view.start + ((x + 1) * span) / width)
      const part = x1 - x0 === 1 ? b - a : Math.max(0, cb - ca)
      if (part <= 0) continue
      const f = part / cellLen
      if (bytes[x]! < 0) bytes[x] = 0
      bytes[x]! += part
      for (const k of OVERLAY_KINDS) sums[k][x]! += o[k][i]! * f
    }
  }
  return { bytes, sums }
}

/**
 * Fill `px` with the overlay: each column is a stacked bar. From the bottom, the dirty bytes
 * that are data, read as zero, and are unallocated take a height that grows with the dirty
 * share (square root, like the dirty ramp, at least 2 px when any byte is dirty), split by
 * their bytes; the rest shows clean allocated data faintly over the clean track colour.
 */
export function paintOverlay(
  px: Uint8ClampedArray, width: number, height: number, o: OverlayCellsView | null, view: View, diskLength: number,
  theme: Theme, missing: Rgb,
): void {
  const clean = heatColor(0, theme)
  const fill = (x: number, y0: number, y1: number, c: Rgb): void => {
    for (let y = Math.max(0, y0); y < Math.min(height, y1); y++) {
      const i = (y * width + x) * 4
      px[i] = c[0]; px[i + 1] = c[1]; px[i + 2] = c[2]; px[i + 3] = 255
    }
  }
  if (!o) {
    for (let x = 0; x < width; x++) fill(x, 0, height, missing)
    return
  }
  const { bytes, sums } = overlayColumns(o, view, width, diskLength)
  for (let x = 0; x < width; x++) {
    const n = bytes[x]!
    if (n <= 0) { fill(x, 0, height, n < 0 ? missing : clean); continue }
    const dd = sums.dirtyData[x]!, dz = sums.dirtyZero[x]!, du = sums.dirtyUnallocated[x]!
    const dirty = dd + dz + du
    let y = height // draw upwards from the bottom
    if (dirty > 0) {
      const h = Math.max(2, Math.round(rampPosition(dirty / n) * height))
      const parts: Array<[number, OverlayKind]> = [[dd, 'dirtyData'], [dz, 'dirtyZero'], [du, 'dirtyUnallocated']]
      let left = h
      for (let k = 0; k < parts.length; k++) {
        const [v, kind] = parts[k]!
        if (v <= 0) continue
        const rest = parts.slice(k + 1).filter(([w]) => w > 0).length
        const ph = rest === 0 ? left : Math.max(1, Math.min(left - rest, Math.round((v / dirty) * h)))
        fill(x, y - ph, y, overlayColor(kind, theme))
        y -= ph
        left -= ph
      }
    }
    const cleanBytes = n - dirty
    const cd = sums.cleanData[x]!
    const ch = cleanBytes > 0 ? Math.round((cd / cleanBytes) * y) : 0
    fill(x, y - ch, y, overlayColor('cleanData', theme))
    fill(x, 0, y - ch, clean)
  }
}

/** Diagonal stripes over a painted row: the "stale" style of an in-use bitmap's stored bits. */
export function hatch(px: Uint8ClampedArray, width: number, height: number, stripe: Rgb, alpha = 0.45, period = 8, thickness = 3): void {
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if ((x + y) % period >= thickness) continue
      const i = (y * width + x) * 4
      px[i] = Math.round(px[i]! * (1 - alpha) + stripe[0] * alpha)
      px[i + 1] = Math.round(px[i + 1]! * (1 - alpha) + stripe[1] * alpha)
      px[i + 2] = Math.round(px[i + 2]! * (1 - alpha) + stripe[2] * alpha)
    }
  }
}

/** Per column, the chain depth that allocates most of its bytes (-1: none allocated / no data). */
export function dominantLayer(o: { view: View; cells: number; layers: Float64Array[] }, view: View, width: number, diskLength = Infinity): Int32Array {
  const best = new Int32Array(width).fill(-1)
  const most = new Float64Array(width)
  for (let d = 0; d < o.layers.length; d++) {
    const fr = columnFractions({ view: o.view, cells: o.cells, counts: o.layers[d]! }, view, width, diskLength)
    for (let x = 0; x < width; x++) if (fr[x]! > most[x]!) { most[x] = fr[x]!; best[x] = d }
  }
  return best
}
