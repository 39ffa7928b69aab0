/**
 * Painting heatmap cells into RGBA pixels. Cells are placed by their byte ranges in the view
 * being shown, so a result computed for a slightly different view (the next one is still on
 * its way from the worker) still lands where its bytes are.
 */
import { heatColor, type Rgb, type Theme } from './colors.js'
import { cellBoundary, offsetToX, type View } from './geometry.js'

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
