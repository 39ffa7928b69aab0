/**
 * Bitmap data (spec §4.4-§4.5): a little-endian bit array split into clusters by the table.
 * BitmapReader reads it cluster by cluster through a bounded cache, answers all-zeroes and
 * all-ones entries without reading, masks tail bits past nbits, and after one scan keeps a
 * per-block index (set bits and run starts before each 4096-bit block) so that counts,
 * heatmaps and extent pages never read the whole bitmap again.
 */
import type { BlockDevice } from '../../device.js'
import { type AbortSignalLike, throwIfAborted } from '../../errors.js'
import type { Bitmap } from '../../image.js'
import { ENTRY_ONES, ENTRY_ZEROES } from './table.js'

/** Bits per index block (512 bytes; every cluster size is a multiple). */
export const BLOCK_BITS = 4096
const BLOCK_BYTES = BLOCK_BITS / 8
/** Largest single read while scanning. */
const SCAN_CHUNK = 8 * 1024 * 1024

export interface Progress {
  (doneBytes: number, totalBytes: number): void
}

export interface ScanOptions {
  signal?: AbortSignalLike
  onProgress?: Progress
}

export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333)
  x = (x + (x >>> 4)) & 0x0f0f0f0f
  return Math.imul(x, 0x01010101) >>> 24
}

function ctz32(x: number): number {
  return 31 - Math.clz32(x & -x)
}

type ClusterData = Uint8Array | typeof ENTRY_ZEROES | typeof ENTRY_ONES

/** Byte-budgeted LRU of data clusters (Map keeps insertion order). */
class ClusterCache {
  private readonly map = new Map<number, Uint8Array>()
  private bytes = 0
  constructor(private readonly budget: number) {}
  get(k: number): Uint8Array | undefined {
    const v = this.map.get(k)
    if (v) { this.map.delete(k); this.map.set(k, v) }
    return v
  }
  set(k: number, v: Uint8Array): void {
    if (this.map.has(k)) return
    this.map.set(k, v)
    this.bytes += v.length
    while (this.bytes > this.budget && this.map.size > 1) {
      const [first, fv] = this.map.entries().next().value as [number, Uint8Array]
      this.map.delete(first)
      this.bytes -= fv.length
    }
  }
}

export interface ReaderOptions {
  /** byte budget of the cluster cache (default 16 MiB) */
  cacheBytes?: number
}

export class BitmapReader {
  readonly nbits: number
  readonly granularity: number
  readonly diskLength: number
  readonly clusterSize: number
  readonly bitsPerCluster: number
  /** clusters needed to hold nbits */
  readonly clusters: number
  readonly nblocks: number
  private readonly table: Float64Array
  private readonly cache: ClusterCache
  /** onesBefore[b] = set bits before block b; length nblocks+1 (after scan) */
  private onesBefore: Float64Array | undefined
  /** runsBefore[b] = run starts at bit positions before block b */
  private runsBefore: Float64Array | undefined
  private scanning: Promise<void> | undefined

  constructor(readonly device: BlockDevice, readonly bitmap: Bitmap, diskLength: number, clusterSize: number, opts: ReaderOptions = {}) {
    this.nbits = bitmap.nbits
    this.granularity = bitmap.granularity
    this.diskLength = diskLength
    this.clusterSize = clusterSize
    this.bitsPerCluster = clusterSize * 8
    this.clusters = Math.ceil(this.nbits / this.bitsPerCluster)
    this.nblocks = Math.ceil(this.nbits / BLOCK_BITS)
    this.table = bitmap.table
    this.cache = new ClusterCache(opts.cacheBytes ?? 16 * 1024 * 1024)
  }

  get scanned(): boolean {
    return this.onesBefore !== undefined
  }

  /** Bytes of bitmap data that a full scan reads from the file (data clusters only). */
  get dataBytesToRead(): number {
    let n = 0
    for (let i = 0; i < this.clusters; i++) if (this.entry(i) > ENTRY_ONES) n += this.clusterSize
    return n
  }

