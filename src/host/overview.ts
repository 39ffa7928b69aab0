/**
 * The host overview: one row per catalog image, shared by `qbm scan` and the server's overview
 * page. Each image is opened read-only, described (bitmaps and their dirty bytes, from the
 * engine's BitmapReader scan), optionally checked like `qemu-img check`, matched against QEMU's
 * image locks and libvirt's checkpoints, and closed before the next one: memory stays bounded
 * by one image, whatever the number of images. One bad image gives a row with an error; it
 * never stops the scan.
 */
import {
  type AbortSignalLike, type BitmapStatus, type Image, AbortError, checkImage, describeImage, openImage, throwIfAborted,
} from '../engine/index.js'
import { type CatalogEntry, openEntry } from './catalog.js'
import { type CheckpointCheck, type CheckpointIndex, checkImageCheckpoints } from './libvirt.js'
import { type LockHolder, type LockTable, holderText } from './locks.js'

/** One bitmap of an image, as the overview lists it. */
export interface BitmapRow {
  name: string
  granularity: number
  /** qemu-img's words: 'in-use', 'auto' */
  flags: string[]
  enabled: boolean
  status: BitmapStatus
  /** dirty bytes of the stored data (stale when in use); null when unreadable */
  dirtyBytes: number | null
  /** dirtyBytes over the virtual size, in percent */
  dirtyPercent: number | null
  problems: string[]
}

/** The `qemu-img check` verdict: clean, leaks only, errors (corruptions), could not check, or not run. */
export type CheckStatus = 'clean' | 'leaks' | 'errors' | 'failed' | 'skipped'

/** The check's counts, as in `qbm check --output=json`. */
export interface CheckResult {
  status: CheckStatus
  corruptions: number
  leaks: number
  checkErrors: number
  /** why it failed or was skipped */
  message?: string
}

/** One image of the overview. */
export interface OverviewRow {
  id: string
  path: string
  realPath: string
  kind: 'file' | 'block'
  /** bytes of the file, or of the block device */
  fileSize: number
  /** null when the image could not be read */
  virtualSize: number | null
  bitmapCount: number
  /** bitmaps with the in-use flag (stale, unless a QEMU holds the image) */
  inUseCount: number
  /** the largest dirty percentage over the bitmaps whose data could be read */
  maxDirtyPercent: number | null
  bitmaps: BitmapRow[]
  /** the process holding QEMU's locks on the image */
  holder: LockHolder | null
  /** 'qemu-nbd (pid 1234)' */
  holderText: string | null
  /** null when not asked for */
  check: CheckResult | null
  checkpoints: CheckpointCheck[]
  /** checkpoint findings that need a fix, over every domain disk naming the image */
  checkpointMismatches: number
  /** why QEMU would refuse to open it, and bitmap directory errors */
  warnings: string[]
  /** why the image could not be read at all */
  error: string | null
}

/** How the overview is built. */
export interface OverviewOptions {
  /** run the check (default true) */
  check?: boolean
  locks?: LockTable
  checkpoints?: CheckpointIndex
  signal?: AbortSignalLike
  /** called after each image */
  onProgress?: (done: number, total: number, row: OverviewRow) => void
}

/**
 * The rows a user must look at: unreadable, refused by QEMU, a bitmap in use or broken, held by
 * a QEMU process, check errors or leaks, or a checkpoint mismatch. The UI filter and the CLI share it.
 */
export function needsAttention(r: OverviewRow): boolean {
  return r.error !== null ||
    r.warnings.length > 0 ||
    r.inUseCount > 0 ||
    r.bitmaps.some((b) => b.status !== 'ok') ||
    r.holder !== null ||
    (r.check !== null && r.check.status !== 'clean' && r.check.status !== 'skipped') ||
    r.checkpointMismatches > 0
}

