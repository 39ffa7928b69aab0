/**
 * Heatmap: exact dirty bytes per cell. Cell i of N over [start, end) covers
 * [start + floor(i*len/N), start + floor((i+1)*len/N)); a granule partly inside a cell counts
 * only its overlap. Computed as differences of D(x) = dirty bytes in [0, x), which the block
 * index answers without reading whenever x falls on a block-aligned granule boundary.
 */
import type { BitmapReader } from '../qcow2/bitmaps/data.js'
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
