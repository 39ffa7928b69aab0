/**
 * Dirty extents: merged [offset, length] byte ranges clipped to the disk length, as
 * `nbdinfo --map=qemu:dirty-bitmap:NAME` prints them. Paged, so a million extents never
 * need to be in memory at once.
 */
import type { AbortSignalLike } from '../errors.js'
import { BLOCK_BITS, type BitmapReader } from '../qcow2/bitmaps/data.js'

/** A dirty extent in guest bytes. */
export interface Extent {
  offset: number
  length: number
}

function toExtent(r: BitmapReader, s: number, e: number): Extent {
  const offset = s * r.granularity
  const end = Math.min(e * r.granularity, r.diskLength)
  return { offset, length: end - offset }
}

/** Extents number `first` .. `first + count - 1` (0-based), after scan. */
export async function extentPage(r: BitmapReader, first: number, count: number, signal?: AbortSignalLike): Promise<Extent[]> {
  await r.scan(signal ? { signal } : {})
  const out: Extent[] = []
  if (count <= 0 || first >= r.runCount) return out
  const b = r.blockOfRun(first)
  let skip = first - r.runsBeforeBlock(b)
  for await (const [s, e] of r.runs(b * 4096, true, signal)) {
    if (skip > 0) { skip--; continue }
    out.push(toExtent(r, s, e))
    if (out.length >= count) break
  }
  return out
}

/** Extents that intersect [from, to) bytes, clipped to it; at most `limit`. */
export async function extentsInRange(
  r: BitmapReader, from: number, to: number, limit = Infinity, signal?: AbortSignalLike,
): Promise<Extent[]> {
  const out: Extent[] = []
  const lo = Math.max(0, from)
  const hi = Math.min(to, r.diskLength)
  if (hi <= lo) return out
  const firstBit = Math.floor(lo / r.granularity)
  for await (const [s, e] of r.runs(firstBit, false, signal)) {
    const x = toExtent(r, s, e)
    if (x.offset >= hi) break
    const a = Math.max(x.offset, lo)
    const b = Math.min(x.offset + x.length, hi)
    if (b > a) out.push({ offset: a, length: b - a })
    if (out.length >= limit) break
  }
  return out
}

/**
 * Every extent in order, in batches: each yielded Float64Array holds [offset0, length0,
 * offset1, length1, ...] in bytes (never empty, at most `batchExtents` extents; valid until the
 * next batch is asked for). What `qbm map` iterates: one await per batch, not several per extent.
 */
export async function* extentBatches(r: BitmapReader, signal?: AbortSignalLike, batchExtents = 16384): AsyncGenerator<Float64Array> {
  const g = r.granularity
  const L = r.diskLength
  for await (const b of r.runBatches(0, false, signal, batchExtents)) {
    for (let i = 0; i < b.length; i += 2) {
      const offset = b[i]! * g
      b[i] = offset
      b[i + 1] = Math.min(b[i + 1]! * g, L) - offset
    }
    yield b
  }
}

/** Every extent in order, streamed (one object per extent; see extentBatches for bulk use). */
export async function* allExtents(r: BitmapReader, signal?: AbortSignalLike): AsyncGenerator<Extent> {
  for await (const b of extentBatches(r, signal, 4096)) {
    for (let i = 0; i < b.length; i += 2) yield { offset: b[i]!, length: b[i + 1]! }
  }
}

/** Number of extents (runs) that start at a bit below k: the block index plus at most one partial block. */
async function runStartsBefore(r: BitmapReader, k: number): Promise<number> {
  if (k >= r.nbits) return r.runCount
  if (k <= 0) return 0
  const b = Math.floor(k / BLOCK_BITS)
  let n = r.runsBeforeBlock(b)
  if (k > b * BLOCK_BITS) {
    for await (const [s] of r.runs(b * BLOCK_BITS, true)) {
      if (s >= k) break
      n++
    }
  }
  return n
}

/**
 * Index of the first extent that ends after byte `offset` (after scan), for "scroll to":
 * answered from the block index plus one partial block, never a walk over the extents before it.
 */
export async function extentIndexAt(r: BitmapReader, offset: number): Promise<number> {
  await r.scan()
  if (offset >= r.diskLength) return r.runCount
  const k = Math.floor(Math.max(0, offset) / r.granularity) // the bit holding `offset`
  const n = await runStartsBefore(r, k)
  // The run holding bit k-1 goes on past `offset` when bit k is set too.
  return k > 0 && (await r.bit(k - 1)) && (await r.bit(k)) ? n - 1 : n
}

/** The extents meeting [from, to), as indexes: from the first ending after `from` to the last starting before `to`. */
export async function extentWindow(r: BitmapReader, from: number, to: number): Promise<{ first: number; count: number }> {
  await r.scan()
  const lo = Math.max(0, from)
  const hi = Math.min(to, r.diskLength)
  const first = await extentIndexAt(r, lo)
  if (hi <= lo) return { first, count: 0 }
  const end = await runStartsBefore(r, Math.ceil(hi / r.granularity))
  return { first, count: Math.max(0, end - first) }
}
