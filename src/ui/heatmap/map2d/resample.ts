/**
 * From engine cells to map cells: per map cell, the share of its bytes each count array holds.
 * When the cells were computed for this very grid the shares are exact; while the next cells
 * are on their way (a zoom or pan step just happened) the cells of the previous view are
 * resampled onto the new grid, so the map redraws at once and sharpens when the exact counts
 * arrive. Pure, unit-tested.
 */
import type { MapGrid } from './layout.js'

/** Where counts came from: `count` cells of `cellBytes` from `start` (a NaN count: not known yet). */
export interface CellSource {
  start: number
  cellBytes: number
  count: number
}

/** Whether `src` is exactly the grid's cells (the shares are then exact). */
export function sameCells(g: Pick<MapGrid, 'start' | 'cellBytes' | 'count'>, src: CellSource): boolean {
  return src.start === g.start && src.cellBytes === g.cellBytes && src.count >= g.count
}

/**
 * For every cell of the grid (0 ≤ i < g.count) and every array, the counted bytes divided by
 * the cell's bytes (both clipped to the disk). A cell the source covers for less than half of
 * its bytes (or whose source counts are NaN) gets NaN: nothing to show yet.
 */
export function cellShares(g: MapGrid, src: CellSource, arrays: readonly Float64Array[]): Float32Array[] {
  const n = g.count
  const out = arrays.map(() => new Float32Array(n))
  const disk = g.diskLength
  const cb = g.cellBytes
  const ss = src.start
  const scb = src.cellBytes
  if (sameCells(g, src) || (scb === cb && (g.start - ss) % cb === 0)) {
    const shift = (g.start - ss) / cb
    for (let i = 0; i < n; i++) {
      const j = i + shift
      const a = g.start + i * cb
      const len = Math.min(disk, a + cb) - a
      for (let k = 0; k < arrays.length; k++) {
        const v = j >= 0 && j < src.count ? arrays[k]![j]! : NaN
        out[k]![i] = len > 0 ? v / len : NaN
      }
    }
    return out
  }
  const sums = new Float64Array(arrays.length)
  for (let i = 0; i < n; i++) {
    const a = g.start + i * cb
    const b = Math.min(disk, a + cb)
    const len = b - a
    let covered = 0
    sums.fill(0)
    const j0 = Math.max(0, Math.floor((a - ss) / scb))
    const j1 = Math.min(src.count - 1, Math.floor((b - 1 - ss) / scb))
    for (let j = j0; j <= j1; j++) {
      const sa = ss + j * scb
      const sb = Math.min(disk, sa + scb)
      const overlap = Math.min(b, sb) - Math.max(a, sa)
      if (overlap <= 0 || sb <= sa) continue
      let known = true
      for (let k = 0; k < arrays.length; k++) if (Number.isNaN(arrays[k]![j]!)) known = false
      if (!known) continue
      covered += overlap
      const f = overlap / (sb - sa)
      for (let k = 0; k < arrays.length; k++) sums[k]! += arrays[k]![j]! * f
    }
    for (let k = 0; k < arrays.length; k++) out[k]![i] = len > 0 && covered * 2 >= len ? sums[k]! / covered : NaN
  }
  return out
}
