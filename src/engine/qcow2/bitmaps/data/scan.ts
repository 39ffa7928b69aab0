/**
 * The scan: one pass over a bitmap's data that builds the block index, the set bits and the
 * run starts before every 4096-bit block, from which counts, heatmaps and extent pages are
 * answered without reading the whole bitmap again.
 *
 * Data clusters stored back to back are read as one run of at most SCAN_RUN_BYTES and counted
 * 1 MiB at a time by the kernel (kernel.ts). Two ways to read, by what the device offers:
 *  - readInto (Node files, memory): each 1 MiB piece is read straight into the kernel's memory,
 *    then counted (no allocation, no copy);
 *  - read only (browser Blob and File): each run is one read, and the next run's read is started
 *    before this one is counted, so the browser reads the file while the kernel counts (a
 *    slice().arrayBuffer() runs off the thread that awaits it); the run is copied into the
 *    kernel's memory 1 MiB at a time.
 */
import { type AbortSignalLike, throwIfAborted } from '../../../errors.js'
import { ENTRY_ONES, ENTRY_ZEROES } from '../table.js'
import { BLOCK_BITS, BLOCK_BYTES, bitAt, maskInPlace } from './bits.js'
import type { Clusters } from './clusters.js'
import { type BlockKernel, type KernelInfo, PIECE_BYTES } from './kernel.js'

/** Largest single read of back-to-back data clusters. */
export const SCAN_RUN_BYTES = 8 * 1024 * 1024

/** Progress of a long read: bytes done of the total. */
export interface Progress {
  (doneBytes: number, totalBytes: number): void
}

/** What a scan can be given: a signal to stop it, a progress callback. */
export interface ScanOptions {
  signal?: AbortSignalLike
  onProgress?: Progress
  /** the index built so far, after each run of data clusters (a map drawn while the scan reads) */
  onIndex?: (soFar: IndexSoFar) => void
}

/** The block index a running scan has built so far: ones[b] is final for every b ≤ blocks. */
export interface IndexSoFar {
  ones: Float64Array
  blocks: number
}

/** The result of a scan. */
export interface BlockIndex {
  /** ones[b] = set bits before block b; length nblocks + 1 */
  ones: Float64Array
  /** runs[b] = run starts before block b; length nblocks + 1 */
  runs: Float64Array
  /** whether bit nbits - 1 is set */
  lastBitSet: boolean
  /** the kernel that counted */
  kernel: KernelInfo
}