function checkResult(r: Awaited<ReturnType<typeof checkImage>>): CheckResult {
  const status: CheckStatus = r.exitCode === 0 ? 'clean' : r.exitCode === 2 ? 'errors' : r.exitCode === 3 ? 'leaks' : 'failed'
  return {
    status, corruptions: r.corruptions, leaks: r.leaks, checkErrors: r.checkErrors,
    ...(r.failure ? { message: r.failure } : {}),
  }
}

async function describeRow(row: OverviewRow, img: Image, held: boolean, opts: OverviewOptions): Promise<void> {
  const s = await describeImage(img, { counts: true, ...(opts.signal ? { signal: opts.signal } : {}) })
  row.virtualSize = s.virtualSize
  row.warnings = [...s.qemuRefuses.map((q) => `QEMU refuses this image: ${q}`), ...(s.bitmapsError ? [`bitmaps: ${s.bitmapsError.message}`] : [])]
  row.bitmapCount = s.bitmaps.length
  row.inUseCount = s.bitmaps.filter((b) => b.flags.includes('in-use')).length
  row.bitmaps = s.bitmaps.map((b) => ({
    name: b.name, granularity: b.granularity, flags: b.flags, enabled: b.enabled, status: b.status,
    dirtyBytes: b.dirtyBytes,
    dirtyPercent: b.dirtyBytes === null ? null : (100 * b.dirtyBytes) / Math.max(1, s.diskLength),
    problems: b.problems,
  }))
  const pcts = row.bitmaps.map((b) => b.dirtyPercent).filter((p): p is number => p !== null)
  row.maxDirtyPercent = pcts.length ? Math.max(...pcts) : null
  if (opts.check !== false) {
    if (held) {
      // The file's metadata changes under a running QEMU; qemu-img check refuses it too.
      row.check = { status: 'skipped', corruptions: 0, leaks: 0, checkErrors: 0, message: `open in ${row.holderText}: its metadata changes under a check` }
    } else {
      row.check = checkResult(await checkImage(img, opts.signal ? { signal: opts.signal } : {}))
    }
  }
}

/** The overview row of one catalog image. Never throws, except AbortError when cancelled. */
export async function overviewRow(e: CatalogEntry, opts: OverviewOptions = {}): Promise<OverviewRow> {
  const row: OverviewRow = {
    id: e.id, path: e.path, realPath: e.realPath, kind: e.kind, fileSize: e.sizeBytes,
    virtualSize: null, bitmapCount: 0, inUseCount: 0, maxDirtyPercent: null, bitmaps: [],
    holder: null, holderText: null,
    check: null, checkpoints: [], checkpointMismatches: 0, warnings: [], error: null,
  }
  const setHolder = (h: LockHolder | null): void => { row.holder = h; row.holderText = h ? holderText(h) : null }
  let dev: ReturnType<typeof openEntry> | undefined
  try {
    dev = openEntry(e, 'r')
    // The open file's own stat: for a block device, its mode and rdev also find a QEMU that
    // opened the device through another node (libvirt's private /dev).
    setHolder(opts.locks?.holderOf(dev.stat()) ?? null)
    const img = await openImage(dev)
    await describeRow(row, img, row.holder !== null, opts)
    const disks = opts.checkpoints?.disksOf(e) ?? []
    if (disks.length) {
      row.checkpoints = checkImageCheckpoints(img, disks, { held: row.holder !== null })
      row.checkpointMismatches = row.checkpoints.reduce((n, c) => n + c.mismatches.length, 0)
    }
  } catch (err) {
    if (err instanceof AbortError) throw err
    row.error = (err as Error).message
    if (!dev) setHolder(opts.locks?.holderOf(e) ?? null)
  } finally {
    dev?.close()
  }
  return row
}

/** The overview of every catalog image, in catalog order. Throws AbortError when cancelled. */
export async function buildOverview(entries: CatalogEntry[], opts: OverviewOptions = {}): Promise<OverviewRow[]> {
  const rows: OverviewRow[] = []
  for (const e of entries) {
    throwIfAborted(opts.signal)
    const row = await overviewRow(e, opts)
    rows.push(row)
    opts.onProgress?.(rows.length, entries.length, row)
  }
  return rows
}
