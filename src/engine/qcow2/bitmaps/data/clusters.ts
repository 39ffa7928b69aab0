/**
 * A bitmap's stored data, cluster by cluster (spec §4.4): table entries, all-zeroes / all-ones
 * entries answered without reading, data clusters read through a bounded cache with their tail
 * bits masked (spec §4.5), and the zero padding of a cluster that the file ends inside.
 */
import type { BlockDevice } from '../../../device.js'
import { ENTRY_ONES, ENTRY_ZEROES } from '../table.js'
import { ByteCache } from './cache.js'
import { maskFrom } from './bits.js'

/** A cluster's data with tail bits masked, or the marker of an all-zeroes / all-ones entry. */
export type ClusterData = Uint8Array | typeof ENTRY_ZEROES | typeof ENTRY_ONES

/** A buffer a pass over the data reuses for every cluster it reads (see `rawCluster`). */
export interface Scratch {
  buf?: Uint8Array
}

/** The data clusters of one bitmap on a device. */
export class Clusters {
  /** clusters needed to hold nbits */
  readonly count: number
  readonly bitsPerCluster: number
  private readonly cache: ByteCache
  private dataBytesKnown: number | undefined

  constructor(
    readonly device: BlockDevice,
    private readonly table: Float64Array,
    readonly nbits: number,
    readonly clusterSize: number,
    cacheBytes: number,
  ) {
    this.bitsPerCluster = clusterSize * 8
    this.count = Math.ceil(nbits / this.bitsPerCluster)
    this.cache = new ByteCache(cacheBytes)
  }

  /** Table entry for cluster i: entries past a short (stale) table read as zeroes. */
  entry(i: number): number {
    return i < this.table.length ? this.table[i]! : ENTRY_ZEROES
  }

  /** Bits of cluster i inside nbits. */
  bitsIn(i: number): number {
    return Math.min(this.bitsPerCluster, this.nbits - i * this.bitsPerCluster)
  }

  /** Bytes of data clusters (what reading every bit costs). */
  get dataBytes(): number {
    if (this.dataBytesKnown === undefined) {
      let n = 0
      for (let i = 0; i < this.count; i++) if (this.entry(i) > ENTRY_ONES) n += this.clusterSize
      this.dataBytesKnown = n
    }
    return this.dataBytesKnown
  }

  /** Whether the device reads into a caller's buffer (BlockDevice.readInto). */
  get readsInPlace(): boolean {
    return typeof this.device.readInto === 'function'
  }

  /** Read `len` bytes at `off`, zero-padded where the file ends early. */
  async readPadded(off: number, len: number): Promise<Uint8Array> {
    const avail = Math.max(0, Math.min(len, this.device.size - off))
    if (avail === len) return this.device.read(off, len)
    const out = new Uint8Array(len)
    if (avail > 0) out.set(await this.device.read(off, avail))
    return out
  }

  /** Fill `target` from `off` (device.readInto; only when readsInPlace), zero-padded where the file ends early. */
  async readPaddedInto(off: number, target: Uint8Array): Promise<void> {
    const len = target.length
    const avail = Math.max(0, Math.min(len, this.device.size - off))
    if (avail < len) target.fill(0, avail)
    if (avail > 0) await this.device.readInto!(off, avail === len ? target : target.subarray(0, avail))
  }

  /** Bytes the cluster cache may hold. */
  get cacheBudget(): number {
    return this.cache.capacity
  }

  /** Keep `bytes` (cluster i as stored, read by a pass over the data) in the cache, tail bits masked. */
  keep(i: number, bytes: Uint8Array): void {
    this.cache.set(i, maskFrom(bytes, this.bitsIn(i)))
  }

  /** Cluster i from the cache, if it is there. */
  cached(i: number): Uint8Array | undefined {
    return this.cache.get(i)
  }

  /** Cluster i's data with tail bits masked (cached), or the all-zeroes / all-ones marker. */
  async cluster(i: number): Promise<ClusterData> {
    const e = this.entry(i)
    if (e === ENTRY_ZEROES || e === ENTRY_ONES) return e
    const hit = this.cache.get(i)
    if (hit) return hit
    const data = maskFrom(await this.readPadded(e, this.clusterSize), this.bitsIn(i))
    this.cache.set(i, data)
    return data
  }

  /**
   * Cluster i for a pass over many clusters: from the cache when it is there, else read into
   * `scratch` (valid until the next call with it) when the device reads in place, so the pass
   * streams through one buffer instead of filling the cache; tail bits masked.
   */
  async streamCluster(i: number, scratch: Scratch): Promise<ClusterData> {
    const e = this.entry(i)
    if (e === ENTRY_ZEROES || e === ENTRY_ONES) return e
    const hit = this.cache.get(i)
    if (hit) return hit
    if (!this.readsInPlace) return this.cluster(i)
    const raw = (await this.rawCluster(i, scratch)) as Uint8Array
    return maskFrom(raw, this.bitsIn(i)) // a copy only for the last cluster, when it has tail bits
  }

  /**
   * Raw stored bytes of cluster i (tail bits as stored, for the digest). With `scratch` and a
   * device that reads in place the bytes land in the scratch buffer (valid until the next call
   * with it), so a full pass allocates nothing per cluster.
   */
  async rawCluster(i: number, scratch?: Scratch): Promise<ClusterData> {
    const e = this.entry(i)
    if (e === ENTRY_ZEROES || e === ENTRY_ONES) return e
    if (scratch && this.readsInPlace) {
      const buf = scratch.buf ??= new Uint8Array(this.clusterSize)
      await this.readPaddedInto(e, buf)
      return buf
    }
    return this.readPadded(e, this.clusterSize)
  }

  /**
   * The data clusters in table order, coalesced the way the scan reads them: [first cluster,
   * clusters, file offset] for each run of back-to-back data clusters, at most `maxBytes` long.
   */
  *dataRuns(maxBytes: number): Generator<[number, number, number]> {
    for (let i = 0; i < this.count;) {
      const e = this.entry(i)
      if (e === ENTRY_ZEROES || e === ENTRY_ONES) { i++; continue }
      let n = 1
      while (i + n < this.count && (n + 1) * this.clusterSize <= Math.max(maxBytes, this.clusterSize) && this.entry(i + n) === e + n * this.clusterSize) n++
      yield [i, n, e]
      i += n
    }
  }
}
