/**
 * The refcounts stored in the image (docs/format.md §5.1-§5.2), read the way QEMU reads them during a
 * check: the refcount table as the header describes it (entries past the end of the file read
 * as zero), each refcount block on demand through a bounded cache, reserved bits of a table
 * entry ignored for the lookup (REF qcow2_get_refcount masks them off), and a block at an
 * unaligned offset or past QEMU's largest readable offset an error for every cluster it would
 * describe.
 *
 * With the check's stored region (check/tables.ts) the blocks covering the file's clusters are
 * read up front, into the region back to back in refcount-table order (adjacent blocks in one
 * read), where the kernels read cluster c's refcount as entry c of the region; the compare
 * pass reads them all anyway.
 */
import type { BlockDevice } from '../device.js'
import type { Header } from '../qcow2/header.js'
import { FAR, offsetFromWords, u64Of } from '../bytes.js'
import { REFT_OFFSET_MASK, REFT_RESERVED_MASK } from '../qcow2/constants.js'
import { REFTABLE_ENTRY_SIZE, type RefcountSource, decodeRefcountBlock, getRefcountEntry } from '../qcow2/refcount.js'
import { readPadded, readable } from '../padded.js'
import type { TableScanner } from './tables.js'

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
const NONE: StoredBlock = { kind: 'none' }
/** bytes of adjacent blocks preload reads at once (at least one block) */
const PRELOAD_BYTES = 4 << 20

/** A refcount block as the compare pass sees it; `values`: its entries decoded, once, on demand. */
export type StoredBlock =
  | { readonly kind: 'none' }
  | { readonly kind: 'unaligned' }
  | { readonly kind: 'unreadable' }
  | { readonly kind: 'block'; readonly data: Uint8Array; values?: Float64Array }

/**
 * The stored refcounts, read once per check. An edit reuses them (RefcountSource): the planner's
 * loadRefcounts takes the blocks as read and decoded here instead of reading them again.
 */
export class StoredRefcounts implements RefcountSource {
  /** entries per refcount block */
  readonly epb: number
  readonly clusterSize: number
  private readonly cache = new Map<number, StoredBlock>()
  /** blocks kept: 64 MiB of them, bytes and decoded entries together */
  private readonly cacheLimit: number

  /**
   * The blocks of the stored region, by slot: what block() returns for slots [0, preloaded.length)
   * (undefined: an unaligned or unreadable block, read the usual way)
   */
  private readonly preloaded: Array<StoredBlock | undefined> = []
  /** the stored region holds every refcount of the file's clusters (no unaligned or unreadable block among them) */
  allPreloaded = false

  private constructor(
    private readonly dev: BlockDevice,
    private readonly h: Header,
    /** every entry of the refcount table, in order */
    readonly entries: readonly ReftableEntry[],
    /** the refcount table as read (zeros past the end of the file) */
    readonly tableBytes: Uint8Array,
    /** the check's stored region (check/tables.ts), when it has one */
    private readonly region?: Uint8Array,
  ) {
    this.epb = (h.clusterSize * 8) / h.refcountBits
    this.clusterSize = h.clusterSize
    this.cacheLimit = Math.max(16, Math.floor((64 * 1024 * 1024) / (h.clusterSize + 8 * this.epb)))
  }

  /** Read the blocks of the region's slots into it (adjacent ones together, up to 4 MiB a read). */
  private async preload(): Promise<void> {
    const region = this.region
    if (!region) return
    const cs = this.clusterSize
    const slots = region.length / cs
    const size = this.dev.size
    const kind = (e: ReftableEntry): StoredBlock['kind'] =>
      e.offset === 0 ? 'none' : !e.aligned ? 'unaligned' : e.unreadable ? 'unreadable' : 'block'
    let all = true
    for (let ti = 0; ti < slots;) {
      const e = ti < this.entries.length ? this.entries[ti]! : NO_BLOCK
      const k = kind(e)
      if (k !== 'block') {
        if (k === 'none') this.preloaded[ti] = NONE
        else all = false
        ti++
        continue
      }
      // the run of slots whose blocks lie back to back in the file
      let n = 1
      while (ti + n < slots && ti + n < this.entries.length && (n + 1) * cs <= PRELOAD_BYTES) {
        const f = this.entries[ti + n]!
        if (kind(f) !== 'block' || f.offset !== e.offset + n * cs) break
        n++
      }
      const into = region.subarray(ti * cs, (ti + n) * cs)
      const avail = Math.max(0, Math.min(into.length, size - e.offset)) // the rest reads as zeros (the region starts zeroed)
      if (avail > 0) {
        if (this.dev.readInto) await this.dev.readInto(e.offset, into.subarray(0, avail))
        else into.set(await this.dev.read(e.offset, avail))
      }
      for (let k2 = 0; k2 < n; k2++) this.preloaded[ti + k2] = { kind: 'block', data: region.subarray((ti + k2) * cs, (ti + k2 + 1) * cs) }
      ti += n
    }
    this.allPreloaded = all
  }