/** Scan every data cluster of `c` with `kernel` into a block index. */
export async function scanBlocks(c: Clusters, kernel: BlockKernel, opts: ScanOptions = {}): Promise<BlockIndex> {
  const nblocks = Math.ceil(c.nbits / BLOCK_BITS)
  const ones = new Float64Array(nblocks + 1)
  const runs = new Float64Array(nblocks + 1)
  const total = c.dataBytes
  const perCluster = c.clusterSize / BLOCK_BYTES
  let done = 0
  let onesAcc = 0
  let runsAcc = 0
  let carry = 0 // the last bit of the previous block
  let lastBitSet = false
  /** Blocks [from, to) hold no data cluster: all clear or all set. */
  const fill = (from: number, to: number, set: boolean): void => {
    if (!set) {
      // Native fills: a cold process runs this for every clear cluster (most of a sparse bitmap).
      ones.fill(onesAcc, from + 1, to + 1)
      runs.fill(runsAcc, from + 1, to + 1)
      if (to > from) carry = 0
      return
    }
    for (let b = from; b < to; b++) {
      if (!carry) runsAcc++
      onesAcc += Math.min(BLOCK_BITS, c.nbits - b * BLOCK_BITS)
      carry = 1
      ones[b + 1] = onesAcc
      runs[b + 1] = runsAcc
    }
  }
  /** Count `len` bytes of kernel.piece holding the data from bit `firstBit` (block `fb` on). */
  const count = (len: number, firstBit: number, fb: number): void => {
    const data = kernel.piece.subarray(0, len)
    const validBits = c.nbits - firstBit // bits of this piece inside nbits
    if (validBits > 0 && validBits <= len * 8) lastBitSet = bitAt(data, validBits - 1)
    if (validBits < len * 8) maskInPlace(data, validBits) // the bitmap's last cluster: tail bits do not count
    const nb = len / BLOCK_BYTES
    carry = kernel.count(nb, carry, onesAcc, runsAcc)
    const inIndex = Math.max(0, Math.min(nb, nblocks - fb)) // blocks past nblocks (all tail, masked) add nothing
    if (inIndex > 0) {
      ones.set(kernel.ones.subarray(0, inIndex), fb + 1)
      runs.set(kernel.runs.subarray(0, inIndex), fb + 1)
    }
    onesAcc = kernel.ones[nb - 1]!
    runsAcc = kernel.runs[nb - 1]!
  }
  throwIfAborted(opts.signal)
  // A bitmap whose data fits in half the cluster cache keeps it there from the scan (reads that
  // land in a fresh buffer only: no copy), so the views' first cells after the scan read nothing
  // again (the map's 270,000 cells of a 2 TiB disk touch every cluster).
  const keep = !c.readsInPlace && total * 2 <= c.cacheBudget
  let i = 0
  for (const { first, n, offset, read } of readRuns(c)) {
    throwIfAborted(opts.signal)
    const data = read ? await read : undefined
    if (data && keep) for (let k = 0; k < n; k++) c.keep(first + k, data.subarray(k * c.clusterSize, (k + 1) * c.clusterSize))
    // The entries before this run are all-zeroes or all-ones.
    for (; i < first; i++) fill(i * perCluster, Math.min(nblocks, (i + 1) * perCluster), c.entry(i) === ENTRY_ONES)
    const runBytes = n * c.clusterSize
    for (let off = 0; off < runBytes; off += PIECE_BYTES) {
      const len = Math.min(PIECE_BYTES, runBytes - off)
      if (data) kernel.piece.set(data.subarray(off, off + len))
      else await c.readPaddedInto(offset + off, kernel.piece.subarray(0, len))
      count(len, first * c.bitsPerCluster + off * 8, first * perCluster + off / BLOCK_BYTES)
    }
    done += runBytes
    i = first + n
    opts.onIndex?.({ ones, blocks: Math.min(nblocks, i * perCluster) })
    opts.onProgress?.(done, total)
  }
  for (; i < c.count; i++) fill(i * perCluster, Math.min(nblocks, (i + 1) * perCluster), c.entry(i) === ENTRY_ONES)
  if (c.count > 0 && c.entry(c.count - 1) === ENTRY_ONES) lastBitSet = true
  return { ones, runs, lastBitSet, kernel: kernel.info }
}

/** A run of back-to-back data clusters: clusters [first, first + n) at file `offset`. */
interface DataRun {
  first: number
  n: number
  offset: number
  /** its bytes, when the device has no readInto (the read is started one run ahead) */
  read?: Promise<Uint8Array>
}

/**
 * The scan's data runs (Clusters.dataRuns). For a device without readInto each comes with the
 * read of its bytes, and the read of the next run is started before this one is handed out.
 */
function* readRuns(c: Clusters): Generator<DataRun> {
  const runs = c.dataRuns(SCAN_RUN_BYTES)
  if (c.readsInPlace) {
    for (const [first, n, offset] of runs) yield { first, n, offset }
    return
  }
  const start = (): DataRun | undefined => {
    const r = runs.next()
    if (r.done) return undefined
    const [first, n, offset] = r.value
    const read = c.readPadded(offset, n * c.clusterSize)
    read.catch(() => undefined) // a read-ahead that fails is reported when the scan gets to it
    return { first, n, offset, read }
  }
  for (let run = start(); run;) {
    const next = start()
    yield run
    run = next
  }
}
