/**
 * Rebuild the refcount every cluster should have, from every structure that references it
 * (spec §5.3; QEMU block/qcow2-refcount.c calculate_refcounts, check_refcounts_l1/_l2,
 * check_refblocks, and block/qcow2-bitmap.c qcow2_check_bitmaps_refcounts):
 *
 *   cluster 0 (header); the active L1 table, its L2 tables and (without an external data
 *   file) their data clusters; every snapshot's L1 table, L2 tables and data clusters; the
 *   snapshot table; the refcount table; the LUKS header area; the bitmap directory, tables and
 *   data clusters; every refcount block.
 *
 * A cluster reachable along several paths gets one reference per path, as in QEMU, so a
 * cluster shared by two snapshots expects refcount 2. Along the way the same entry checks QEMU
 * makes are counted as corruptions with QEMU's messages.
 *
 * Snapshots normally share L2 tables with the active L1, so each distinct L2 table is read and
 * decoded once, and its references are added as many times as L1 entries point to it. The
 * result is the same as QEMU's walk (counts are order independent, saturation included).
 */
import type { BlockDevice } from '../device.js'
import { type AbortSignalLike, throwIfAborted } from '../errors.js'
import type { Header } from '../qcow2/header.js'
import { maxRefcount } from '../qcow2/refcount.js'
import { checkTableEntry } from '../qcow2/bitmaps/constraints.js'
import { ReferenceCounts } from './counts.js'
import type { Findings } from './findings.js'
import { type CryptoHeaderArea, type LoadedDirectory, tableOffsetOf } from './open.js'
import { hex, readInFile, readPadded, readReusing, readable } from './padded.js'
import { MAX_L1_ENTRIES, type Snapshot } from './snapshots.js'
import type { StoredRefcounts } from './stored.js'

/** A byte offset: a number, or a bigint when it is above 2^53 (always past the end of the file). */
export type Offset = number | bigint

const MAX_SAFE = Number.MAX_SAFE_INTEGER
const TWO32 = 2 ** 32
/** L1 entries read per chunk. */
const L1_CHUNK = 65536

/** The offset in the words hi:lo, exact (a bigint above 2^53). */
export function offsetOf(hi: number, lo: number): Offset {
  const v = hi * TWO32 + lo
  return v <= MAX_SAFE ? v : (BigInt(hi) << 32n) | BigInt(lo)
}

/** The u64 hi:lo, for messages. */
export function u64(hi: number, lo: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo)
}

/** QEMU's QCow2ClusterType of an L2 entry (qcow2.h qcow2_get_cluster_type). */
export type ClusterType = 'compressed' | 'zero-alloc' | 'zero-plain' | 'normal' | 'unallocated'

/**
 * Type of the L2 entry with high and low words hi, lo. With extended L2 entries bit 0 is not a
 * zero flag (the subcluster bitmap says that). With an external data file, offset 0 with the
 * COPIED flag is a real cluster at offset 0 of the data file.
 */
export function clusterType(hi: number, lo: number, extendedL2: boolean, externalData: boolean): ClusterType {
  if ((hi & 0x40000000) !== 0) return 'compressed'
  const hasOff = (hi & 0x00ffffff) !== 0 || (lo & 0xfffffe00) !== 0
  if ((lo & 1) !== 0 && !extendedL2) return hasOff ? 'zero-alloc' : 'zero-plain'
  if (!hasOff) return externalData && (hi & 0x80000000) !== 0 ? 'normal' : 'unallocated'
  return 'normal'
}

/** Fragmentation counters of the active L1 (QEMU BlockFragInfo, CHECK_FRAG_INFO). */
export interface FragInfo {
  allocated: number
  fragmented: number
  compressed: number
}

/** Everything calculate_refcounts looks at, decoded by the open and the snapshot table. */
export interface ReferenceInput {
  readonly device: BlockDevice
  readonly header: Header
  readonly extendedL2: boolean
  readonly externalData: boolean
  readonly snapshots: readonly Snapshot[]
  readonly snapshotTable: { readonly offset: number; readonly size: number }
  readonly crypto?: CryptoHeaderArea
  readonly directory?: LoadedDirectory
  readonly stored: StoredRefcounts
  readonly findings: Findings
  readonly signal?: AbortSignalLike
  readonly onProgress?: (done: number, total: number) => void
}

/** The expected refcounts, and what the walk counted on the way. */
export interface References {
  readonly counts: ReferenceCounts
  readonly frag: FragInfo
  /** QEMU's calculate_refcounts returned an error: the check stops there (exit 1) */
  readonly failed?: string
}

