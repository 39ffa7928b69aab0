/**
 * Heatmap: exact dirty bytes per cell. Cell i of N over [start, end) covers
 * [start + floor(i*len/N), start + floor((i+1)*len/N)); a granule partly inside a cell counts
 * only its overlap. Computed as differences of D(x) = dirty bytes in [0, x), which the block
 * index answers without reading whenever x falls on a block-aligned granule boundary.
 */
import { BLOCK_BITS, type BitmapReader } from '../qcow2/bitmaps/data.js'
import { ENTRY_ONES, ENTRY_ZEROES } from '../qcow2/bitmaps/table.js'
import type { AbortSignalLike } from '../errors.js'
import { throwIfAborted } from '../errors.js'

/**
 * Cell boundaries as integers, exact even when i*len passes 2^53: floor(i*len/N) =
 * i*q + floor(i*r/N) with len = q*N + r, and i*r < N² stays exact for any N below 2^26.
 */
export function cellBoundaries(start: number, end: number, cells: number): Float64Array {
  const len = end - start
  const out = new Float64Array(cells + 1)
  const q = Math.floor(len / cells)
  const r = len - q * cells
  if (cells < 2 ** 26) {
    for (let i = 0; i <= cells; i++) out[i] = start + i * q + Math.floor((i * r) / cells)
    return out
  }
  for (let i = 0; i <= cells; i++) out[i] = start + Number((BigInt(i) * BigInt(len)) / BigInt(cells))
  return out
}

/**
 * Boundaries left unanswered by the block index, per data cluster they fall in, from which on
 * whole clusters are counted through (one pass each) instead of one 512-byte block read per
 * boundary. Sparse boundaries (a wide view whose cells do not sit on block edges) stay on
 * block reads: a cluster read for one boundary would read 128 times more than it needs.
 */
export const DENSE_PER_CLUSTER = 8

/** Clusters read ahead while counting through (64 KiB clusters: 1 MiB in flight). */
const PREFETCH = 16

/** Dirty bytes in each of `cells` cells over [start, end) (after scan). */
export async function heatmap(
  r: BitmapReader, start: number, end: number, cells: number, signal?: AbortSignalLike,
): Promise<Float64Array> {
  if (!(cells >= 1) || !Number.isInteger(cells)) throw new RangeError(`cells must be a positive integer (got ${cells})`)
  if (!(end >= start) || start < 0) throw new RangeError(`invalid range [${start}, ${end})`)
  await r.scan(signal ? { signal } : {})
  const xs = cellBoundaries(start, end, cells)
  const d = new Float64Array(cells + 1)
  const pending = new Int32Array(cells + 1)
  let np = 0
  let clusters = 0
  let lastCluster = -1
  const g = r.granularity
  const blockBytes = BLOCK_BITS * g
  const clusterBytes = r.bitsPerCluster * g
  const lastBit = r.nbits * g
  if (BLOCK_BITS !== 4096) throw new Error('heatmap: countThrough assumes 4096-bit blocks')
  // Block edges and the bitmap's end come from the index; the rest needs the bitmap's bits.
  for (let i = 0; i <= cells; i++) {
    const x = Math.max(0, Math.min(xs[i]!, r.diskLength))
    if (x % blockBytes === 0 || x >= lastBit) d[i] = r.dirtyBefore(x, true)!
    else {
      pending[np++] = i
      const c = Math.floor(x / clusterBytes)
      if (c !== lastCluster) { clusters++; lastCluster = c }
    }
  }
  if (np >= DENSE_PER_CLUSTER * clusters) await countThrough(r, xs, pending.subarray(0, np), d, signal)
  else {
    for (let k = 0; k < np; k++) {
      if ((k & 1023) === 0) throwIfAborted(signal)
      const i = pending[k]!
      const v = r.dirtyBefore(xs[i]!, true)
      d[i] = v !== undefined ? v : await r.dirtyBefore(xs[i]!)
    }
  }
  const out = new Float64Array(cells)
  for (let i = 0; i < cells; i++) out[i] = d[i + 1]! - d[i]!
  return out
}

const POP8 = new Uint8Array(256).map((_, b) => { let n = 0; for (let x = b; x; x >>= 1) n += x & 1; return n })

