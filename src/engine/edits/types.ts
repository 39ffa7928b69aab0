/** Edits, repairs and plans as plain data (docs/format.md §8). */
import type { Image } from '../image.js'

export type ClearInUseMode = 'keep' | 'dirty' | 'empty'

export type Edit =
  | { op: 'add'; name: string; granularity?: number; disabled?: boolean }
  | { op: 'remove'; name: string }
  | { op: 'enable'; name: string }
  | { op: 'disable'; name: string }
  | { op: 'clear'; name: string }
  | { op: 'merge'; name: string; source: string; sourceImage?: Image }
  | { op: 'rename'; name: string; newName: string }
  | { op: 'clear-in-use'; name: string; mode: ClearInUseMode }
  /**
   * qbm's own: set the bits of every granule meeting the byte ranges [start0, end0, start1,
   * end1, ...] (sorted, disjoint; e.g. a bitmap-algebra result), in addition to the bits already
   * set. `what` names the ranges in the plan's summary.
   */
  | { op: 'set-ranges'; name: string; ranges: Float64Array; what: string }

export type Repair = 'drop-all-bitmaps' | 'fix-autoclear' | 'retrust'

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

export interface PlanOptions {
  /** edit even though consistent bitmaps are marked in use (the image may be open in QEMU) */
  force?: boolean
  /** cancels the check */
  signal?: { readonly aborted: boolean }
  /** progress of the check (L2 tables read, refcount blocks compared) */
  onProgress?: (done: number, total: number, phase: string) => void
}
