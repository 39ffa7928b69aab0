/**
 * BitmapReader: one bitmap's data (spec §4.4-§4.5) for the views and the CLI. It reads cluster
 * by cluster through a bounded cache (clusters.ts), answers all-zeroes and all-ones entries
 * without reading, masks tail bits past nbits, and after one scan (scan.ts) keeps a per-block
 * index, so that counts, heatmaps and extent pages never read the whole bitmap again.
 */
import type { BlockDevice } from '../../../device.js'
import type { AbortSignalLike } from '../../../errors.js'
import type { Bitmap } from '../../../image.js'
import { ENTRY_ONES, ENTRY_ZEROES } from '../table.js'
import { BLOCK_BITS, bitAt, countBits } from './bits.js'
import { Blocks } from './blocks.js'
import { type ClusterData, Clusters, type Scratch } from './clusters.js'
import type { KernelInfo } from './kernel.js'
import { createKernel } from './kernel-choice.js'
import { runBatches } from './runs.js'
import { type BlockIndex, type IndexSoFar, type ScanOptions, scanBlocks } from './scan.js'

/** Options of a reader. */
export interface ReaderOptions {
  /** byte budget of the cluster cache (default 16 MiB) */
  cacheBytes?: number
  /** the scan kernel: 'wasm' (default; the JS one only where WebAssembly cannot run) or 'js' (tests) */
  kernel?: 'wasm' | 'js'
}

/** Reads one bitmap's data; counts, ranks and runs after `scan()`. */
export class BitmapReader {
  readonly nbits: number
  readonly granularity: number
  readonly diskLength: number
  readonly clusterSize: number
  readonly bitsPerCluster: number
  /** clusters needed to hold nbits */
  readonly clusters: number
  /** index blocks (BLOCK_BITS bits each) */
  readonly nblocks: number
  private readonly data: Clusters
  private readonly blocks: Blocks
  private readonly kernelChoice: 'wasm' | 'js'
  private index: BlockIndex | undefined
  private scanning: Promise<void> | undefined
  /** the index of the scan running now, as far as it has got */
  private soFar: IndexSoFar | undefined

  constructor(readonly device: BlockDevice, readonly bitmap: Bitmap, diskLength: number, clusterSize: number, opts: ReaderOptions = {}) {
    this.nbits = bitmap.nbits
    this.granularity = bitmap.granularity
    this.diskLength = diskLength
    this.clusterSize = clusterSize
    this.data = new Clusters(device, bitmap.table, bitmap.nbits, clusterSize, opts.cacheBytes ?? 16 * 1024 * 1024)
    this.bitsPerCluster = this.data.bitsPerCluster
    this.clusters = this.data.count
    this.nblocks = Math.ceil(this.nbits / BLOCK_BITS)
    this.blocks = new Blocks(this.data)
    this.kernelChoice = opts.kernel ?? 'wasm'
  }

  /** Whether the block index is built. */
  get scanned(): boolean {
    return this.index !== undefined
  }

  /**
   * The kernel the scan counted with (after scan): 'wasm', or 'js' with the reason the
   * WebAssembly kernel did not run. Callers show a fallback; tests assert 'wasm'.
   */
  get kernel(): KernelInfo | undefined {
    return this.index?.kernel
  }

  /** Bytes of bitmap data that a full scan reads from the file (data clusters only). */
  get dataBytesToRead(): number {
    return this.data.dataBytes
  }

  /** Table entry for cluster i: entries past a short (stale) table read as zeroes. */
  entry(i: number): number {
    return this.data.entry(i)
  }

  /** Cluster i's data with tail bits masked, or the all-zeroes / all-ones marker. */
  cluster(i: number): Promise<ClusterData> {
    return this.data.cluster(i)
  }

  /** Raw stored bytes of cluster i (tail bits as stored; see Clusters.rawCluster). */
  rawCluster(i: number, scratch?: Scratch): Promise<ClusterData> {
    return this.data.rawCluster(i, scratch)
  }

  /** Build the block index: one pass over every data cluster. Idempotent; concurrent calls share one scan. */
  scan(opts: ScanOptions = {}): Promise<void> {
    if (this.index) return Promise.resolve()
    if (!this.scanning) {
      const onIndex = opts.onIndex
      this.scanning = scanBlocks(this.data, createKernel(this.kernelChoice), { ...opts, onIndex: (s) => { this.soFar = s; onIndex?.(s) } })
        .then((ix) => { this.index = ix })
        .finally(() => { this.scanning = undefined; this.soFar = undefined })
    }
    return this.scanning
  }

  /**
   * The block index as far as it is built: all of it after the scan, the part a running scan
   * has counted during it (previews of a big bitmap), undefined before any scan.
   */
  indexSoFar(): IndexSoFar | undefined {
    if (this.index) return { ones: this.index.ones, blocks: this.nblocks }
    return this.soFar
  }

  private built(): BlockIndex {
    if (!this.index) throw new Error('BitmapReader: scan() must complete first')
    return this.index
  }

  /** Number of set bits (after scan). */
  get setBits(): number {
    return this.built().ones[this.nblocks]!
  }