  /** Table entry for cluster i: entries past a short (stale) table read as zeroes. */
  entry(i: number): number {
    return i < this.table.length ? this.table[i]! : ENTRY_ZEROES
  }

  /** Bits of cluster i inside nbits. */
  private bitsInCluster(i: number): number {
    return Math.min(this.bitsPerCluster, this.nbits - i * this.bitsPerCluster)
  }

  /** Read `len` bytes at `off`, zero-padded where the file ends early. */
  private async readPadded(off: number, len: number): Promise<Uint8Array> {
    const avail = Math.max(0, Math.min(len, this.device.size - off))
    if (avail === len) return this.device.read(off, len)
    const out = new Uint8Array(len)
    if (avail > 0) out.set(await this.device.read(off, avail))
    return out
  }

  /** Zero the bits of cluster i at or past nbits (spec §4.5: tail bits do not count). */
  private maskTail(i: number, data: Uint8Array): Uint8Array {
    const bits = this.bitsInCluster(i)
    if (bits >= this.bitsPerCluster) return data
    const out = data.slice()
    const fullBytes = bits >>> 3
    const rem = bits & 7
    if (rem) out[fullBytes] = out[fullBytes]! & ((1 << rem) - 1)
    out.fill(0, fullBytes + (rem ? 1 : 0))
    return out
  }

  /** Cluster i's data with tail bits masked, or the all-zeroes / all-ones marker. */
  async cluster(i: number): Promise<ClusterData> {
    const e = this.entry(i)
    if (e === ENTRY_ZEROES || e === ENTRY_ONES) return e
    const hit = this.cache.get(i)
    if (hit) return hit
    const data = this.maskTail(i, await this.readPadded(e, this.clusterSize))
    this.cache.set(i, data)
    return data
  }

  /** Raw stored bytes of cluster i (tail bits as stored), for the digest. */
  async rawCluster(i: number): Promise<ClusterData> {
    const e = this.entry(i)
    if (e === ENTRY_ZEROES || e === ENTRY_ONES) return e
    return this.readPadded(e, this.clusterSize)
  }

  /** Build the block index: one pass over every data cluster. Idempotent. */
  scan(opts: ScanOptions = {}): Promise<void> {
    if (this.onesBefore) return Promise.resolve()
    if (!this.scanning) {
      this.scanning = this.doScan(opts).finally(() => { this.scanning = undefined })
    }
    return this.scanning
  }

  private async doScan(opts: ScanOptions): Promise<void> {
    const ones = new Float64Array(this.nblocks + 1)
    const runs = new Float64Array(this.nblocks + 1)
    const total = this.dataBytesToRead
    let done = 0
    let onesAcc = 0
    let runsAcc = 0
    let carry = 0 // last bit of the previous block
    const blocksPerCluster = this.clusterSize / BLOCK_BYTES
    let i = 0
    while (i < this.clusters) {
      throwIfAborted(opts.signal)
      const e = this.entry(i)
      const firstBlock = i * blocksPerCluster
      const lastBlock = Math.min(this.nblocks, firstBlock + blocksPerCluster)
      if (e === ENTRY_ZEROES) {
        for (let b = firstBlock; b < lastBlock; b++) { ones[b + 1] = onesAcc; runs[b + 1] = runsAcc }
        carry = 0
        i++
        continue
      }
      if (e === ENTRY_ONES) {
        for (let b = firstBlock; b < lastBlock; b++) {
          const bits = Math.min(BLOCK_BITS, this.nbits - b * BLOCK_BITS)
          if (!carry) runsAcc++
          onesAcc += bits
          carry = 1
          ones[b + 1] = onesAcc
          runs[b + 1] = runsAcc
        }
        i++
        continue
      }
      // Coalesce clusters stored back to back into one read.
      let n = 1
      while (i + n < this.clusters && n * this.clusterSize < SCAN_CHUNK && this.entry(i + n) === e + n * this.clusterSize) n++
      const buf = await this.readPadded(e, n * this.clusterSize)
      for (let k = 0; k < n; k++) {
        const ci = i + k
        const data = this.maskTail(ci, buf.subarray(k * this.clusterSize, (k + 1) * this.clusterSize))
        const words = wordsOf(data)
        const fb = ci * blocksPerCluster
        const lb = Math.min(this.nblocks, fb + blocksPerCluster)
        for (let b = fb; b < lb; b++) {
          const w0 = (b - fb) * (BLOCK_BYTES / 4)
          for (let w = w0; w < w0 + BLOCK_BYTES / 4; w++) {
            const x = words[w]!
            if (x === 0) { carry = 0; continue }
            onesAcc += popcount32(x)
            runsAcc += popcount32(x & ~((x << 1) | carry))
            carry = x >>> 31
          }
          ones[b + 1] = onesAcc
          runs[b + 1] = runsAcc
        }
      }
      done += n * this.clusterSize
      opts.onProgress?.(done, total)
      i += n
    }
    this.onesBefore = ones
    this.runsBefore = runs
  }

