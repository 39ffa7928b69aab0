/**
 * `qbm check`: the equivalent of `qemu-img check` without repairs (docs/format.md §5.3, §6.6; QEMU
 * block/qcow2.c qcow2_co_check_locked, block/qcow2-refcount.c qcow2_check_refcounts,
 * compare_refcounts, check_oflag_copied, qemu-img.c img_check). Read-only.
 *
 * Order, as in QEMU: open (refusals: exit 1), snapshot table (unreadable: exit 1), expected
 * refcounts, compare with the stored refcounts, OFLAG_COPIED. Exit codes as qemu-img check:
 * 0 clean, 2 corruptions, 3 leaks only, 1 could not check (also when an internal error
 * occurred). Warnings never change the exit code.
 *
 * Behaviour worth knowing (all verified against QEMU 7.2):
 * - The dirty bit (lazy refcounts) changes nothing: a read-only check compares the stale
 *   refcounts as stored, so an image left dirty by a crash shows errors (exit 2).
 * - A cluster with refcount 2 and one reference is a leak, not an error; only a refcount
 *   below the references is an error.
 * - QEMU counts references no higher than the refcount width allows: with 1-bit refcounts a
 *   second reference is an "overflow" corruption, and the compare then sees 1 = 1.
 * - Stored refcounts past the end of the file (plus at most one cluster) are never compared.
 */
import { type Image, type Bitmap, checkOpenRefusals } from '../image.js'
import { type AbortSignalLike, throwIfAborted } from '../errors.js'
import { type CheckFinding, Findings } from './findings.js'
import { readSnapshotTable } from './snapshots.js'
import { StoredRefcounts } from './stored.js'
import type { ReferenceCounts } from './counts.js'
import { calculateReferences, largestWalkRead } from './references.js'
import { CopiedCheck } from './copied.js'
import { type ScannerKind, type TablesLayout, TableScanner } from './tables.js'
import { hex, readPadded } from '../padded.js'
import { type RefcountSource, maxRefcount } from '../qcow2/refcount.js'
import type { Header } from '../qcow2/header.js'

export type { CheckFinding, FindingKind } from './findings.js'

/** Phases reported through onProgress. */
export type CheckPhase = 'l2' | 'compare'

/** Cancellation, progress and the cap on kept messages. */
export interface CheckOptions {
  signal?: AbortSignalLike
  /** progress within a phase: L2 tables read, refcount blocks compared */
  onProgress?: (done: number, total: number, phase: CheckPhase) => void
  /** most error and leak messages kept in `findings` (counts stay exact); default 10000 */
  findingLimit?: number
  /**
   * Check the image as if it had no bitmaps (QEMU's view after the bitmaps are dropped): the
   * bitmap metadata neither stops the check nor counts as references, so its clusters show as
   * leaks. What `qbm repair` needs to know about everything else.
   */
  ignoreBitmaps?: boolean
  /** receives the stored refcounts as the check read them, for an edit to reuse (edits/verify.ts) */
  onRefcounts?: (stored: RefcountSource) => void
  /** receives the references the walk counted, per cluster (in-process callers only) */
  onReferences?: (referencesTo: (cluster: number) => number) => void
  /**
   * which code does the per-entry work (check/tables.ts): WebAssembly, its JavaScript twin, or
   * the walk's own code for every entry (no kernels); tests compare the three
   */
  scanner?: ScannerKind
}

/** What `qbm check` found; field names follow qemu-img check's JSON output where it has one. */
export interface CheckReport {
  /** 0 clean, 1 could not check, 2 corruptions, 3 leaks only (qemu-img check's codes) */
  exitCode: 0 | 1 | 2 | 3
  /** the refcount check ran to the end (QEMU prints its summary only then) */
  completed: boolean
  /** why the image could not be checked: 'Could not open: ...' or 'Check failed: ...' */
  failure?: string
  corruptions: number
  leaks: number
  /** internal errors of the check (QEMU check_errors); any makes the exit code 1 */
  checkErrors: number
  findings: CheckFinding[]
  /** error and leak messages not kept in `findings` */
  findingsOmitted: number
  /** end of the last cluster with a refcount or a reference */
  imageEndOffset: number
  /** clusters of the virtual disk */
  totalClusters: number
  /** clusters the active L1 maps (compressed and preallocated zero clusters included) */
  allocatedClusters: number
  fragmentedClusters: number
  compressedClusters: number
  clusterSize: number
  fileSize: number
}

