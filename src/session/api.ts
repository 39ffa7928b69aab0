/**
 * The engine session's one API: what the UI asks of the engine, whichever transport carries it
 * (the Web Worker in the browser, the WebSocket of `qbm serve`). Types only. Inputs and outputs
 * are plain data (structured-cloneable, and MessagePack-encodable: typed arrays stay binary),
 * so the same interface is implemented by `session.ts`, carried by `src/transport/`, and faked
 * in store tests. Long calls take a job id: progress comes back as `ClientEvents.progress`
 * events, and `cancel(jobId)` stops them at their next check.
 */
import type { Edit, ErrorInfo, Extent, ImageSummary, Repair } from '../engine/index.js'
import type { CheckResult, LockHolder, OverviewRow } from './overview.js'

export type { CheckResult, LockHolder, OverviewRow } from './overview.js'

export type { ErrorInfo, Extent, ImageSummary }
export type { BitmapSummary } from '../engine/index.js'

/** Where an image comes from. The worker builds the BlockDevice; bytes never reach the page. */
export type OpenSource =
  /** A File from `<input type=file>` or a drop without a handle: read-only. */
  | { kind: 'file'; file: File }
  /** A handle from a drop or `showOpenFilePicker`: writable once readwrite permission is granted. */
  | { kind: 'handle'; handle: FileSystemFileHandle }
  /** An image served with the app (the demo), fetched by the worker. */
  | { kind: 'url'; url: string; name: string }
  /** An image of the host's catalog (`qbm serve`), named by the id the server gave it. */
  | { kind: 'host'; id: string; /** for display until it is open */ name?: string }

/** A QEMU process holding the image open (its OFD locks), as the host saw it when opening. */
export interface HolderInfo extends LockHolder {
  /** 'qemu-nbd (pid 1234)' */
  text: string
}

export interface OpenResult {
  /** file name for display (a path relative to the served PATH on a host) */
  name: string
  /** edits can be written back: a FileSystemFileHandle in the browser, `--write` on a host */
  writable: boolean
  /** why not, in the host's words, when `writable` is false */
  readOnlyReason?: string
  /** how a commit writes: 'copy' (the browser copies the whole file first), 'in-place' (a host) */
  writeMode: 'copy' | 'in-place'
  /** a QEMU process has the image open: the live bitmaps are in its memory */
  heldBy?: HolderInfo
  summary: ImageSummary
}

/** Heatmap cells from the part of a bitmap a running scan has read (NaN where it has not). */
export interface HeatmapPreview {
  counts: Float64Array
  /** the scan had finished: every cell is exact */
  complete: boolean
}

/** What a full scan of one bitmap's data yields. */
export interface ScanResult {
  bitmapIndex: number
  dirtyBytes: number
  extentCount: number
}

/** Progress of a long read: bytes done and total. */
export type ProgressFn = (doneBytes: number, totalBytes: number) => void

/** Progress of a commit: bytes written of the plan's bytes, and the step ('copying' first in the browser). */
export type CommitProgressFn = (doneBytes: number, totalBytes: number, step: string) => void

export type ExportFormat = 'csv' | 'json'

/** A run of consecutive extent numbers. */
export interface ExtentWindow {
  first: number
  count: number
}

/**
 * One edit as plain data: the engine's Edit, the same from the page to the planner. A merge from
 * another open image names it by its id in the open set (`sourceImageId`); a set-ranges edit
 * names a comparison kept by the session by `algebra()`'s id (`resultId`).
 */
export type { ClearInUseMode, Edit } from '../engine/index.js'

export type RepairMode = Repair

/** What to plan: edits applied in order, or one repair. */
export interface PlanRequest {
  edits: Edit[]
  repair?: RepairMode
  /** plan even though bitmaps are in use (the user confirmed no VM has the image open) */
  force?: boolean
}

/** A plan for review; its bytes stay in the worker under `planId`. */
export interface PlanReview {
  planId: number
  summary: string[]
  warnings: string[]
  allocatedClusters: number
  freedClusters: number
  /** writes the commit makes, and their bytes */
  writeCount: number
  writeBytes: number
  /** the bitmaps after the change */
  result: Array<{ name: string; flags: string[]; granularity: number }>
  /** size of the file now: Chromium copies it whole when writing */
  fileSize: number
  /** how the commit will write (see OpenResult.writeMode) */
  writeMode: 'copy' | 'in-place'
}