  private index(): { ones: Float64Array; runs: Float64Array } {
    if (!this.onesBefore || !this.runsBefore) throw new Error('BitmapReader: scan() must complete first')
    return { ones: this.onesBefore, runs: this.runsBefore }
  }

  /** Number of set bits (after scan). */
  get setBits(): number {
    return this.index().ones[this.nblocks]!
  }

  /** Number of maximal runs of set bits = number of dirty extents (after scan). */
  get runCount(): number {
    return this.index().runs[this.nblocks]!
  }

  /** Dirty bytes over the whole disk (after scan). */
  get dirtyBytes(): number {
    return this.setBits === 0 ? 0 : this.dirtyBefore(this.diskLength, true) as number
  }

  /** Set bits before bit k, 0 <= k <= nbits (after scan). */
  async rank(k: number): Promise<number> {
    const { ones } = this.index()
    const b = Math.floor(k / BLOCK_BITS)
    const r = k - b * BLOCK_BITS
    if (r === 0 || b >= this.nblocks) return ones[Math.min(b, this.nblocks)]!
    const ci = Math.floor((b * BLOCK_BITS) / this.bitsPerCluster)
    const d = await this.cluster(ci)
    let extra: number
    if (d === ENTRY_ZEROES) extra = 0
    else if (d === ENTRY_ONES) extra = r
    else extra = countBits(d, b * BLOCK_BITS - ci * this.bitsPerCluster, r)
    return ones[b]! + extra
  }

  /** Is bit k set? */
  async bit(k: number): Promise<boolean> {
    if (k < 0 || k >= this.nbits) return false
    const ci = Math.floor(k / this.bitsPerCluster)
    const d = await this.cluster(ci)
    if (d === ENTRY_ZEROES) return false
    if (d === ENTRY_ONES) return true
    const j = k - ci * this.bitsPerCluster
    return ((d[j >>> 3]! >>> (j & 7)) & 1) === 1
  }

  /**
   * Dirty bytes in [0, x) of the disk. With `syncOnly` returns undefined instead of reading
   * when x is not at a granule boundary inside a block (callers batch those).
   */
  dirtyBefore(x: number, syncOnly: true): number | undefined
  dirtyBefore(x: number, syncOnly?: false): Promise<number>
  dirtyBefore(x: number, syncOnly = false): number | undefined | Promise<number> {
    const { ones } = this.index()
    const g = this.granularity
    const xc = Math.max(0, Math.min(x, this.diskLength))
    const k = Math.floor(xc / g)
    const rem = xc - k * g
    if (k % BLOCK_BITS === 0 && rem === 0) return ones[Math.min(k / BLOCK_BITS, this.nblocks)]! * g
    if (syncOnly) {
      if (k >= this.nbits) return ones[this.nblocks]! * g
      return undefined
    }
    return (async () => {
      const rk = await this.rank(k)
      return rk * g + (rem > 0 && (await this.bit(k)) ? rem : 0)
    })()
  }