/** Check an image the way `qemu-img check` does, without repairing anything. */
export async function checkImage(img: Image, opts: CheckOptions = {}): Promise<CheckReport> {
  const h = img.header
  const cs = h.clusterSize
  const f = new Findings(opts.findingLimit)
  const base = {
    clusterSize: cs,
    fileSize: img.fileSize,
    totalClusters: Math.ceil(h.diskLength / cs),
  }
  const stop = async (failure: string): Promise<CheckReport> => {
    await addWarnings(img, f)
    return {
      exitCode: 1, completed: false, failure,
      corruptions: f.corruptions, leaks: f.leaks, checkErrors: f.checkErrors,
      findings: f.list, findingsOmitted: f.omitted,
      imageEndOffset: 0, allocatedClusters: 0, fragmentedClusters: 0, compressedClusters: 0,
      ...base,
    }
  }

  // QEMU's check open, as decided when the image was opened (docs/format.md §6.1).
  const ignoreBitmaps = opts.ignoreBitmaps === true
  const refusals = checkOpenRefusals(img, ignoreBitmaps)
  if (refusals.length > 0) return stop(`Could not open: ${refusals[0]!.qemu ?? refusals[0]!.message}`)
  const open = img.qemu
  const directory = ignoreBitmaps ? undefined : open.directory
  throwIfAborted(opts.signal)

  const table = await readSnapshotTable(img.device, h)
  if (!table.ok) {
    f.checkErrors++
    return stop(`Check failed: ${table.errno === 'EFBIG' ? 'File too large' : 'Invalid argument'} (${table.error})`)
  }
  if (h.version === 3) {
    for (const sn of table.snapshots) {
      if (sn.extraDataSize < 16) f.error(`ERROR snapshot table entry ${sn.index} is incomplete`, { offset: sn.offset })
    }
  }

  // One memory for the counts, the stored refcounts and the buffer every table is read into.
  const scanner = new TableScanner(opts.scanner, tablesLayout(h, img.fileSize, img.device.readInto !== undefined))
  const stored = await StoredRefcounts.load(img.device, h, scanner)
  opts.onRefcounts?.(stored)
  const copied = new CopiedCheck(stored, cs, open.externalData, f.limit)
  const refs = await calculateReferences({
    device: img.device,
    header: h,
    extendedL2: open.extendedL2,
    externalData: open.externalData,
    snapshots: table.snapshots,
    snapshotTable: { offset: table.offset, size: table.size },
    ...(open.crypto ? { crypto: open.crypto } : {}),
    ...(directory ? { directory } : {}),
    stored,
    findings: f,
    copied,
    ...(opts.signal ? { signal: opts.signal } : {}),
    scanner,
    onProgress: (d, t) => opts.onProgress?.(d, t, 'l2'),
  })
  if (refs.failed) return stop(`Check failed: ${refs.failed}`)
  opts.onReferences?.((c) => refs.counts.get(c))

  const highest = await compareRefcounts(stored, refs.counts, f, opts, scanner)
  f.absorb(copied.findings) // QEMU's OFLAG_COPIED pass comes after the comparison
  await addWarnings(img, f)

  let exitCode: CheckReport['exitCode'] = 0
  if (f.checkErrors > 0) exitCode = 1
  else if (f.corruptions > 0) exitCode = 2
  else if (f.leaks > 0) exitCode = 3
  return {
    exitCode,
    completed: true,
    ...(f.checkErrors > 0 ? { failure: 'Check failed' } : {}),
    corruptions: f.corruptions,
    leaks: f.leaks,
    checkErrors: f.checkErrors,
    findings: f.list,
    findingsOmitted: f.omitted,
    imageEndOffset: (highest + 1) * cs,
    allocatedClusters: refs.frag.allocated,
    fragmentedClusters: refs.frag.fragmented,
    compressedClusters: refs.frag.compressed,
    ...base,
  }
}

/**
 * The check's memory (check/tables.ts): a count and a stored refcount for every cluster of the
 * file and the one after it, and a buffer for the largest read of a table.
 */
function tablesLayout(h: Header, fileSize: number, inPlace: boolean): TablesLayout {
  const cs = h.clusterSize
  const clusters = Math.ceil(fileSize / cs) + 1
  const epb = (cs * 8) / h.refcountBits
  return {
    clusterBits: h.clusterBits,
    fileSize,
    refcountOrder: h.refcountOrder,
    limit: Math.min(maxRefcount(h.refcountOrder), 254),
    clusters,
    storedBytes: Math.ceil(clusters / epb) * cs,
    bufferBytes: Math.max(largestWalkRead(cs, inPlace), h.refcountTableClusters * cs),
  }
}

/**
 * QEMU's compare_refcounts for clusters [0, nb_clusters): stored below expected is an error,
 * above is a leak. Returns the highest cluster with a refcount or a reference. Where the
 * stored region holds a block, the kernel compares (tables.wat) and stops at each cluster
 * that differs, which is reported here.
 */
