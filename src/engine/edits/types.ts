/** Edits, repairs and plans as plain data (docs/format.md §8). */
import type { Image } from '../image.js'

export type { ClearInUseMode, Edit } from './kinds/index.js'

/**
 * What edits name by id, resolved by the caller (the session: its open images and comparison
 * results; the CLI: the image of `-b`, the result of `qbm diff`).
 */
export interface EditSources {
  /** the image a merge's `sourceImageId` names (the image being edited itself is fine too) */
  image?(id: number): Image | undefined
  /** the byte ranges a set-ranges edit's `resultId` names: [start0, end0, ...], sorted, disjoint */
  ranges?(id: number): Float64Array | undefined | Promise<Float64Array | undefined>
}

/** The repairs (docs/format.md §8 "recover"): planned on their own, never with edits. */
export type Repair = 'drop-all-bitmaps' | 'fix-autoclear' | 'retrust'

/** One write of a plan. */
export interface PlannedWrite {
  offset: number
  data: Uint8Array
  /** what it is, for review: 'bitmap data', 'bitmap table', 'refcount block', ... */
  what: string
}

/**
 * An edit's plan: the committer writes `writes`, flushes, writes `header` (cluster 0) in one
 * write, flushes, writes `frees`, flushes (docs/format.md §6.3). A crash between any two writes leaves
 * either the old or the new bitmaps, at worst with leaked clusters.
 */
export interface Plan {
  summary: string[]
  writes: PlannedWrite[]
  header: PlannedWrite
  frees: PlannedWrite[]
  allocatedClusters: number
  freedClusters: number
  /** bitmaps after the edit: name, flags words, granularity */
  result: Array<{ name: string; flags: string[]; granularity: number }>
  warnings: string[]
}

/** How to plan. */
export interface PlanOptions {
  /** edit even though consistent bitmaps are marked in use (the image may be open in QEMU) */
  force?: boolean
  /** cancels the check */
  signal?: { readonly aborted: boolean }
  /** progress of the check (L2 tables read, refcount blocks compared) */
  onProgress?: (done: number, total: number, phase: string) => void
  /** what the edits name by id: other images, sets of byte ranges */
  sources?: EditSources
}
