/**
 * Extent numbers from byte offsets, answered from the reader's block index (run starts before
 * each 4096-bit block) plus at most one partial block: the extent list asks "which extents
 * are in view" without walking every extent before it.
 */
import type { BitmapReader } from '../engine/qcow2/bitmaps/data.js'

/** Number of extents (runs) that start at a bit below k, from the block index plus one partial block. */
export async function runStartsBefore(r: BitmapReader, k: number): Promise<number> {
  if (k >= r.nbits) return r.runCount
  if (k <= 0) return 0
  const b = Math.floor(k / 4096)
  let n = r.runsBeforeBlock(b)
  if (k > b * 4096) {
    for await (const [s] of r.runs(b * 4096, true)) {
      if (s >= k) break
      n++
    }
  }
  return n
}

/** Index of the first extent whose end is past byte `offset`. */
export async function extentIndexAt(r: BitmapReader, offset: number): Promise<number> {
  await r.scan()
  if (offset >= r.diskLength) return r.runCount
  const k = Math.floor(Math.max(0, offset) / r.granularity) // the bit holding `offset`
  const n = await runStartsBefore(r, k)
  // The run holding bit k-1 goes on past `offset` when bit k is set too.
  return k > 0 && (await r.bit(k - 1)) && (await r.bit(k)) ? n - 1 : n
}

/** Extents meeting [from, to): from the first ending after `from` to the last starting before `to`. */
export async function extentWindowOf(r: BitmapReader, from: number, to: number): Promise<{ first: number; count: number }> {
  await r.scan()
  const lo = Math.max(0, from)
  const hi = Math.min(to, r.diskLength)
  if (hi <= lo) return { first: await extentIndexAt(r, lo), count: 0 }
  const first = await extentIndexAt(r, lo)
  const end = await runStartsBefore(r, Math.ceil(hi / r.granularity))
  return { first, count: Math.max(0, end - first) }
}