/** How often an L2 table is referenced: by any L1, and by the active L1. */
interface L2Use {
  total: number
  active: number
}

/** QEMU's calculate_refcounts, read-only. */
export async function calculateReferences(input: ReferenceInput): Promise<References> {
  const w = new Walker(input)
  const failed = await w.run()
  return { counts: w.counts, frag: w.frag, ...(failed ? { failed } : {}) }
}

class Walker {
  readonly counts: ReferenceCounts
  readonly frag: FragInfo = { allocated: 0, fragmented: 0, compressed: 0 }
  private readonly dev: BlockDevice
  private readonly h: Header
  private readonly cs: number
  private readonly fileSize: number
  private readonly f: Findings
  private readonly l2Uses = new Map<number, L2Use>()
  /** clusters bitmap structures reference: how often, and the first structure (overlap check) */
  private readonly bitmapRefs = new Map<number, { refs: number; what: string }>()
  /** one buffer for every L2 table when the device can read into it (no 64 KiB of garbage per table) */
  private readonly l2Scratch: { buf?: Uint8Array } = {}
  private overflowHint = false

  constructor(private readonly input: ReferenceInput) {
    this.dev = input.device
    this.h = input.header
    this.cs = input.header.clusterSize
    this.fileSize = input.device.size
    this.f = input.findings
    this.counts = new ReferenceCounts(Math.ceil(this.fileSize / this.cs), maxRefcount(input.header.refcountOrder))
  }

  async run(): Promise<string | undefined> {
    const { h, cs, input } = this
    this.inc(0, cs)
    const failed = await this.l1(BigInt(h.l1TableOffset), h.l1Size, true)
    if (failed) return failed
    if (input.externalData && input.snapshots.length > 0) {
      this.f.error(`ERROR ${input.snapshots.length} snapshots in image with data file`)
    }
    for (const sn of input.snapshots) {
      throwIfAborted(input.signal)
      if (!sn.l1Aligned) {
        this.f.error(`ERROR snapshot ${sn.id} (${sn.name}) l1_offset=0x${hex(sn.l1TableOffsetRaw)}: L1 table is not cluster aligned; snapshot table entry corrupted`, { offset: sn.offset })
        continue
      }
      if (sn.l1Size > MAX_L1_ENTRIES) {
        this.f.error(`ERROR snapshot ${sn.id} (${sn.name}) l1_size=0x${hex(sn.l1Size)}: L1 table is too large; snapshot table entry corrupted`, { offset: sn.offset })
        continue
      }
      const failed = await this.l1(sn.l1TableOffsetRaw, sn.l1Size, false)
      if (failed) return failed
    }
    await this.l2Tables()
    this.inc(input.snapshotTable.offset, input.snapshotTable.size)
    this.inc(h.refcountTableOffset, h.refcountTableClusters * cs)
    if (input.crypto && input.crypto.length > 0) this.inc(input.crypto.offset, input.crypto.length)
    if (input.directory) {
      const failed = await this.bitmaps(input.directory)
      if (failed) return failed
    }
    this.refblocks()
    this.bitmapOverlaps()
    return undefined
  }

  /** Count a bitmap structure's references and remember them for the overlap check. */
  private incBitmap(offset: Offset, size: number, what: string, times = 1): void {
    this.inc(offset, size, times)
    if (typeof offset !== 'number' || size <= 0 || offset + size > this.fileSize + this.cs) return
    const last = Math.floor((offset + size - 1) / this.cs)
    for (let k = Math.floor(offset / this.cs); k <= last; k++) {
      const r = this.bitmapRefs.get(k)
      if (r) r.refs += times
      else this.bitmapRefs.set(k, { refs: times, what })
    }
  }

  /**
   * A cluster used by a bitmap structure and by other metadata (header, L1/L2, guest data,
   * snapshots, refcount structures) with a refcount that counts both: qemu-img check is content
   * (refcount = references), but one of the two is overwriting the other. A warning, as the
   * exit code must stay QEMU's.
   */
  private bitmapOverlaps(): void {
    let shown = 0
    for (const [k, r] of this.bitmapRefs) {
      if (this.counts.get(k) <= r.refs) continue
      if (shown++ < 20) this.f.warning(`cluster ${k} (offset 0x${hex(k * this.cs)}) holds the ${r.what} and is also used by other metadata or guest data: one of them overwrites the other`, { cluster: k, offset: k * this.cs })
    }
    if (shown > 20) this.f.warning(`${shown - 20} more clusters are shared between bitmap structures and other metadata`)
  }

