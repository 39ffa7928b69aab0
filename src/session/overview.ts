/**
 * The host overview as plain data: one row per image under the PATHs of `qbm scan` / `qbm
 * serve`, what crosses the server's socket to the host table. src/host/overview.ts computes the
 * rows (Node); this module only describes them, and says which need attention — the rule the
 * CLI and the page's filter share.
 */
import type { BitmapStatus, CheckpointFinding } from '../engine/index.js'

/** A QEMU process that has an image open. */
export interface LockHolder {
  pid?: number
  program?: string
  /** QEMU holds the write permission (lock byte 101) */
  write: boolean
  /** QEMU lock bytes seen, e.g. [100, 101, 103, 201, 203] */
  lockBytes: number[]
}

/** What QEMU or libvirt says when a mismatch bites, so a user can match it to a log line. */
export type CheckpointSymptom = 'bitmap not found in backing chain' | 'Bitmap already exists' | null

/** One finding of the cross-check, with its domain and the error it causes. */
export interface CheckpointMismatch {
  domain: string
  disk: string
  /** the checkpoint, or null for a bitmap no checkpoint refers to */
  checkpoint: string | null
  bitmap: string
  state: CheckpointFinding['state'] | 'no-checkpoint'
  symptom: CheckpointSymptom
  fix: string
}

/** The cross-check of one image against every domain disk that names it. */
export interface CheckpointCheck {
  domain: string
  disk: string
  /** checkpoints that refer to a bitmap of this disk */
  checkpoints: number
  healthy: number
  mismatches: CheckpointMismatch[]
}

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