  /**
   * Read the refcount table. The caller has checked refcount_table_clusters against QEMU's
   * 8 MiB limit, so the read is bounded; only the part inside the file is actually read.
   * `scanner` finds the non-zero entries (most of a table is zeros).
   */
  static async load(dev: BlockDevice, h: Header, scanner: TableScanner): Promise<StoredRefcounts> {
    const r = await StoredRefcounts.loadTable(dev, h, scanner)
    await r.preload()
    return r
  }

  private static async loadTable(dev: BlockDevice, h: Header, scanner: TableScanner): Promise<StoredRefcounts> {
    const bytes = h.refcountTableClusters * h.clusterSize
    const raw = await readPadded(dev, h.refcountTableOffset, bytes)
    const n = bytes / REFTABLE_ENTRY_SIZE
    const entries = new Array<ReftableEntry>(n).fill(NO_BLOCK)
    const csMask = h.clusterSize - 1
    scanner.buffer(bytes).set(raw)
    const view = scanner.view
    for (let p = scanner.next(0, bytes); p < bytes; p = scanner.next(p + REFTABLE_ENTRY_SIZE, bytes)) {
      const hi = view.getUint32(p)
      const lo = view.getUint32(p + 4)
      const loOff = (lo & OFFSET_LO) >>> 0
      const offset = offsetFromWords(hi, loOff)
      const raw = u64Of(hi, loOff)
      entries[p / REFTABLE_ENTRY_SIZE] = {
        offset,
        ...(offset >= FAR ? { offsetRaw: raw } : {}),
        reserved: (lo & RESERVED_LO) !== 0,
        aligned: (loOff & csMask) === 0,
        unreadable: !readable(raw, h.clusterSize),
      }
    }
    return new StoredRefcounts(dev, h, entries, raw, scanner.stored)
  }

  /** Whether the stored region holds slot `ti` (a block, or none: zeros), for the compare kernel. */
  preloadedAt(ti: number): boolean {
    return this.preloaded[ti] !== undefined
  }

  /** The refcount block describing refcount-table slot `ti`. */
  async block(ti: number): Promise<StoredBlock> {
    const pre = this.preloaded[ti]
    if (pre) return pre
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

  /** The entries of a block, decoded once (decodeRefcountBlock). */
  values(b: StoredBlock & { kind: 'block' }): Float64Array {
    if (!b.values) {
      b.values = new Float64Array(this.epb)
      decodeRefcountBlock(b.data, this.h.refcountOrder, b.values)
    }
    return b.values
  }

  /**
   * Stored refcount of cluster c without reading anything: as `get` when the block is already
   * read (or there is none, or it cannot be read), null when it still has to be read (then ask
   * `get`). The walk asks this for every entry it checks (check/copied.ts).
   */
  peek(c: number): number | undefined | null {
    const ti = Math.floor(c / this.epb)
    const pre = this.preloaded[ti]
    if (pre) return pre.kind === 'none' ? 0 : getRefcountEntry(this.region!, this.h.refcountOrder, c)
    const b = this.cache.get(ti)
    if (b) {
      if (b.kind === 'block') return this.values(b)[c - ti * this.epb]!
      return b.kind === 'none' ? 0 : undefined
    }
    const e = ti < this.entries.length ? this.entries[ti]! : NO_BLOCK
    if (e.offset === 0) return 0
    return !e.aligned || e.unreadable ? undefined : null
  }

  /** Stored refcount of cluster c, or undefined when QEMU cannot read it (unaligned block). */
  async get(c: number): Promise<number | undefined> {
    const ti = Math.floor(c / this.epb)
    const b = await this.block(ti)
    if (b.kind === 'unaligned' || b.kind === 'unreadable') return undefined
    if (b.kind === 'none') return 0
    return this.values(b)[c - ti * this.epb]!
  }

  /** RefcountSource: the bytes of the block at `slot` when it was read from `offset`. */
  async blockBytes(slot: number, offset: number): Promise<Uint8Array | undefined> {
    return (await this.sourceBlock(slot, offset))?.data
  }

  private async sourceBlock(slot: number, offset: number): Promise<(StoredBlock & { kind: 'block' }) | undefined> {
    if (slot >= this.entries.length || this.entries[slot]!.offset !== offset) return undefined
    const b = await this.block(slot)
    return b.kind === 'block' ? b : undefined
  }

  /** Stored refcount of cluster c, exact, for messages ('' when unreadable). */
  async exact(c: number): Promise<string> {
    const ti = Math.floor(c / this.epb)
    const b = await this.block(ti)
    if (b.kind === 'unaligned' || b.kind === 'unreadable') return ''
    if (b.kind === 'none') return '0'
    return this.exactAt(b.data, c - ti * this.epb)
  }

  /** Entry j of a block, exact, for messages. */
  exactAt(data: Uint8Array, j: number): string {
    if (this.h.refcountOrder !== 6) return String(getRefcountEntry(data, this.h.refcountOrder, j))
    return new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(8 * j).toString()
  }
}
