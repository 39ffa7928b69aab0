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
export function cellShares(g: MapGrid, src: CellSource, arrays: readonly Float64Array[], scratch?: Float32Array[]): Float32Array[] {
  return arrays.map((a, k) => {
    const buf = scratch?.[k]
    return shareOf(g, src, a, buf && buf.length >= g.count ? buf.subarray(0, g.count) : new Float32Array(g.count))
  })
}

/** cellShares for one array (a tight loop: this runs on every repaint of 270,000 cells). */
function shareOf(g: MapGrid, src: CellSource, counts: Float64Array, out: Float32Array): Float32Array {
  const n = g.count
  const disk = g.diskLength
  const cb = g.cellBytes
  const gs = g.start
  const ss = src.start
  const scb = src.cellBytes
  const sn = src.count
  if (scb === cb && (gs - ss) % cb === 0) {
    // The same cells, perhaps shifted by whole cells (a pan).
    const shift = (gs - ss) / cb
    const lo = Math.max(0, -shift)
    const hi = Math.min(n, sn - shift)
    out.fill(NaN)
    for (let i = lo; i < hi; i++) out[i] = counts[i + shift]! / cb
    const last = n - 1
    if (last >= lo && last < hi) {
      const a = gs + last * cb
      out[last] = counts[last + shift]! / (Math.min(disk, a + cb) - a)
    }
    return out
  }
  if (scb > cb) {
    // Zoomed in: each new cell lies in one or two old ones; take the one holding its first byte.
    let j = Math.floor((gs - ss) / scb)
    let sa = ss + j * scb
    let share = j >= 0 && j < sn ? counts[j]! / (Math.min(disk, sa + scb) - sa) : NaN
    for (let i = 0, a = gs; i < n; i++, a += cb) {
      if (a >= sa + scb) {
        j = Math.floor((a - ss) / scb)
        sa = ss + j * scb
        share = j >= 0 && j < sn ? counts[j]! / (Math.min(disk, sa + scb) - sa) : NaN
      }
      out[i] = share
    }
    return out
  }
  // Zoomed out: sum the old cells under each new one (consecutive: one pass over both).
  let j = Math.max(0, Math.floor((gs - ss) / scb))
  for (let i = 0, a = gs; i < n; i++, a += cb) {
    const b = Math.min(disk, a + cb)
    let covered = 0
    let sum = 0
    while (j < sn && ss + (j + 1) * scb <= a) j++
    for (let jj = j, sa = ss + jj * scb; jj < sn && sa < b; jj++, sa += scb) {
      const c = counts[jj]!
      if (c !== c) continue // NaN: not counted yet
      const sb = Math.min(disk, sa + scb)
      const overlap = Math.min(b, sb) - Math.max(a, sa)
      if (overlap <= 0) continue
      covered += overlap
      sum += c * (overlap / (sb - sa))
    }
    out[i] = covered * 2 >= b - a && b > a ? sum / covered : NaN
  }
  return out
}
