/**
 * Heatmap: exact dirty bytes per cell. Cell i of N over [start, end) covers
 * [start + floor(i*len/N), start + floor((i+1)*len/N)); a granule partly inside a cell counts
 * only its overlap. Computed as differences of D(x) = dirty bytes in [0, x), which the block
 * index answers without reading whenever x falls on a block-aligned granule boundary.
 */
import { BLOCK_BITS, type BitmapReader } from '../qcow2/bitmaps/data.js'
import type { AbortSignalLike } from '../errors.js'
import { throwIfAborted } from '../errors.js'

/** Cell boundaries as integers, exact even when i*len passes 2^53. */
export function cellBoundaries(start: number, end: number, cells: number): Float64Array {
  const len = end - start
  const out = new Float64Array(cells + 1)
  const exact = Number.isSafeInteger(len * cells)
  for (let i = 0; i <= cells; i++) {
    out[i] = start + (exact ? Math.floor((i * len) / cells) : Number((BigInt(i) * BigInt(len)) / BigInt(cells)))
  }
  return out
}

/** Dirty bytes in each of `cells` cells over [start, end) (after scan). */
export async function heatmap(
  r: BitmapReader, start: number, end: number, cells: number, signal?: AbortSignalLike,
): Promise<Float64Array> {
  if (!(cells >= 1) || !Number.isInteger(cells)) throw new RangeError(`cells must be a positive integer (got ${cells})`)
  if (!(end >= start) || start < 0) throw new RangeError(`invalid range [${start}, ${end})`)
  await r.scan(signal ? { signal } : {})
  const xs = cellBoundaries(start, end, cells)
  const d = new Float64Array(cells + 1)
  for (let i = 0; i <= cells; i++) {
    const v = r.dirtyBefore(xs[i]!, true)
    if (v !== undefined) d[i] = v
    else {
      if ((i & 1023) === 0) throwIfAborted(signal)
      d[i] = await r.dirtyBefore(xs[i]!)
    }
  }
  const out = new Float64Array(cells)
  for (let i = 0; i < cells; i++) out[i] = d[i + 1]! - d[i]!
  return out
}

/** A heatmap view: cells over [start, end). */
export interface View {
  start: number
  end: number
  /** whether snapView put it on the block grid (every cell boundary a multiple of BLOCK_BITS granules) */
  snapped: boolean
}

/**
 * The view to ask `heatmap` for, given the one the user asked for: when a cell spans at least
 * one index block (BLOCK_BITS granules), the view is widened to the block grid — start on a
 * block boundary, each cell a whole number of blocks — so that every cell boundary is answered
 * from the block index without reading bitmap data (pure arithmetic, no I/O). Otherwise
 * (deep zooms, a cell smaller than a block) the view is returned as asked: its boundaries
 * crowd into a few clusters and the exact heatmap reads only those.
 *
 * The snapped view covers the asked one ([start, end) inside it) and is at most one block
 * wider per cell plus one block (so up to ~2× wider just above the threshold, where a cell is
 * between one and two blocks). Where it would run past the disk's end it slides left along the
 * grid, to end less than one block past max(end, diskLength); a view wider than the disk starts
 * at 0. Bytes past the disk's end read as clean.
 * Why (bench/README.md, issue 5): on a 2^32-bit bitmap a wide view with unaligned boundaries
 * needs one 512-byte read per boundary (4,097 reads; the max zoom time), a snapped one none.
 */
export function snapView(start: number, end: number, cells: number, granularity: number, diskLength = Infinity): View {
  const block = BLOCK_BITS * granularity
  if (!(cells >= 1) || !(end > start) || !(block > 0)) return { start, end, snapped: false }
  if ((end - start) / cells < block) return { start, end, snapped: false }
  let s = Math.floor(start / block) * block
  const k = Math.ceil((end - s) / (cells * block)) // blocks per cell
  const width = cells * k * block
  const limit = Math.max(end, diskLength)
  if (s + width > limit) {
    // Slide left along the grid, as far as keeps the end at or past both `end` and the disk's end.
    s = Math.max(0, s - Math.floor((s + width - limit) / block) * block)
  }
  return { start: s, end: s + width, snapped: true }
}