async function compareRefcounts(
  stored: StoredRefcounts, counts: ReferenceCounts, f: Findings, opts: CheckOptions, scanner: TableScanner,
): Promise<number> {
  const k = scanner.kernels
  const epb = stored.epb
  const cs = stored.clusterSize
  const size = counts.size
  const blocks = Math.ceil(size / epb)
  let highest = 0
  let unalignedSeen = false
  for (let ti = 0; ti < blocks; ti++) {
    if ((ti & 63) === 0) {
      throwIfAborted(opts.signal)
      opts.onProgress?.(ti, blocks, 'compare')
    }
    const from = ti * epb
    const to = Math.min(from + epb, size)
    const b = await stored.block(ti)
    if (b.kind === 'unaligned') {
      // qcow2_get_refcount fails for every cluster the block would describe; QEMU also marks
      // the (read-only) image corrupt in memory, once.
      if (!unalignedSeen) {
        unalignedSeen = true
        f.warning(`qcow2: Image is corrupt: Refblock offset 0x${hex(stored.entries[ti]!.offsetRaw ?? stored.entries[ti]!.offset)} unaligned (reftable index: ${ti === 0 ? 0 : `0x${hex(ti)}`}); further non-fatal corruption events will be suppressed`)
      }
      for (let i = from; i < to; i++) f.internal(`Can't get refcount for cluster ${i}: Input/output error`, { cluster: i })
      continue
    }
    if (b.kind === 'unreadable') {
      for (let i = from; i < to; i++) f.internal(`Can't get refcount for cluster ${i}: Input/output error`, { cluster: i })
      continue
    }
    const data = b.kind === 'block' ? b.data : undefined
    if (k && stored.preloadedAt(ti)) {
      let values: Float64Array | undefined
      k.highest = highest
      for (let i = k.compare(from, to); i < to; i = k.compare(i + 1, to)) {
        values ??= b.kind === 'none' ? undefined : stored.values(b)
        highest = compareOne(i, values ? values[i - from]! : 0, k.highest)
        k.highest = highest
      }
      highest = k.highest
      continue
    }
    if (b.kind === 'none' && !counts.anyIn(from, to)) continue
    const values = b.kind === 'none' ? undefined : stored.values(b)
    for (let i = from; i < to; i++) highest = compareOne(i, values ? values[i - from]! : 0, highest)

    /** One cluster: its stored refcount r1 against its references; returns the new highest. */
    function compareOne(i: number, r1: number, high: number): number {
      const r2 = counts.get(i)
      if (r1 === r2) return r2 > 0 ? i : high
      const place = { cluster: i, offset: i * cs }
      if (r1 < r2) f.error(`ERROR cluster ${i} refcount=${r1} reference=${r2}`, place)
      else f.leak(`Leaked cluster ${i} refcount=${data ? stored.exactAt(data, i - from) : '0'} reference=${r2}`, place)
      return i // r1 or r2 is above the other, so above 0
    }
  }
  opts.onProgress?.(blocks, blocks, 'compare')
  return highest
}

/** Findings that do not change the exit code: what qbm's reader noticed about the image. */
async function addWarnings(img: Image, f: Findings): Promise<void> {
  for (const w of img.warnings) f.warning(w)
  for (const b of img.bitmaps) {
    for (const w of b.warnings) f.warning(`bitmap '${b.name}': ${w}`)
    // Problems of bitmaps QEMU ignores (an untrusted extension) would refuse the image once
    // trusted; they do not change QEMU's verdict, which is the open and the counts.
    for (const p of b.problems) f.warning(`bitmap '${b.name}': ${p}`)
    const tail = await tailBitsSet(img, b)
    if (tail) f.warning(`bitmap '${b.name}': bits past the end of the disk are set in its last cluster (QEMU keeps those in the last 64-bit word; they do not count as dirty but change its sha256)`)
  }
}

/** Whether the stored last cluster of a bitmap has bits set at or past nbits (docs/format.md §4.5). */
async function tailBitsSet(img: Image, b: Bitmap): Promise<boolean> {
  if (b.status !== 'ok' && b.status !== 'in-use') return false
  const cs = img.header.clusterSize
  const perCluster = cs * 8
  const clusters = Math.ceil(b.nbits / perCluster)
  if (clusters === 0 || clusters > b.table.length) return false
  const used = b.nbits - (clusters - 1) * perCluster
  if (used === perCluster) return false
  const e = b.table[clusters - 1]!
  if (e === 0) return false
  if (e === 1) return true
  const data = await readPadded(img.device, e, cs)
  const byte = used >>> 3
  if (used & 7 && (data[byte]! >>> (used & 7)) !== 0) return true
  for (let k = byte + ((used & 7) ? 1 : 0); k < cs; k++) if (data[k] !== 0) return true
  return false
}
