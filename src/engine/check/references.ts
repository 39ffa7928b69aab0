/**
 * Rebuild the refcount every cluster should have, from every structure that references it
 * (docs/format.md §5.3; QEMU block/qcow2-refcount.c calculate_refcounts, check_refcounts_l1/_l2,
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
import { FAR, offsetFrom } from '../bytes.js'
import { throwIfAborted } from '../errors.js'
import type { Header } from '../qcow2/header.js'
import { REFTABLE_ENTRY_SIZE, maxRefcount } from '../qcow2/refcount.js'
import { checkTableEntry } from '../qcow2/bitmaps/constraints.js'
import { dataOffsetOf } from '../qcow2/bitmaps/table.js'
import { BME_TABLE_ENTRY_SIZE } from '../qcow2/constants.js'
import { L1_ENTRY_SIZE, entryOffset, entryU64, l1Reserved, offsetLowWord } from '../qcow2/mapping.js'
import { ReferenceCounts } from './counts.js'
import type { Findings } from './findings.js'
import type { CryptoHeaderArea, LoadedDirectory } from '../image.js'
import { hex, readInFile, readable } from '../padded.js'
import type { TableScanner } from './tables.js'
import { type FragInfo, type L2Use, type WalkInput, l2WindowBytes, walkL2Tables } from './l2.js'
import { MAX_L1_ENTRIES, type Snapshot } from './snapshots.js'

/** L1 entries read per chunk. */
const L1_CHUNK = 65536

/**
 * The most bytes the walk reads into the scanner's buffer at once (an L1 chunk, a window of L2
 * tables, one table), on a device that reads in place (`readInto`) or not.
 */
export function largestWalkRead(clusterSize: number, inPlace: boolean): number {
  return Math.max(L1_CHUNK * L1_ENTRY_SIZE, l2WindowBytes(clusterSize, inPlace))
}

/** Everything calculate_refcounts looks at, decoded by the open and the snapshot table. */
export interface ReferenceInput extends WalkInput {
  readonly snapshots: readonly Snapshot[]
  readonly snapshotTable: { readonly offset: number; readonly size: number }
  readonly crypto?: CryptoHeaderArea
  readonly directory?: LoadedDirectory
}

export type { FragInfo } from './l2.js'

/** The expected refcounts, and what the walk counted on the way. */
export interface References {
  readonly counts: ReferenceCounts
  readonly frag: FragInfo
  /** QEMU's calculate_refcounts returned an error: the check stops there (exit 1) */
  readonly failed?: string
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
  /** the one buffer every L1 chunk and L2 table is read into, and the search for their non-zero entries */
  private readonly scan: TableScanner
  private overflowHint = false

  constructor(private readonly input: ReferenceInput) {
    this.dev = input.device
    this.h = input.header
    this.cs = input.header.clusterSize
    this.fileSize = input.device.size
    this.f = input.findings
    this.counts = new ReferenceCounts(Math.ceil(this.fileSize / this.cs), maxRefcount(input.header.refcountOrder), input.scanner.counts)
    this.scan = input.scanner
  }

