/**
 * check_refcounts_l2 (QEMU block/qcow2-refcount.c; docs/format.md §5.3) for every distinct L2
 * table the L1 tables point to (check/references.ts collects them), each read once and weighted
 * by how often it is referenced. The per-entry work runs in the check's kernels (tables.ts:
 * WebAssembly, or its JavaScript twin), which do every entry that counts without a finding;
 * each entry they leave (compressed, reserved bits, unaligned, past the end of the file, a
 * COPIED flag that disagrees, a count that overflows) is done here, with QEMU's checks and
 * messages. Without kernels (a file with too many clusters for their memory) every non-zero
 * entry is done here.
 */
import type { BlockDevice } from '../device.js'
import { offsetFrom } from '../bytes.js'
import { type AbortSignalLike, throwIfAborted } from '../errors.js'
import type { Header } from '../qcow2/header.js'
import { QCOW_OFLAG_COPIED } from '../qcow2/constants.js'
import {
  L2_SUBCLUSTER_BITMAP, clusterType, compressedCluster, entryOffset, entryU64, isCompressed, isCopied, l2EntrySize,
  l2Reserved, offsetLowWord,
} from '../qcow2/mapping.js'
import type { CopiedCheck } from './copied.js'
import type { Findings } from './findings.js'
import { hex } from '../padded.js'
import { L2Flag, type TableScanner } from './tables.js'
import type { StoredRefcounts } from './stored.js'

/**
 * Windows of the file that hold several L2 tables, read at once. With `readInto` (Node) only
 * tables that lie back to back are read together (a read of a hole would cost as much as the
 * tables), up to 1 MiB. Without it (Blob, file handle: every read is a slice().arrayBuffer()
 * with a fixed cost of its own) the sorted tables are read in windows of up to 4 MiB spanning
 * holes of up to 256 KiB, so thousands of scattered 64 KiB tables cost tens of reads, not
 * thousands.
 */
const WINDOW = { inPlace: 1 << 20, copied: 4 << 20 }
const MAX_GAP = { inPlace: 0, copied: 256 << 10 }

/** The most bytes one read of L2 tables brings into the scanner's buffer. */
export function l2WindowBytes(clusterSize: number, inPlace: boolean): number {
  return Math.max(clusterSize, inPlace ? WINDOW.inPlace : WINDOW.copied)
}

/** Fragmentation counters of the active L1 (QEMU BlockFragInfo, CHECK_FRAG_INFO). */
export interface FragInfo {
  allocated: number
  fragmented: number
  compressed: number
}

/** How often an L2 table is referenced: by any L1, and by the active L1. */
export interface L2Use {
  total: number
  active: number
}

/** What every pass of the reference walk reads from (the whole walk: check/references.ts). */
export interface WalkInput {
  readonly device: BlockDevice
  readonly header: Header
  readonly extendedL2: boolean
  readonly externalData: boolean
  readonly stored: StoredRefcounts
  readonly findings: Findings
  /** QEMU's OFLAG_COPIED pass, made on the walk's read of the active tables (check/copied.ts) */
  readonly copied?: CopiedCheck
  readonly signal?: AbortSignalLike
  readonly onProgress?: (done: number, total: number) => void
  /** the buffer tables are read into and the search for their non-zero entries (check/tables.ts) */
  readonly scanner: TableScanner
}

/** What the L2 pass needs of the walk, besides its input. */
export interface L2Input extends WalkInput {
  /** qcow2_inc_refcounts_imrt of the walk: `times` references to every cluster of the range */
  readonly inc: (offset: number, size: number, times: number, raw?: bigint) => void
  /** the active L1's counters, added to */
  readonly frag: FragInfo
}

/** One L2 table being walked: where it is, how often it counts, and the walk's state in it. */
interface L2Table {
  readonly tableOffset: number
  /** its position in the scanner's buffer */
  readonly base: number
  /** references to it from every L1, and from the active L1 */
  readonly times: number
  readonly active: number
  /** QEMU's OFLAG_COPIED pass, when it visits this table */
  readonly copied: CopiedCheck | undefined
  /** QEMU's CHECK_FRAG_INFO state and counters */
  nextContiguous: number
  allocated: number
  fragmented: number
  compressed: number
}