  /** QEMU's qcow2_inc_refcounts_imrt: one reference to every cluster touched by the range. */
  private inc(offset: Offset, size: number, times = 1): void {
    if (size <= 0 || times <= 0) return
    const cs = this.cs
    const n = typeof offset === 'bigint' ? Infinity : offset + size - this.fileSize
    if (n >= cs) {
      this.f.error(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${hex(offset)} size 0x${hex(size)}`, typeof offset === 'number' ? { offset } : {}, times)
      return
    }
    const off = offset as number
    const last = Math.floor((off + size - 1) / cs)
    for (let k = Math.floor(off / cs); k <= last; k++) {
      const lost = this.counts.add(k, times)
      if (lost > 0) {
        this.f.error(`ERROR: overflow cluster offset=0x${hex(k * cs)}`, { cluster: k, offset: k * cs }, lost)
        if (!this.overflowHint) {
          this.overflowHint = true
          this.f.warning('Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a clean copy if the image cannot be opened for writing')
        }
      }
    }
  }

  /**
   * check_refcounts_l1: the table itself, then one reference per non-zero entry to its L2
   * table. Returns why the check fails when QEMU cannot read the table at all.
   */
  private async l1(offsetRaw: bigint, size: number, active: boolean): Promise<string | undefined> {
    if (size === 0) return undefined
    const offset = offsetRaw <= BigInt(MAX_SAFE) ? Number(offsetRaw) : offsetRaw
    this.inc(offset, size * 8)
    if (!readable(offsetRaw, size * 8)) {
      this.f.internal('ERROR: I/O error in check_refcounts_l1')
      return 'Input/output error'
    }
    if (typeof offset === 'bigint') return undefined // reads as zeros
    const cs = this.cs
    for (let first = 0; first < size; first += L1_CHUNK) {
      throwIfAborted(this.input.signal)
      const n = Math.min(L1_CHUNK, size - first)
      const at = offset + first * 8
      if (at >= this.fileSize) break // the rest reads as zeros
      const buf = await readPadded(this.dev, at, n * 8)
      const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
      for (let i = 0; i < n; i++) {
        const hi = v.getUint32(i * 8)
        const lo = v.getUint32(i * 8 + 4)
        if (hi === 0 && lo === 0) continue
        if ((hi & 0x7f000000) !== 0 || (lo & 0x1ff) !== 0) {
          this.f.error(`ERROR found L1 entry with reserved bits set: ${hex(u64(hi, lo))}`, { offset: at + i * 8 })
        }
        const loOff = (lo & 0xfffffe00) >>> 0
        const l2 = offsetOf(hi & 0x00ffffff, loOff)
        this.inc(l2, cs)
        if ((loOff & (cs - 1)) !== 0) {
          this.f.error(`ERROR l2_offset=${hex(l2)}: Table is not cluster aligned; L1 entry corrupted`, typeof l2 === 'number' ? { offset: l2 } : {})
        }
        // A table wholly past the end of the file reads as zeros: it references nothing.
        if (typeof l2 === 'bigint' || l2 >= this.fileSize) continue
        const use = this.l2Uses.get(l2)
        if (use) { use.total++; if (active) use.active++ }
        else this.l2Uses.set(l2, { total: 1, active: active ? 1 : 0 })
      }
    }
    return undefined
  }

  /** check_refcounts_l2 for every distinct L2 table, weighted by how often it is referenced. */
  private async l2Tables(): Promise<void> {
    const offsets = [...this.l2Uses.keys()].sort((a, b) => a - b)
    let done = 0
    for (const off of offsets) {
      if ((done & 63) === 0) {
        throwIfAborted(this.input.signal)
        this.input.onProgress?.(done, offsets.length)
      }
      await this.l2(off, this.l2Uses.get(off)!, offsets, done)
      done++
    }
    this.input.onProgress?.(offsets.length, offsets.length)
  }

  /** Bytes of file read at once for L2 tables when the device has no `readInto` (the browser). */
  private static readonly WINDOW = 4 << 20
  /** Largest hole between two L2 tables still read through rather than skipped (bytes). */
  private static readonly MAX_GAP = 256 << 10
  private window: { start: number; bytes: Uint8Array } | undefined

  /**
   * An L2 table, zero-padded past the end of the file. Valid until the next call.
   * With `readInto` (Node): one reused buffer. Without (Blob, file handle: every read is a
   * slice().arrayBuffer() with a fixed cost of its own): the sorted tables are read in windows
   * of up to 4 MiB spanning small holes, so thousands of scattered 64 KiB tables cost tens of
   * reads, not thousands.
   */
  private async readL2(tableOffset: number, sorted: readonly number[], at: number): Promise<Uint8Array> {
    const cs = this.cs
    if (tableOffset + cs > this.fileSize || this.dev.readInto) return readReusing(this.dev, tableOffset, cs, this.l2Scratch)
    const w = this.window
    if (w && tableOffset >= w.start && tableOffset + cs <= w.start + w.bytes.length) {
      return w.bytes.subarray(tableOffset - w.start, tableOffset - w.start + cs)
    }
    let end = tableOffset + cs
    for (let k = at + 1; k < sorted.length; k++) {
      const next = sorted[k]!
      if (next + cs > this.fileSize || next - end > Walker.MAX_GAP || next + cs - tableOffset > Walker.WINDOW) break
      end = next + cs
    }
    const bytes = await this.dev.read(tableOffset, end - tableOffset)
    this.window = { start: tableOffset, bytes }
    return bytes.subarray(0, cs)
  }

  private async l2(tableOffset: number, use: L2Use, sorted: readonly number[], at: number): Promise<void> {
    const { cs, f } = this
    const times = use.total
    const ext = this.input.extendedL2
    const dataFile = this.input.externalData
    const buf = await this.readL2(tableOffset, sorted, at)
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    const esize = ext ? 16 : 8
    const n = cs / esize
    // QEMU's compressed cluster descriptor: x = 62 - (cluster_bits - 8)
    const csizeShift = BigInt(62 - (this.h.clusterBits - 8))
    const csizeMask = BigInt((1 << (this.h.clusterBits - 8)) - 1)
    const offsetMask = (1n << csizeShift) - 1n
    let nextContiguous = 0
    let allocated = 0, fragmented = 0, compressed = 0
    // Most entries of a sparse image are zero: skip them through a word view (zero is zero in
    // either byte order) and decode only the others.
    const words = buf.byteOffset % 4 === 0 ? new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2) : undefined
    const wpe = esize >>> 2
    for (let i = 0; i < n; i++) {
      if (words) {
        const w = i * wpe
        if ((words[w]! | words[w + 1]!) === 0 && (wpe === 2 || (words[w + 2]! | words[w + 3]!) === 0)) continue
      }
      const p = i * esize
      const hi = v.getUint32(p)
      const lo = v.getUint32(p + 4)
      const bhi = ext ? v.getUint32(p + 8) : 0
      const blo = ext ? v.getUint32(p + 12) : 0
      if (hi === 0 && lo === 0 && bhi === 0 && blo === 0) continue
      const place = { offset: tableOffset + p }
      const isCompressed = (hi & 0x40000000) !== 0
      const stdOff = offsetOf(hi & 0x00ffffff, (lo & 0xfffffe00) >>> 0)
      const type = clusterType(hi, lo, ext, dataFile)

      if (!isCompressed && ((hi & 0x3f000000) !== 0 || (lo & 0x1fe) !== 0)) {
        f.error(`ERROR found l2 entry with reserved bits set: ${hex(u64(hi, lo))}`, place, times)
      }
      switch (type) {
        case 'compressed': {
          let e = u64(hi, lo)
          if ((hi & 0x80000000) !== 0) {
            f.error(`ERROR: coffset=0x${hex(e & offsetMask)}: copied flag must never be set for compressed clusters`, place, times)
            e &= ~(1n << 63n)
          }
          if (dataFile) { f.error(`ERROR compressed cluster ${i} with data file, entry=0x${hex(e)}`, place, times); break }
          if (bhi !== 0 || blo !== 0) {
            f.error(`ERROR compressed cluster ${i} with non-zero subcluster allocation bitmap, entry=0x${hex(e)}`, place, times)
            break
          }
          const coffset = e & offsetMask
          const sectors = Number((e >> csizeShift) & csizeMask) + 1
          const csize = sectors * 512 - Number(coffset & 511n)
          this.inc(coffset <= BigInt(MAX_SAFE) ? Number(coffset) : coffset, csize, times)
          allocated++; compressed++; fragmented++
          break
        }
        case 'zero-alloc':
        case 'normal': {
          if ((bhi & blo) !== 0) {
            f.error(`ERROR offset=${hex(stdOff)}: Allocated cluster has corrupted subcluster allocation bitmap`, place, times)
          }
          if ((((lo & 0xfffffe00) >>> 0) & (cs - 1)) !== 0) {
            const containsData = ext ? blo !== 0 : (lo & 1) === 0
            f.error(containsData
              ? `ERROR offset=${hex(stdOff)}: Data cluster is not properly aligned; L2 entry corrupted.`
              : `ERROR offset=${hex(stdOff)}: Preallocated cluster is not properly aligned; L2 entry corrupted.`, place, times)
          }
          allocated++
          const o = typeof stdOff === 'number' ? stdOff : Number(stdOff)
          if (nextContiguous && o !== nextContiguous) fragmented++
          nextContiguous = o + cs
          if (!dataFile) this.inc(stdOff, cs, times)
          break
        }
        case 'zero-plain':
          break
        case 'unallocated':
          if (blo !== 0) f.error('ERROR: Unallocated cluster has non-zero subcluster allocation map', place, times)
          break
      }
    }
    this.frag.allocated += allocated * use.active
    this.frag.fragmented += fragmented * use.active
    this.frag.compressed += compressed * use.active
  }

  /**
   * qcow2_check_bitmaps_refcounts: directory, each table, each data cluster, for every entry
   * (in_use ones included). A table with an invalid entry makes QEMU's check fail.
   */
  private async bitmaps(dir: LoadedDirectory): Promise<string | undefined> {
    const cs = this.cs
    this.incBitmap(dir.offset, dir.size, 'bitmap directory')
    // Each distinct table is read once; its data clusters are counted once per entry using it.
    const tables = new Map<string, { offsets: Offset[]; times: number; index: number }>()
    for (const e of dir.entries) {
      throwIfAborted(this.input.signal)
      const tOff = tableOffsetOf(e)
      this.incBitmap(tOff > MAX_SAFE ? e.tableOffsetRaw : tOff, e.tableSize * 8, `bitmap table of directory entry ${e.index}`)
      if (!readable(e.tableOffsetRaw, e.tableSize * 8)) {
        // bitmap_table_load fails (only possible for in_use bitmaps, the others were read at open)
        this.f.silentCorruption()
        return `Input/output error (the table of bitmap ${e.index} cannot be read)`
      }
      const key = `${e.tableOffsetRaw}:${e.tableSize}`
      const seen = tables.get(key)
      if (seen) { seen.times++; continue }
      // check_dir_entry passed at open, so table_size * cs <= 512 MiB: at most 8 MiB of table,
      // of which only the part inside the file can hold non-zero entries.
      const table = await readInFile(this.dev, tOff, e.tableSize * 8)
      const v = new DataView(table.buffer, table.byteOffset, table.byteLength)
      const offsets: Offset[] = []
      for (let i = 0; i < table.length >>> 3; i++) {
        const hi = v.getUint32(i * 8)
        const lo = v.getUint32(i * 8 + 4)
        if (hi === 0 && lo <= 1) continue
        if (checkTableEntry(u64(hi, lo), cs)) {
          // bitmap_table_load fails: QEMU counts one corruption and abandons the check.
          this.f.silentCorruption()
          return `Invalid argument (bitmap table of bitmap ${e.index} has an invalid entry ${i} at 0x${hex(tOff + i * 8)})`
        }
        offsets.push(offsetOf(hi & 0x00ffffff, (lo & 0xfffffe00) >>> 0))
      }
      tables.set(key, { offsets, times: 1, index: e.index })
    }
    for (const t of tables.values()) for (const o of t.offsets) this.incBitmap(o, cs, `bitmap data of directory entry ${t.index}`, t.times)
    return undefined
  }

  /** check_refblocks: every refcount table entry, after everything else is counted. */
  private refblocks(): void {
    const { cs, f } = this
    const entries = this.input.stored.entries
    const tableOffset = this.h.refcountTableOffset
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!
      const place = { offset: tableOffset + i * 8 }
      if (e.reserved) { f.error(`ERROR refcount table entry ${i} has reserved bits set`, place); continue }
      if (!e.aligned) { f.error(`ERROR refcount block ${i} is not cluster aligned; refcount table entry corrupted`, place); continue }
      const cluster = Math.floor(e.offset / cs)
      if (cluster >= this.counts.size) { f.error(`ERROR refcount block ${i} is outside image`, place); continue }
      if (e.offset !== 0) {
        this.inc(e.offset, cs)
        const r = this.counts.get(cluster)
        if (r !== 1) f.error(`ERROR refcount block ${i} refcount=${r}`, { cluster, offset: e.offset })
      }
    }
  }
}
