/**
 * Runs of set bits (dirty extents, in bit numbers), found a 32-bit word at a time: the one run
 * finder of the reader. `runBatches` walks the clusters from any bit and hands out the runs in
 * batches of [start, end) pairs; everything that lists extents (qbm map, extent pages, diff,
 * the planner) goes through it.
 */
import { type AbortSignalLike, throwIfAborted } from '../../../errors.js'
import { ENTRY_ONES, ENTRY_ZEROES } from '../table.js'
import { bitAt, wordsOf } from './bits.js'
import type { ClusterData, Clusters, Scratch } from './clusters.js'

/** Run finder state carried across words, clusters and batches. */
export interface RunState {
  /** the last bit seen was set (a run is open) */
  inRun: boolean
  /** start of the open run, in bits */
  runStart: number
  /** entries used in the output batch */
  n: number
}

/**
 * Find runs in `words[w0 .. nw)` (bits below `lowBits` of the first word are ignored: taken as
 * continuing the state before them), appending closed runs to `out` as [start, end) pairs of
 * bit numbers (`base` = bit number of word 0). Stops after the word in which `st.n` reaches
 * `cap` (so `out` needs 32 entries of room past `cap`) and returns the next word to look at.
 * Per word, the bits where the value changes from the previous bit are x ^ (x << 1 | previous
 * bit); each one opens or closes a run.
 */
export function findRuns(words: Uint32Array, w0: number, lowBits: number, nw: number, base: number, st: RunState, out: Float64Array, cap: number): number {
  let inRun = st.inRun
  let runStart = st.runStart
  let n = st.n
  let carry = inRun ? 1 : 0
  let w = w0
  for (; w < nw; w++) {
    let x = words[w]! | 0
    if (w === w0 && lowBits > 0) {
      const low = (1 << lowBits) - 1
      x = inRun ? x | low : x & ~low
    }
    let t = x ^ ((x << 1) | carry)
    carry = x >>> 31
    if (t === 0) continue
    const at = base + w * 32
    do {
      const z = 31 - Math.clz32(t & -t)
      t &= t - 1
      if (inRun) { out[n++] = runStart; out[n++] = at + z; inRun = false } else { inRun = true; runStart = at + z }
    } while (t !== 0)
    if (n >= cap) { w++; break }
  }
  st.inRun = inRun
  st.runStart = runStart
  st.n = n
  return w
}

/** How a walk gets its data clusters. */
export interface WalkOptions {
  signal?: AbortSignalLike
  /** at most this many runs per batch (default 16384) */
  batchRuns?: number
  /**
   * A pass over many clusters: stream them through one reused buffer instead of the cache
   * (RSS stays flat over a whole bitmap). Without it, clusters go through the cache (pages of
   * extents asked for again and again).
   */
  stream?: boolean
}

/**
 * The runs of set bits of `c` from bit `from` on, in order, in batches: each yielded
 * Float64Array holds [start0, end0, start1, end1, ...] (never empty). A batch is a view of the
 * walk's one buffer, valid until the next batch is asked for (the caller may rewrite it in place):
 * a million runs allocate nothing per batch.
 * A run that contains bit `from` but began before it is reported from its real start, or, with
 * `skipPartial`, not at all. One await per data cluster and per batch, none per run.
 */
export async function* runBatches(c: Clusters, from: number, skipPartial: boolean, opts: WalkOptions = {}): AsyncGenerator<Float64Array> {
  from = Math.max(0, from)
  if (from >= c.nbits) return
  const cap = 2 * Math.max(1, Math.floor(opts.batchRuns ?? 16384))
  // Room for one whole word past `cap` (at most 16 runs) and the run an entry closes.
  const out = new Float64Array(cap + 40)
  const scratch: Scratch = {}
  const read = (i: number): Promise<ClusterData> => (opts.stream ? c.streamCluster(i, scratch) : c.cluster(i))
  const st: RunState = { inRun: false, runStart: 0, n: 0 }
  let dropFirst = false
  if (from > 0 && (await bitOf(c, from - 1)) && (await bitOf(c, from))) {
    st.inRun = true
    if (skipPartial) dropFirst = true
    else st.runStart = await runStartBefore(c, from)
  }
  const take = (): Float64Array | undefined => {
    let b = out.subarray(0, st.n)
    if (dropFirst && st.n >= 2) { b = b.subarray(2); dropFirst = false }
    st.n = 0
    return b.length > 0 ? b : undefined
  }
  let ci = Math.floor(from / c.bitsPerCluster)
  for (let startBit = from - ci * c.bitsPerCluster; ci < c.count; ci++, startBit = 0) {
    if ((ci & 255) === 0) throwIfAborted(opts.signal)
    const base = ci * c.bitsPerCluster
    const e = c.entry(ci)
    if (e === ENTRY_ZEROES) {
      if (st.inRun) { out[st.n++] = st.runStart; out[st.n++] = base + startBit; st.inRun = false }
    } else if (e === ENTRY_ONES) {
      if (!st.inRun) { st.inRun = true; st.runStart = base + startBit }
    } else {
      const words = wordsOf((await read(ci)) as Uint8Array)
      const nw = Math.ceil(c.bitsIn(ci) / 32)
      for (let w = startBit >>> 5, lowBits = startBit & 31; w < nw; lowBits = 0) {
        w = findRuns(words, w, lowBits, nw, base, st, out, cap)
        if (st.n >= cap) {
          const batch = take()
          if (batch) yield batch
        }
      }
    }
    if (st.n >= cap) {
      const batch = take()
      if (batch) yield batch
    }
  }
  if (st.inRun) { out[st.n++] = st.runStart; out[st.n++] = c.nbits; st.inRun = false }
  const batch = take()
  if (batch) yield batch
}

/** Bit k of the bitmap (0 past nbits). */
async function bitOf(c: Clusters, k: number): Promise<boolean> {
  if (k < 0 || k >= c.nbits) return false
  const ci = Math.floor(k / c.bitsPerCluster)
  const d = await c.cluster(ci)
  if (d === ENTRY_ZEROES || d === ENTRY_ONES) return d === ENTRY_ONES
  return bitAt(d, k - ci * c.bitsPerCluster)
}

/** Start of the run containing bit k - 1 (which is set), walking back a word at a time. */
async function runStartBefore(c: Clusters, k: number): Promise<number> {
  let pos = k
  while (pos > 0) {
    const ci = Math.floor((pos - 1) / c.bitsPerCluster)
    const base = ci * c.bitsPerCluster
    const d = await c.cluster(ci)
    if (d === ENTRY_ZEROES) return pos
    if (d === ENTRY_ONES) { pos = base; continue }
    const words = wordsOf(d)
    let j = pos - 1 - base // a set bit; find the highest clear bit below it
    for (let w = j >>> 5; w >= 0; w--, j = w * 32 + 31) {
      const mask = (j & 31) === 31 ? -1 : (1 << ((j & 31) + 1)) - 1
      const clear = ~words[w]! & mask
      if (clear !== 0) return base + w * 32 + (31 - Math.clz32(clear)) + 1
    }
    pos = base
  }
  return 0
}