  async run(): Promise<string | undefined> {
    const { h, cs, input } = this
    this.inc(0, cs)
    const failed = await this.l1(h.raw.l1TableOffset, h.l1Size, true)
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
    await walkL2Tables(this.l2Uses, { ...input, inc: (o, n, t, raw) => this.inc(o, n, t, raw), frag: this.frag })
    this.inc(input.snapshotTable.offset, input.snapshotTable.size, 1, h.raw.snapshotsOffset)
    this.inc(h.refcountTableOffset, h.refcountTableClusters * cs, 1, h.raw.refcountTableOffset)
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
  private incBitmap(offset: number, size: number, what: string, times = 1, raw?: bigint): void {
    this.inc(offset, size, times, raw)
    if (size <= 0 || offset + size > this.fileSize + this.cs) return
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

  /**
   * QEMU's qcow2_inc_refcounts_imrt: one reference to every cluster touched by the range.
   * `raw`: the offset as stored, for the message when `offset` is FAR (docs/format.md §0.3).
   */
  private inc(offset: number, size: number, times = 1, raw?: bigint): void {
    if (size <= 0 || times <= 0) return
    const cs = this.cs
    if (offset >= FAR || offset + size - this.fileSize >= cs) {
      const exact = offset >= FAR ? raw ?? BigInt(offset) : offset
      this.f.error(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${hex(exact)} size 0x${hex(size)}`, offset < FAR ? { offset } : {}, times)
      return
    }
    const last = Math.floor((offset + size - 1) / cs)
    for (let k = Math.floor(offset / cs); k <= last; k++) {
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
    const offset = offsetFrom(offsetRaw)
    this.inc(offset, size * L1_ENTRY_SIZE, 1, offsetRaw)
    if (!readable(offsetRaw, size * L1_ENTRY_SIZE)) {
      this.f.internal('ERROR: I/O error in check_refcounts_l1')
      return 'Input/output error'
    }
    if (offset >= this.fileSize) return undefined // reads as zeros
    const cs = this.cs
    for (let first = 0; first < size; first += L1_CHUNK) {
      throwIfAborted(this.input.signal)
      const n = Math.min(L1_CHUNK, size - first)
      const at = offset + first * L1_ENTRY_SIZE
      if (at >= this.fileSize) break // the rest reads as zeros
      const bytes = n * L1_ENTRY_SIZE
      await this.scan.load(this.dev, at, bytes)
      const scan = this.scan
      const v = scan.view
      // Only the non-zero entries are decoded (check/tables.ts finds them).
      for (let p = scan.next(0, bytes); p < bytes; p = scan.next(p + L1_ENTRY_SIZE, bytes)) {
        const i = p / L1_ENTRY_SIZE
        const hi = v.getUint32(p)
        const lo = v.getUint32(p + 4)
        if (active && this.input.copied) {
          const reading = this.input.copied.l1Entry(first + i, hi, lo, at + i * L1_ENTRY_SIZE)
          if (reading) await reading
        }
        if (l1Reserved(hi, lo)) {
          this.f.error(`ERROR found L1 entry with reserved bits set: ${hex(entryU64(hi, lo))}`, { offset: at + i * L1_ENTRY_SIZE })
        }
        const l2 = entryOffset(hi, lo)
        this.inc(l2, cs)
        if ((offsetLowWord(lo) & (cs - 1)) !== 0) {
          this.f.error(`ERROR l2_offset=${hex(l2)}: Table is not cluster aligned; L1 entry corrupted`, { offset: l2 })
        }
        // A table wholly past the end of the file reads as zeros: it references nothing.
        if (l2 >= this.fileSize) continue
        const use = this.l2Uses.get(l2)
        if (use) { use.total++; if (active) use.active++ }
        else this.l2Uses.set(l2, { total: 1, active: active ? 1 : 0 })
      }
    }
    return undefined
  }

  /**
   * qcow2_check_bitmaps_refcounts: directory, each table, each data cluster, for every entry
   * (in_use ones included). A table with an invalid entry makes QEMU's check fail.
   */
  private async bitmaps(dir: LoadedDirectory): Promise<string | undefined> {
    const cs = this.cs
    this.incBitmap(dir.offset, dir.size, 'bitmap directory')
    // Each distinct table is read once; its data clusters are counted once per entry using it.
    const tables = new Map<string, { offsets: number[]; times: number; index: number }>()
    for (const e of dir.entries) {
      throwIfAborted(this.input.signal)
      const bytes = e.tableSize * BME_TABLE_ENTRY_SIZE
      this.incBitmap(e.tableOffset, bytes, `bitmap table of directory entry ${e.index}`, 1, e.tableOffsetRaw)
      if (!readable(e.tableOffsetRaw, bytes)) {
        // bitmap_table_load fails (only possible for in_use bitmaps, the others were read at open)
        this.f.silentCorruption()
        return `Input/output error (the table of bitmap ${e.index} cannot be read)`
      }
      const key = `${e.tableOffsetRaw}:${e.tableSize}`
      const seen = tables.get(key)
      if (seen) { seen.times++; continue }
      // check_dir_entry passed at open, so table_size * cs <= 512 MiB: at most 8 MiB of table,
      // of which only the part inside the file can hold non-zero entries.
      const table = await readInFile(this.dev, e.tableOffset, bytes)
      const v = new DataView(table.buffer, table.byteOffset, table.byteLength)
      const offsets: number[] = []
      for (let i = 0; i < table.length / BME_TABLE_ENTRY_SIZE; i++) {
        const hi = v.getUint32(i * BME_TABLE_ENTRY_SIZE)
        const lo = v.getUint32(i * BME_TABLE_ENTRY_SIZE + 4)
        if (hi === 0 && lo <= 1) continue
        if (checkTableEntry(entryU64(hi, lo), cs)) {
          // bitmap_table_load fails: QEMU counts one corruption and abandons the check.
          this.f.silentCorruption()
          return `Invalid argument (bitmap table of bitmap ${e.index} has an invalid entry ${i} at 0x${hex(e.tableOffset + i * BME_TABLE_ENTRY_SIZE)})`
        }
        offsets.push(dataOffsetOf(hi, lo))
      }
      tables.set(key, { offsets, times: 1, index: e.index })
    }
    for (const t of tables.values()) {
      const what = `bitmap data of directory entry ${t.index}`
      for (const o of t.offsets) this.incBitmap(o, cs, what, t.times)
    }
    return undefined
  }

  /** check_refblocks: every refcount table entry, after everything else is counted. */
  private refblocks(): void {
    const { cs, f } = this
    const entries = this.input.stored.entries
    const tableOffset = this.h.refcountTableOffset
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!
      const place = { offset: tableOffset + i * REFTABLE_ENTRY_SIZE }
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
