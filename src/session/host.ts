/**
 * What a session needs from where it runs: how an OpenSource becomes a BlockDevice, how a plan
 * reaches the file, and (on a host) the catalog of images it may touch. The Web Worker gives a
 * browser host (src/worker/browser-host.ts), `qbm serve` a Node one (src/server/node-host.ts);
 * the session itself never knows which.
 */
import type { AbortSignalLike, BlockDevice, Image, Plan } from '../engine/index.js'
import type { CheckResult } from './overview.js'
import type { CommitProgressFn, HolderInfo, HostInfo, HostOverview, OpenSource, ProgressFn } from './api.js'

/** An opened source: its device and what the host knows about it. */
export interface OpenedSource {
  device: BlockDevice & { close?: () => void }
  /** display name */
  name: string
  /** how backing-file names find this image in an open set: its file name */
  fileName: string
  writable: boolean
  readOnlyReason?: string
  /** why no edit may even be planned (QEMU holds the image); a read-only browser file can still make an edited copy */
  editsRefused?: string
  writeMode: 'copy' | 'in-place'
  heldBy?: HolderInfo
  /** Called once the session decoded the image (a host records what a later commit must find unchanged). */
  afterOpen?(image: Image): Promise<void>
}

export interface SessionHost {
  /** Open a source for reading. Throws (plain words) when this host cannot open it. */
  open(source: OpenSource, signal?: AbortSignalLike): Promise<OpenedSource>
  /**
   * The source a backing file name refers to, when this host can open it on its own (a host
   * resolves it next to the image, inside its catalog); undefined when only images the user
   * opened together can serve (the browser).
   */
  resolveBacking?(of: OpenSource, backingFile: string): OpenSource | undefined
  /** Why edits are refused here (a read-only host), or undefined when they are allowed. */
  editsRefused?(): string | undefined
  /**
   * Write `plan` to the image behind `source` (opened as `opened`). The host checks what it
   * must first (the browser: the file did not change; a host: same file, no QEMU lock, room on a
   * block device). Never cancelled once it has written.
   */
  commit(source: OpenSource, opened: OpenedSource, plan: Plan, onProgress: CommitProgressFn): Promise<void>
  /** The file with the plan's writes laid over it, to download (the browser only). */
  editedCopy?(opened: OpenedSource, plan: Plan): Promise<Blob>
  /** What this host serves (`qbm serve`). */
  info?(): HostInfo
  /** Every image under the host's PATHs (or only the images `ids`). */
  overview?(signal: AbortSignalLike | undefined, onProgress: ProgressFn, ids?: string[]): Promise<HostOverview>
  /** The image check on one catalog image. */
  check?(id: string, signal: AbortSignalLike | undefined): Promise<CheckResult>
}