/** One image of an open set: its id, the id of the opened image that is its backing file, and what opening it found. */
export interface ImageEntry {
  id: number
  /** the open image whose file name matches this one's backing file name; null when none does */
  backingId: number | null
  result: OpenResult
}

/** Several images opened at once (a backing chain, or images to compare). */
export interface OpenSetResult {
  images: ImageEntry[]
  /** the image the other calls work on: the top of the longest chain */
  activeId: number
}

/** A bitmap of one of the open images. */
export interface BitmapRef {
  image: number
  bitmap: number
}

/** Dirty × allocation per heatmap cell (bytes), transferred. */
export interface OverlayResult {
  dirtyData: Float64Array
  dirtyZero: Float64Array
  dirtyUnallocated: Float64Array
  cleanData: Float64Array
  /** per chain depth (0 = this image): bytes allocated (data or zero) by that layer */
  layers: Float64Array[]
  /** names of the layers the allocation map read, top first */
  layerNames: string[]
  /** the backing file named by the last layer, when it is not open: its bytes count as unallocated */
  backingMissing?: string
}

/** Allocation split of some dirty bytes. */
export interface SplitRow {
  data: number
  zero: number
  unallocated: number
}

/** Incremental-backup estimate of a bitmap: its dirty bytes and how they read. */
export interface Estimate {
  bitmapIndex: number
  dirtyBytes: number
  dataBytes: number
  zeroBytes: number
  unallocatedBytes: number
  layerNames: string[]
  backingMissing?: string
}

export type SetOp = 'union' | 'intersect' | 'minus' | 'xor'

/** A computed algebra result, kept in the worker under `id`. */
export interface AlgebraResult {
  id: number
  extentCount: number
  dirtyBytes: number
}

/** A libvirt checkpoint XML file as text (read on the page: it is not image bytes). */
export interface CheckpointFile {
  name: string
  text: string
}

export type CheckpointState = 'healthy' | 'in-use' | 'broken' | 'missing' | 'untrusted'

/** Checkpoints cross-checked against the open images, per disk. */
export interface CheckpointView {
  /** files that are not checkpoints */
  errors: Array<{ file: string; message: string }>
  checkpoints: Array<{ name: string; file: string; parent?: string; creationTime?: number }>
  disks: Array<{
    disk: string
    /** the disk's source file in the checkpoint's domain XML, when given */
    source?: string
    /** the open image this disk is, or null when none matches */
    imageId: number | null
    imageName: string | null
    /** how the image was matched: by the source's file name, or as the only disk with bitmaps */
    matchedBy: 'source' | 'only-disk' | null
    findings: Array<{ checkpoint: string; bitmap: string; state: CheckpointState; fix: string }>
    orphans: Array<{ bitmap: string; fix: string }>
  }>
}

/** What a host (`qbm serve`) serves; null in the browser. */
export interface HostInfo {
  hostname: string
  /** started with --write */
  writable: boolean
  /** the PATHs it was given, as given */
  paths: string[]
  version: string
}

/** The host overview: every image under the PATHs. */
export interface HostOverview {
  rows: OverviewRow[]
  /** PATHs or directory entries that were refused or could not be read */
  errors: Array<{ path: string; message: string }>
  /** the libvirt checkpoint directory read, when any, and its files that could not be read */
  libvirt?: { dir: string; checkpoints: number; errors: Array<{ path: string; message: string }> }
  /** when the scan ended (ms since the epoch) */
  scannedAt: number
}

/**
 * The engine session, as any transport carries it. Every bitmap is named by its directory
 * index. Long calls take an optional `jobId` chosen by the caller: progress for it arrives as
 * `ClientEvents.progress(jobId, ...)`, and `cancel(jobId)` makes it stop at its next check and
 * reject with code 'AbortError'.
 */
