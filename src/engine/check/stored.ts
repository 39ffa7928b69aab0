/**
 * The refcounts stored in the image (docs/format.md §5.1-§5.2), read the way QEMU reads them during a
 * check: the refcount table as the header describes it (entries past the end of the file read
 * as zero), each refcount block on demand through a bounded cache, reserved bits of a table
 * entry ignored for the lookup (REF qcow2_get_refcount masks them off), and a block at an
 * unaligned offset or past QEMU's largest readable offset an error for every cluster it would
 * describe.
 */
import type { BlockDevice } from '../device.js'
import type { Header } from '../qcow2/header.js'
import { FAR, offsetFromWords, u64Of } from '../bytes.js'
import { REFT_OFFSET_MASK, REFT_RESERVED_MASK } from '../qcow2/constants.js'
import { REFTABLE_ENTRY_SIZE, getRefcountEntry } from '../qcow2/refcount.js'
import { readPadded, readable } from '../padded.js'

const OFFSET_LO = Number(REFT_OFFSET_MASK & 0xffffffffn)
const RESERVED_LO = Number(REFT_RESERVED_MASK)

/** One refcount table entry as QEMU sees it. */
export interface ReftableEntry {
  /** entry & REFT_OFFSET_MASK; FAR above 2^53 (docs/format.md §0.3) */
  readonly offset: number
  /** the exact offset when `offset` is FAR, for messages */
  readonly offsetRaw?: bigint
  /** entry & REFT_RESERVED_MASK != 0 */
  readonly reserved: boolean
  /** the offset is a multiple of the cluster size */
  readonly aligned: boolean
  /** the block lies past QEMU's BDRV_MAX_LENGTH: reading it fails */
  readonly unreadable: boolean
}

const NO_BLOCK: ReftableEntry = { offset: 0, reserved: false, aligned: true, unreadable: false }

/** A refcount block as the compare pass sees it. */
export type StoredBlock =
  | { readonly kind: 'none' }
  | { readonly kind: 'unaligned' }
  | { readonly kind: 'unreadable' }
  | { readonly kind: 'block'; readonly data: Uint8Array }

export class StoredRefcounts {
  /** entries per refcount block */
  readonly epb: number
  readonly clusterSize: number
  private readonly cache = new Map<number, StoredBlock>()
  private readonly cacheLimit: number

  private constructor(
    private readonly dev: BlockDevice,
    private readonly h: Header,
    /** every entry of the refcount table, in order */
    readonly entries: readonly ReftableEntry[],
  ) {
    this.epb = (h.clusterSize * 8) / h.refcountBits
    this.clusterSize = h.clusterSize
    this.cacheLimit = Math.max(16, Math.floor((64 * 1024 * 1024) / h.clusterSize))
  }

  /**
   * Read the refcount table. The caller has checked refcount_table_clusters against QEMU's
   * 8 MiB limit, so the read is bounded; only the part inside the file is actually read.
   */
  static async load(dev: BlockDevice, h: Header): Promise<StoredRefcounts> {
    const bytes = h.refcountTableClusters * h.clusterSize
    const raw = await readPadded(dev, h.refcountTableOffset, bytes)
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
    const entries: ReftableEntry[] = []
    const csMask = h.clusterSize - 1
    for (let i = 0; i < bytes / REFTABLE_ENTRY_SIZE; i++) {
      const hi = view.getUint32(i * REFTABLE_ENTRY_SIZE)
      const lo = view.getUint32(i * REFTABLE_ENTRY_SIZE + 4)
      if (hi === 0 && lo === 0) { entries.push(NO_BLOCK); continue }
      const loOff = (lo & OFFSET_LO) >>> 0
      const offset = offsetFromWords(hi, loOff)
      const raw = u64Of(hi, loOff)
      entries.push({
        offset,
        ...(offset >= FAR ? { offsetRaw: raw } : {}),
        reserved: (lo & RESERVED_LO) !== 0,
        aligned: (loOff & csMask) === 0,
        unreadable: !readable(raw, h.clusterSize),
      })
    }
    return new StoredRefcounts(dev, h, entries)
  }

  /** The refcount block describing refcount-table slot `ti`. */
  async block(ti: number): Promise<StoredBlock> {
    const hit = this.cache.get(ti)
    if (hit) return hit
    const e = ti < this.entries.length ? this.entries[ti]! : NO_BLOCK
    let b: StoredBlock
    if (e.offset === 0) b = { kind: 'none' }
    else if (!e.aligned) b = { kind: 'unaligned' }
    else if (e.unreadable) b = { kind: 'unreadable' }
    else b = { kind: 'block', data: await readPadded(this.dev, e.offset, this.h.clusterSize) }
    if (this.cache.size >= this.cacheLimit) this.cache.delete(this.cache.keys().next().value as number)
    this.cache.set(ti, b)
    return b
  }

  /** Stored refcount of cluster c, or undefined when QEMU cannot read it (unaligned block). */
  async get(c: number): Promise<number | undefined> {
    const ti = Math.floor(c / this.epb)
    const b = await this.block(ti)
    if (b.kind === 'unaligned' || b.kind === 'unreadable') return undefined
    if (b.kind === 'none') return 0
    return this.valueAt(b.data, c - ti * this.epb)
  }

  /** Stored refcount of cluster c, exact, for messages ('' when unreadable). */
  async exact(c: number): Promise<string> {
    const ti = Math.floor(c / this.epb)
    const b = await this.block(ti)
    if (b.kind === 'unaligned' || b.kind === 'unreadable') return ''
    if (b.kind === 'none') return '0'
    return this.exactAt(b.data, c - ti * this.epb)
  }

  /** Entry j of a block as a number (64-bit values above 2^53 are approximate). */
  valueAt(data: Uint8Array, j: number): number {
    if (this.h.refcountOrder !== 6) return getRefcountEntry(data, this.h.refcountOrder, j)
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength)
    return v.getUint32(8 * j) * 2 ** 32 + v.getUint32(8 * j + 4)
  }

  /** Entry j of a block, exact, for messages. */
  exactAt(data: Uint8Array, j: number): string {
    if (this.h.refcountOrder !== 6) return String(getRefcountEntry(data, this.h.refcountOrder, j))
    return new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(8 * j).toString()
  }
}