/** check_refcounts_l2 for the tables `uses` lists (offset -> references). */
export async function walkL2Tables(uses: ReadonlyMap<number, L2Use>, input: L2Input): Promise<void> {
  await new L2Walk(input).run(uses)
}

class L2Walk {
  private readonly dev: BlockDevice
  private readonly h: Header
  private readonly cs: number
  private readonly fileSize: number
  private readonly f: Findings
  private readonly scan: TableScanner
  /** the part of the file in the scanner's buffer, from position 0: [windowStart, windowEnd) */
  private windowStart = 0
  private windowEnd = 0

  constructor(private readonly input: L2Input) {
    this.dev = input.device
    this.h = input.header
    this.cs = input.header.clusterSize
    this.fileSize = input.device.size
    this.f = input.findings
    this.scan = input.scanner
  }

  /** check_refcounts_l2 for every distinct L2 table, weighted by how often it is referenced. */
  async run(uses: ReadonlyMap<number, L2Use>): Promise<void> {
    // a typed array sorts numerically without calling back into JavaScript per comparison
    const offsets = Float64Array.from(uses.keys()).sort()
    let done = 0
    for (const off of offsets) {
      if ((done & 63) === 0) {
        throwIfAborted(this.input.signal)
        this.input.onProgress?.(done, offsets.length)
      }
      await this.l2(off, uses.get(off)!, offsets, done)
      done++
    }
    this.input.onProgress?.(offsets.length, offsets.length)
  }

  /** `length` bytes at `offset` into the scanner's buffer (a window, or one table). */
  private async load(offset: number, length: number): Promise<void> {
    this.windowStart = this.windowEnd = 0 // readL2 sets the window it loads
    await this.scan.load(this.dev, offset, length)
  }

  /**
   * Bring the L2 table at `tableOffset` (zero-padded past the end of the file) into the scanner's
   * buffer; returns its position there. Valid until the next call.
   */
  private async readL2(tableOffset: number, sorted: Float64Array, at: number): Promise<number> {
    const cs = this.cs
    if (tableOffset >= this.windowStart && tableOffset + cs <= this.windowEnd) return tableOffset - this.windowStart
    if (tableOffset + cs > this.fileSize) {
      await this.load(tableOffset, cs)
      return 0
    }
    const kind = this.dev.readInto ? 'inPlace' : 'copied'
    const maxGap = MAX_GAP[kind]
    const window = l2WindowBytes(cs, kind === 'inPlace')
    let end = tableOffset + cs
    for (let k = at + 1; k < sorted.length; k++) {
      const next = sorted[k]!
      if (next + cs > this.fileSize || next - end > maxGap || next + cs - tableOffset > window) break
      end = next + cs
    }
    await this.load(tableOffset, end - tableOffset)
    this.windowStart = tableOffset
    this.windowEnd = end
    return 0
  }

  private async l2(tableOffset: number, use: L2Use, sorted: Float64Array, at: number): Promise<void> {
    const cs = this.cs
    const ext = this.input.extendedL2
    const base = await this.readL2(tableOffset, sorted, at)
    const scan = this.scan
    const esize = l2EntrySize(ext)
    const end = base + cs
    const copied = use.active > 0 && this.input.copied?.visits(tableOffset) ? this.input.copied : undefined
    const t: L2Table = { tableOffset, base, times: use.total, active: use.active, copied, nextContiguous: 0, allocated: 0, fragmented: 0, compressed: 0 }
    const k = scan.kernels
    if (k) {
      // The kernels do every entry that counts without a finding (tables.wat); each one they
      // leave is done here, with the walk's state handed over and back.
      const flags = (ext ? L2Flag.extended : 0) | (this.input.externalData ? L2Flag.dataFile : 0) |
        (copied ? L2Flag.copied : 0) | (this.input.stored.allPreloaded ? 0 : L2Flag.unknownRefcounts)
      const times = Math.min(t.times, 255) // the kernels count no further than 254
      k.nextContig = 0
      k.allocated = 0
      k.fragmented = 0
      for (let w = base; ;) {
        const p = scan.l2(w, end, flags, times)
        if (p >= end) break
        t.nextContiguous = k.nextContig
        t.allocated = k.allocated
        t.fragmented = k.fragmented
        await this.l2Entry(p, t)
        k.nextContig = t.nextContiguous
        k.allocated = t.allocated
        k.fragmented = t.fragmented
        w = p + esize
      }
      t.allocated = k.allocated
      t.fragmented = k.fragmented
    } else {
      // Most entries of a sparse image are zero: only the others are decoded. An extended entry
      // is non-zero when any of its two words is.
      for (let w = scan.next(base, end); w < end;) {
        const p = base + Math.floor((w - base) / esize) * esize
        w = scan.next(p + esize, end)
        await this.l2Entry(p, t)
      }
    }
    this.input.frag.allocated += t.allocated * use.active
    this.input.frag.fragmented += t.fragmented * use.active
    this.input.frag.compressed += t.compressed * use.active
  }