  /** Block holding the k-th run start (0-based), by binary search on the index. */
  blockOfRun(k: number): number {
    const { runs } = this.index()
    let lo = 0, hi = this.nblocks // runs[lo] <= k < runs[hi] ... find largest b with runs[b] <= k
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (runs[mid]! <= k) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  runsBeforeBlock(b: number): number {
    return this.index().runs[b]!
  }

  /**
   * Runs of set bits [start, end) in bit numbers, in order, beginning with the run that
   * contains or follows bit `from`. With `skipPartial`, a run that started before `from` is skipped.
   */
  async *runs(from: number, skipPartial = false, signal?: AbortSignalLike): AsyncGenerator<[number, number]> {
    if (from >= this.nbits) return
    let inRun = false
    let skipping = false
    let runStart = 0
    if (from > 0 && (await this.bit(from - 1)) && (await this.bit(from))) {
      // `from` is inside a run that began earlier: report it from its real start, or skip it.
      inRun = true
      if (skipPartial) skipping = true
      else runStart = await this.runStartBefore(from)
    }
    let ci = Math.floor(from / this.bitsPerCluster)
    let startBit = from - ci * this.bitsPerCluster
    for (; ci < this.clusters; ci++, startBit = 0) {
      if ((ci & 255) === 0) throwIfAborted(signal)
      const base = ci * this.bitsPerCluster
      const d = await this.cluster(ci)
      if (d === ENTRY_ZEROES) {
        if (inRun && !skipping) yield [runStart, base + startBit]
        inRun = skipping = false
        continue
      }
      if (d === ENTRY_ONES) {
        if (!inRun) { inRun = true; runStart = base + startBit }
        continue
      }
      const words = wordsOf(d)
      const nw = Math.ceil(this.bitsInCluster(ci) / 32)
      for (let w = startBit >>> 5, p = startBit & 31; w < nw; w++, p = 0) {
        const x = words[w]!
        while (p < 32) {
          const m = -1 << p
          if (inRun) {
            const y = ~x & m
            if (y === 0) break
            const z = ctz32(y)
            if (!skipping) yield [runStart, base + w * 32 + z]
            inRun = skipping = false
            p = z
          } else {
            const y = x & m
            if (y === 0) break
            const s = ctz32(y)
            inRun = true
            runStart = base + w * 32 + s
            p = s
          }
        }
      }
    }
    if (inRun && !skipping) yield [runStart, this.nbits]
  }

  /** Start of the run containing bit k (k set), walking back word by word. */
  private async runStartBefore(k: number): Promise<number> {
    let pos = k
    while (pos > 0) {
      const ci = Math.floor((pos - 1) / this.bitsPerCluster)
      const base = ci * this.bitsPerCluster
      const d = await this.cluster(ci)
      if (d === ENTRY_ZEROES) return pos
      if (d === ENTRY_ONES) { pos = base; continue }
      let j = pos - 1 - base
      while (j >= 0) {
        if (((d[j >>> 3]! >>> (j & 7)) & 1) === 0) return base + j + 1
        j--
      }
      pos = base
    }
    return 0
  }
}

/** View a cluster as 32-bit little-endian words (copies when unaligned). */
function wordsOf(d: Uint8Array): Uint32Array {
  if (d.byteOffset % 4 === 0 && d.length % 4 === 0) return new Uint32Array(d.buffer, d.byteOffset, d.length >>> 2)
  const c = new Uint8Array(Math.ceil(d.length / 4) * 4)
  c.set(d)
  return new Uint32Array(c.buffer)
}

/** Set bits in [from, from+len) bits of `d`. */
function countBits(d: Uint8Array, from: number, len: number): number {
  let n = 0
  let k = from
  const end = from + len
  while (k < end && (k & 7)) { n += (d[k >>> 3]! >>> (k & 7)) & 1; k++ }
  while (k + 8 <= end) { n += popcount32(d[k >>> 3]!); k += 8 }
  while (k < end) { n += (d[k >>> 3]! >>> (k & 7)) & 1; k++ }
  return n
}