export interface EngineApi {
  /** Open an image and read its metadata only (header, extensions, directory, tables). */
  open(source: OpenSource, jobId?: number): Promise<OpenResult>
  /**
   * Open several images at once (closing any open ones); backing files are matched by file
   * name among them. The top of the longest chain becomes the current image.
   */
  openSet(sources: OpenSource[], jobId?: number): Promise<OpenSetResult>
  /** Make another image of the open set the current one (nothing is re-read). */
  activate(imageId: number): Promise<OpenResult>
  /** Read a bitmap's data once and index it; later calls return at once. Progress: bytes read. */
  scan(bitmapIndex: number, jobId?: number): Promise<ScanResult>
  /** Dirty bytes in each of `cells` cells over [start, end) (engine `heatmap`). */
  heatmap(bitmapIndex: number, start: number, end: number, cells: number, jobId?: number): Promise<Float64Array>
  /**
   * heatmap while the bitmap's scan runs: cells whose boundaries the block index built so far
   * answers are exact, the others NaN (`complete` once the scan has ended: all exact).
   */
  heatmapPreview(bitmapIndex: number, start: number, end: number, cells: number): Promise<HeatmapPreview>
  /** Extents number first .. first+count-1 of the whole bitmap, unclipped. */
  extentPage(bitmapIndex: number, first: number, count: number): Promise<Extent[]>
  /** Index of the first extent that ends after byte `offset` (extentCount when none does). */
  extentIndex(bitmapIndex: number, offset: number): Promise<number>
  /** The extents that intersect [from, to), as indexes: numbers first .. first+count-1. */
  extentWindow(bitmapIndex: number, from: number, to: number): Promise<ExtentWindow>
  /** Extents that intersect [from, to), clipped to it; at most `limit`. */
  extentsInRange(bitmapIndex: number, from: number, to: number, limit: number): Promise<Extent[]>
  /** Extents meeting [from, to) (default: the whole disk) as a CSV or JSON file (UTF-8 bytes). */
  exportExtents(bitmapIndex: number, format: ExportFormat, from?: number, to?: number, jobId?: number): Promise<Uint8Array>
  /** QEMU-compatible SHA-256 of the bitmap (x-debug-block-dirty-bitmap-sha256). Progress: bytes read. */
  sha256(bitmapIndex: number, jobId?: number): Promise<string>
  /** Dirty × allocation (through the backing chain) per cell over [start, end). */
  overlay(bitmapIndex: number, start: number, end: number, cells: number, jobId?: number): Promise<OverlayResult>
  /** Allocation split of extents number first .. first+count-1. */
  extentSplits(bitmapIndex: number, first: number, count: number, jobId?: number): Promise<SplitRow[]>
  /** The bitmap's dirty bytes split into data / reads as zero / unallocated (qbm estimate). */
  estimate(bitmapIndex: number, jobId?: number): Promise<Estimate>
  /** A op B at byte resolution over two bitmaps of open images of the same size; kept here. */
  algebra(a: BitmapRef, b: BitmapRef, op: SetOp, jobId?: number): Promise<AlgebraResult>
  /** Dirty bytes per cell of an algebra result. */
  algebraHeat(resultId: number, start: number, end: number, cells: number): Promise<Float64Array>
  /** Extents first .. first+count-1 of an algebra result. */
  algebraPage(resultId: number, first: number, count: number): Promise<Extent[]>
  /** The extents of an algebra result meeting [from, to). */
  algebraWindow(resultId: number, from: number, to: number): Promise<ExtentWindow>
  /** Forget an algebra result. */
  dropAlgebra(resultId: number): Promise<void>
  /** Parse libvirt checkpoint XML and cross-check it against the open images. */
  checkpoints(files: CheckpointFile[]): Promise<CheckpointView>
  /** Plan the edits (or a repair) on the open image; nothing is written. Refused on a read-only host. */
  planEdits(request: PlanRequest, jobId?: number): Promise<PlanReview>
  /**
   * Write a plan to the image (the browser: one createWritable session, readwrite permission
   * granted in the page; a host: in place, as `qbm bitmap` does), then reopen it and return its
   * new state. Never cancelled once started. Progress: bytes written, with each write's step.
   */
  commitPlan(planId: number, jobId?: number): Promise<OpenResult>
  /** The original file with the plan's writes laid over it, to download (browser only). */
  editedCopy(planId: number): Promise<Blob>
  /** Forget a plan. */
  dropPlan(planId: number): Promise<void>
  /** Ask the calls tagged `jobId` to stop. */
  cancel(jobId: number): Promise<void>
  /** Drop the open images. */
  close(): Promise<void>
  /** What the host serves (`qbm serve`); null when the engine runs in the browser. */
  hostInfo(): Promise<HostInfo | null>
  /** Every image under the host's PATHs, or only the images `ids` (refused in the browser). Progress: images done. */
  hostOverview(jobId?: number, ids?: string[]): Promise<HostOverview>
  /** Run the image check on one image of the host overview (same check as `qbm check`). */
  hostCheck(id: string, jobId?: number): Promise<CheckResult>
}

