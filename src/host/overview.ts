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
import type { BitmapRow, CheckResult, CheckStatus, OverviewRow } from '../session/overview.js'
export { needsAttention } from '../session/overview.js'
export type { BitmapRow, CheckResult, CheckStatus, OverviewRow } from '../session/overview.js'
import { type CheckpointCheck, type CheckpointIndex, checkImageCheckpoints } from './libvirt.js'
import { type LockHolder, type LockTable, holderText } from './locks.js'

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

/** The overview's form of a check report. */
export function checkResult(r: Awaited<ReturnType<typeof checkImage>>): CheckResult {
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