  /** Number of maximal runs of set bits = number of dirty extents (after scan). */
  get runCount(): number {
    return this.built().runs[this.nblocks]!
  }

  /** Dirty bytes over the whole disk (after scan); the last granule may be shorter than the granularity. */
  get dirtyBytes(): number {
    const n = this.setBits
    if (n === 0) return 0
    const g = this.granularity
    const lastLen = this.diskLength - (this.nbits - 1) * g
    return n * g - (this.built().lastBitSet ? g - lastLen : 0)
  }

  /** Set bits before bit k, 0 <= k <= nbits (after scan). */
  async rank(k: number): Promise<number> {
    const { ones } = this.built()
    const b = Math.floor(k / BLOCK_BITS)
    const r = k - b * BLOCK_BITS
    if (r === 0 || b >= this.nblocks) return ones[Math.min(b, this.nblocks)]!
    return ones[b]! + inBlock(await this.blocks.get(b), r).before
  }

  /** Is bit k set? */
  async bit(k: number): Promise<boolean> {
    if (k < 0 || k >= this.nbits) return false
    const b = Math.floor(k / BLOCK_BITS)
    const d = await this.blocks.get(b)
    if (d === ENTRY_ZEROES || d === ENTRY_ONES) return d === ENTRY_ONES
    return bitAt(d, k - b * BLOCK_BITS)
  }

  /**
   * Dirty bytes in [0, x) of the disk (after scan). With `syncOnly` returns undefined instead of
   * reading when the answer needs bitmap data that is not in memory (x inside a block whose
   * bytes are neither cached nor implied by an all-zeroes / all-ones entry); callers batch those.
   */
  dirtyBefore(x: number, syncOnly: true): number | undefined
  dirtyBefore(x: number, syncOnly?: false): Promise<number>
  dirtyBefore(x: number, syncOnly = false): number | undefined | Promise<number> {
    const { ones } = this.built()
    const g = this.granularity
    const xc = Math.max(0, Math.min(x, this.diskLength))
    const k = Math.floor(xc / g)
    const rem = xc - k * g
    if (k % BLOCK_BITS === 0 && rem === 0) return ones[Math.min(k / BLOCK_BITS, this.nblocks)]! * g
    if (k >= this.nbits) return syncOnly ? ones[this.nblocks]! * g : Promise.resolve(ones[this.nblocks]! * g)
    const b = Math.floor(k / BLOCK_BITS)
    const d = this.blocks.known(b)
    if (d !== undefined) {
      const v = this.dirtyInBlock(d, k, rem)
      return syncOnly ? v : Promise.resolve(v)
    }
    if (syncOnly) return undefined
    return this.blocks.get(b).then((bd) => this.dirtyInBlock(bd, k, rem))
  }

  /** dirtyBefore for x = k*g + rem (k < nbits), from the data of k's block. */
  private dirtyInBlock(d: ClusterData, k: number, rem: number): number {
    const b = Math.floor(k / BLOCK_BITS)
    const { before, set } = inBlock(d, k - b * BLOCK_BITS)
    return (this.built().ones[b]! + before) * this.granularity + (rem > 0 && set ? rem : 0)
  }

  /** Block holding the k-th run start (0-based), by binary search on the index. */
  blockOfRun(k: number): number {
    const { runs } = this.built()
    let lo = 0, hi = this.nblocks // the largest b with runs[b] <= k
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (runs[mid]! <= k) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  /** Run starts before block b (after scan). */
  runsBeforeBlock(b: number): number {
    return this.built().runs[b]!
  }

  /**
   * Runs of set bits [start, end) in bit numbers, in order, beginning with the run that
   * contains or follows bit `from`. With `skipPartial`, a run that started before `from` is
   * skipped. One run at a time, over `runBatches` (for a few runs: extent pages, lookups).
   */
  async *runs(from: number, skipPartial = false, signal?: AbortSignalLike): AsyncGenerator<[number, number]> {
    for await (const b of runBatches(this.data, from, skipPartial, { ...(signal ? { signal } : {}), batchRuns: 256 })) {
      for (let i = 0; i < b.length; i += 2) yield [b[i]!, b[i + 1]!]
    }
  }

  /**
   * The runs of `runs(from, skipPartial)` in batches of at most `batchRuns`: each Float64Array
   * holds [start0, end0, start1, end1, ...] bit numbers, valid until the next batch is asked for.
   * A pass over the whole bitmap (qbm map over a million extents): the clusters stream through
   * one buffer, not the cache.
   */
  runBatches(from = 0, skipPartial = false, signal?: AbortSignalLike, batchRuns = 16384): AsyncGenerator<Float64Array> {
    return runBatches(this.data, from, skipPartial, { ...(signal ? { signal } : {}), batchRuns, stream: true })
  }
}

/** In block data `d`: set bits before bit r, and whether bit r is set. */
function inBlock(d: ClusterData, r: number): { before: number; set: boolean } {
  if (d === ENTRY_ZEROES) return { before: 0, set: false }
  if (d === ENTRY_ONES) return { before: r, set: true }
  return { before: countBits(d, 0, r), set: r < d.length * 8 && bitAt(d, r) }
}