/** What the engine side calls back on the page's side. */
export interface ClientEvents {
  /** Progress of the call tagged `jobId`; `step` names the current write of a commit. */
  progress(jobId: number, doneBytes: number, totalBytes: number, step?: string): void
}

/**
 * The UI's face of the engine (src/transport/client.ts): the same calls with an AbortSignal
 * and progress callbacks on the long ones, whichever transport carries them. A call rejects
 * with an Error whose `info` property holds the engine's ErrorInfo (code 'AbortError' when
 * cancelled, 'Disconnected' when the transport dropped).
 */
export interface EngineClient {
  open(source: OpenSource, signal?: AbortSignal): Promise<OpenResult>
  openSet(sources: OpenSource[], signal?: AbortSignal): Promise<OpenSetResult>
  activate(imageId: number): Promise<OpenResult>
  scan(bitmapIndex: number, onProgress?: ProgressFn, signal?: AbortSignal): Promise<ScanResult>
  heatmap(bitmapIndex: number, start: number, end: number, cells: number, signal?: AbortSignal): Promise<Float64Array>
  /** heatmap while the bitmap is still being scanned: cells the scan has not read yet are NaN. */
  heatmapPreview(bitmapIndex: number, start: number, end: number, cells: number): Promise<HeatmapPreview>
  extentPage(bitmapIndex: number, first: number, count: number): Promise<Extent[]>
  extentIndex(bitmapIndex: number, offset: number): Promise<number>
  extentWindow(bitmapIndex: number, from: number, to: number): Promise<ExtentWindow>
  extentsInRange(bitmapIndex: number, from: number, to: number, limit: number): Promise<Extent[]>
  exportExtents(bitmapIndex: number, format: ExportFormat, from?: number, to?: number, signal?: AbortSignal): Promise<Blob>
  sha256(bitmapIndex: number, onProgress?: ProgressFn, signal?: AbortSignal): Promise<string>
  overlay(bitmapIndex: number, start: number, end: number, cells: number, signal?: AbortSignal): Promise<OverlayResult>
  extentSplits(bitmapIndex: number, first: number, count: number): Promise<SplitRow[]>
  estimate(bitmapIndex: number, signal?: AbortSignal): Promise<Estimate>
  algebra(a: BitmapRef, b: BitmapRef, op: SetOp, signal?: AbortSignal): Promise<AlgebraResult>
  algebraHeat(resultId: number, start: number, end: number, cells: number): Promise<Float64Array>
  algebraPage(resultId: number, first: number, count: number): Promise<Extent[]>
  algebraWindow(resultId: number, from: number, to: number): Promise<ExtentWindow>
  dropAlgebra(resultId: number): Promise<void>
  checkpoints(files: CheckpointFile[]): Promise<CheckpointView>
  planEdits(request: PlanRequest, signal?: AbortSignal): Promise<PlanReview>
  commitPlan(planId: number, onProgress?: CommitProgressFn): Promise<OpenResult>
  editedCopy(planId: number): Promise<Blob>
  dropPlan(planId: number): Promise<void>
  close(): Promise<void>
  hostInfo(): Promise<HostInfo | null>
  hostOverview(onProgress?: ProgressFn, signal?: AbortSignal, ids?: string[]): Promise<HostOverview>
  hostCheck(id: string, signal?: AbortSignal): Promise<CheckResult>
  /** Stop the transport for good. */
  dispose(): void
}
