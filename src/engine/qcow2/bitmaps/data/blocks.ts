/**
 * Random access to single 512-byte index blocks of a bitmap, for rank, bit and the heatmap's
 * cell boundaries. A lookup reads the block alone, not its cluster: at a wide zoom on a 2^32-bit
 * bitmap every boundary falls in a different 64 KiB cluster. A cluster asked for more than a few
 * times is read whole instead (deep zooms, where boundaries crowd into few clusters).
 */
import { ENTRY_ONES, ENTRY_ZEROES } from '../table.js'
import { BLOCK_BITS, BLOCK_BYTES, maskFrom } from './bits.js'
import { ByteCache } from './cache.js'
import type { ClusterData, Clusters } from './clusters.js'

/** Blocks of one cluster read singly before the whole cluster is read. */
const BLOCK_READS_BEFORE_CLUSTER = 4
/** Budget of the single-block cache. */
const BLOCK_CACHE_BYTES = 4 * 1024 * 1024

/** Index blocks of one bitmap, read on demand and remembered. */
export class Blocks {
  /** single blocks read for lookups */
  private readonly cache = new ByteCache(BLOCK_CACHE_BYTES)
  /** how often each recently used cluster was asked for a block */
  private readonly asks = new Map<number, number>()
  /** the block `known` answered last (consecutive heatmap boundaries often share one) */
  private memoBlock = -1
  private memoData: ClusterData = ENTRY_ZEROES
  private readonly perCluster: number

  constructor(private readonly c: Clusters) {
    this.perCluster = c.clusterSize / BLOCK_BYTES
  }

  /** Block b's 512 bytes (tail bits masked), or the marker of its all-zeroes / all-ones entry. */
  async get(b: number): Promise<ClusterData> {
    const known = this.known(b)
    if (known !== undefined) return known
    const ci = Math.floor(b / this.perCluster)
    const within = (b - ci * this.perCluster) * BLOCK_BYTES
    const asks = (this.asks.get(ci) ?? 0) + 1
    if (this.asks.size >= 4096) this.asks.clear()
    this.asks.set(ci, asks)
    if (this.perCluster > 1 && asks <= BLOCK_READS_BEFORE_CLUSTER) {
      const d = maskFrom(await this.c.readPadded(this.c.entry(ci) + within, BLOCK_BYTES), this.c.nbits - b * BLOCK_BITS)
      this.cache.set(b, d)
      return d
    }
    const d = (await this.c.cluster(ci)) as Uint8Array
    return d.subarray(within, within + BLOCK_BYTES)
  }

  /** Block b's data when it is known without reading (entry kind, caches), else undefined. */
  known(b: number): ClusterData | undefined {
    if (b === this.memoBlock) return this.memoData
    const ci = Math.floor(b / this.perCluster)
    const e = this.c.entry(ci)
    let d: ClusterData | undefined
    if (e === ENTRY_ZEROES || e === ENTRY_ONES) d = e
    else {
      const cl = this.c.cached(ci)
      if (cl) {
        const within = (b - ci * this.perCluster) * BLOCK_BYTES
        d = cl.subarray(within, within + BLOCK_BYTES)
      } else d = this.cache.get(b)
    }
    if (d !== undefined) { this.memoBlock = b; this.memoData = d }
    return d
  }
}