  /** check_refcounts_l2 for the entry at buffer position `p` of table `t`. */
  private async l2Entry(p: number, t: L2Table): Promise<void> {
    const { cs, f } = this
    const ext = this.input.extendedL2
    const dataFile = this.input.externalData
    const { times, copied, tableOffset } = t
    const v = this.scan.view
    const esize = l2EntrySize(ext)
    const i = (p - t.base) / esize
    const hi = v.getUint32(p)
    const lo = v.getUint32(p + 4)
    // extended L2: the subcluster bitmap, zero bits (32-63) and allocation bits (0-31)
    const zeroBits = ext ? v.getUint32(p + L2_SUBCLUSTER_BITMAP) : 0
    const allocBits = ext ? v.getUint32(p + L2_SUBCLUSTER_BITMAP + 4) : 0
    const place = { offset: tableOffset + i * esize }
    const type = clusterType(hi, lo, ext, dataFile)

    if (!isCompressed(hi) && l2Reserved(hi, lo)) {
      f.error(`ERROR found l2 entry with reserved bits set: ${hex(entryU64(hi, lo))}`, place, times)
    }
    if (copied && (type === 'normal' || type === 'zero-alloc')) {
      const reading = copied.l2Entry(hi, lo, type, t.active, tableOffset)
      if (reading) await reading
    }
    switch (type) {
      case 'compressed': {
        const c = compressedCluster(hi, lo, this.h.clusterBits)
        if (isCopied(hi)) f.error(`ERROR: coffset=0x${hex(c.offsetRaw)}: copied flag must never be set for compressed clusters`, place, times)
        const e = entryU64(hi, lo) & ~QCOW_OFLAG_COPIED
        if (dataFile) { f.error(`ERROR compressed cluster ${i} with data file, entry=0x${hex(e)}`, place, times); break }
        if (zeroBits !== 0 || allocBits !== 0) {
          f.error(`ERROR compressed cluster ${i} with non-zero subcluster allocation bitmap, entry=0x${hex(e)}`, place, times)
          break
        }
        this.input.inc(offsetFrom(c.offsetRaw), c.size, times, c.offsetRaw)
        t.allocated++; t.compressed++; t.fragmented++
        break
      }
      case 'zero-alloc':
      case 'normal': {
        const off = entryOffset(hi, lo)
        if ((zeroBits & allocBits) !== 0) {
          f.error(`ERROR offset=${hex(off)}: Allocated cluster has corrupted subcluster allocation bitmap`, place, times)
        }
        if ((offsetLowWord(lo) & (cs - 1)) !== 0) {
          const containsData = ext ? allocBits !== 0 : type === 'normal'
          f.error(containsData
            ? `ERROR offset=${hex(off)}: Data cluster is not properly aligned; L2 entry corrupted.`
            : `ERROR offset=${hex(off)}: Preallocated cluster is not properly aligned; L2 entry corrupted.`, place, times)
        }
        t.allocated++
        if (t.nextContiguous && off !== t.nextContiguous) t.fragmented++
        t.nextContiguous = off + cs
        if (!dataFile) this.input.inc(off, cs, times)
        break
      }
      case 'zero-plain':
        break
      case 'unallocated':
        if (allocBits !== 0) f.error('ERROR: Unallocated cluster has non-zero subcluster allocation map', place, times)
        break
    }
  }
}