/** Set bits of `data` in bit positions [from, to), counted byte by byte through a table. */
function countRange(data: Uint8Array, from: number, to: number): number {
  let n = 0
  let k = from
  while (k < to && (k & 7)) { n += (data[k >>> 3]! >>> (k & 7)) & 1; k++ }
  let byte = k >>> 3
  const fullEnd = to >>> 3
  for (; byte < fullEnd; byte++) n += POP8[data[byte]!]!
  for (k = Math.max(k, fullEnd << 3); k < to; k++) n += (data[k >>> 3]! >>> (k & 7)) & 1
  return n
}

/**
 * D(x) for the boundaries `pending` (increasing) from the clusters' bits: the ones before each
 * boundary's block come from the index (dirtyBefore at the block's first byte), the bits from
 * there up to the boundary are counted once, carried from one boundary to the next inside a
 * block, so a cluster's bits are counted at most once however many boundaries it holds.
 */
async function countThrough(r: BitmapReader, xs: Float64Array, pending: Int32Array, d: Float64Array, signal?: AbortSignalLike): Promise<void> {
  const g = r.granularity
  const bpc = r.bitsPerCluster
  const L = r.diskLength
  const clusterOf = (i: number): number => Math.floor(Math.floor(Math.min(xs[i]!, L) / g) / bpc)
  // The clusters in order, read PREFETCH ahead: in the browser each read is a file slice that
  // runs off the worker's thread, so reads in flight together take little longer than one.
  const order: number[] = []
  for (let n = 0; n < pending.length; n++) {
    const c = clusterOf(pending[n]!)
    if (order[order.length - 1] !== c) order.push(c)
  }
  const reads = new Map<number, ReturnType<BitmapReader['cluster']>>()
  const ahead = (k: number): void => {
    for (let j = k; j < Math.min(order.length, k + PREFETCH); j++) {
      const c = order[j]!
      if (!reads.has(c)) { const p = r.cluster(c); p.catch(() => undefined); reads.set(c, p) }
    }
  }
  let n = 0
  let k = 0
  while (n < pending.length) {
    throwIfAborted(signal)
    const c = order[k]!
    ahead(k)
    const data = await reads.get(c)!
    reads.delete(c)
    k++
    const base = c * bpc
    const endX = (base + bpc) * g // the first byte past this cluster's granules
    let block = -1
    let bit = 0 // bits counted up to here (from the cluster's first bit), inside `block`
    let ones = 0 // set bits of the bitmap before `bit`
    for (; n < pending.length; n++) {
      const i = pending[n]!
      const x = Math.min(xs[i]!, L)
      if (x >= endX) break
      const k = Math.floor(x / g) - base // pending boundaries lie inside the bitmap
      const rem = x - (base + k) * g
      const b = k >>> 12 // BLOCK_BITS = 4096
      if (b !== block) {
        block = b
        bit = b << 12
        ones = (r.dirtyBefore((base + bit) * g, true) as number) / g
      }
      let set: boolean
      if (data === ENTRY_ZEROES) set = false
      else if (data === ENTRY_ONES) { ones += k - bit; set = true }
      else {
        ones += countRange(data, bit, k)
        set = ((data[k >>> 3]! >>> (k & 7)) & 1) === 1
      }
      bit = k
      d[i] = ones * g + (rem > 0 && set ? rem : 0)
    }
  }
}

/**
 * Dirty bytes per cell from the part of the block index a running scan has built (the map's
 * first picture of a big bitmap, drawn while the scan reads): a cell whose two boundaries are
 * block edges the scan has passed is exact, any other cell NaN. Nothing is read. All NaN before
 * any scan; after the scan, the cells on block edges (heatmap answers every cell).
 */
export function heatmapSoFar(r: BitmapReader, start: number, end: number, cells: number): Float64Array {
  if (!(cells >= 1) || !Number.isInteger(cells)) throw new RangeError(`cells must be a positive integer (got ${cells})`)
  if (!(end >= start) || start < 0) throw new RangeError(`invalid range [${start}, ${end})`)
  const out = new Float64Array(cells).fill(NaN)
  const so = r.indexSoFar()
  if (!so) return out
  const g = r.granularity
  const blockBytes = BLOCK_BITS * g
  const xs = cellBoundaries(start, end, cells)
  const at = (x: number): number => {
    const xc = Math.max(0, Math.min(x, r.diskLength))
    if (xc % blockBytes !== 0) return NaN
    const b = xc / blockBytes
    return b <= so.blocks ? so.ones[b]! * g : NaN
  }
  let prev = at(xs[0]!)
  for (let i = 0; i < cells; i++) {
    const next = at(xs[i + 1]!)
    out[i] = next - prev
    prev = next
  }
  return out
}

