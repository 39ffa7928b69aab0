/**
 * The host overview as it crosses a transport (plain data): one row per image under the PATHs
 * of `qbm serve`. src/host/overview.ts computes the rows; the UI's host table shows them.
 */
import type { HolderInfo } from './api.js'

/** Result of the image check (the same check as `qbm check`, `qemu-img check`'s rules). */
export interface CheckStatus {
  state: 'clean' | 'leaks' | 'errors' | 'unreadable'
  errors: number
  leaks: number
  /** the first problem, in plain words */
  message?: string
}

export interface OverviewBitmap {
  name: string
  granularity: number
  flags: string[]
  status: 'ok' | 'in-use' | 'untrusted' | 'invalid'
  /** null when the data could not be read */
  dirtyBytes: number | null
}

/** A checkpoint and bitmap that disagree (libvirt's checkpoint metadata vs the image). */
export interface CheckpointMismatch {
  domain: string
  checkpoint: string | null
  bitmap: string
  /** 'missing': the checkpoint's bitmap is gone; 'orphan': a bitmap no checkpoint names; or the bitmap's state */
  state: 'missing' | 'orphan' | 'in-use' | 'broken' | 'untrusted'
  /** what to do about it */
  fix: string
}

export interface OverviewRow {
  id: string
  path: string
  kind: 'file' | 'block'
  virtualSize: number | null
  fileSize: number
  bitmaps: OverviewBitmap[]
  /** bitmaps flagged in-use (stale unless QEMU holds the image) */
  inUse: number
  /** the largest dirty share of the disk among the bitmaps, 0–100; null without readable bitmaps */
  largestDirtyPercent: number | null
  heldBy?: HolderInfo
  check?: CheckStatus
  /** libvirt's checkpoints for this image, when a checkpoint directory was read */
  checkpoints?: { domains: string[]; count: number; mismatches: CheckpointMismatch[] }
  /** the image could not be read */
  error?: string
  /** reasons to look at this image ('in use', 'open in qemu-nbd (pid 9)', 'check: 2 errors', ...) */
  attention: string[]
}
