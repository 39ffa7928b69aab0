/**
 * Pending changes: edits the user staged, listed with what each will do. They are committed
 * together ("Write to file" or "Download edited copy"), because Chromium copies the whole file
 * for every write session (browser-platform.md), so one save must carry every change.
 */
import { describeEdit } from '../../engine/shared.js'
import type { ClearInUseMode, Edit, PlanRequest, RepairMode } from '../../session/api.js'

/** A staged change: an edit (the API's Edit, as the planner takes it), or a repair, written on its own. */
export type Change = Edit | { op: 'repair'; mode: RepairMode }

/** A staged change and its place in the pending list. */
export type PendingEdit = Change & { id: number }

export const CLEAR_IN_USE_CONSEQUENCE: Record<ClearInUseMode, string> = {
  keep: 'Keep its stored bits. Writes made while it was in use are NOT in them: the next incremental backup from it copies only the regions dirty at its last clean save and can silently miss data. Only if you know nothing was written since.',
  dirty: 'Mark every granule dirty. The next incremental backup from it copies the whole disk (as big as a full backup), but misses nothing; after that, incrementals are small again.',
  empty: 'Empty it. The next incremental backup from it copies nothing until new writes arrive, so it misses everything written before: take a full backup now and use this bitmap from then on.',
}

/** One line per mode for the note beside the clear-in-use controls: the effect on the next backup. */
export const CLEAR_IN_USE_NEXT_BACKUP: Record<ClearInUseMode, string> = {
  keep: 'copies only what was dirty at the last clean save: may miss data',
  dirty: 'copies the whole disk: safe, as big as a full backup',
  empty: 'copies nothing until new writes: take a full backup first',
}

export const REPAIR_CONSEQUENCE: Record<RepairMode, string> = {
  'drop-all-bitmaps': 'Remove every bitmap, the bitmaps extension and autoclear bit 0, and free their clusters. Every backup chain restarts with a full backup.',
  'fix-autoclear': 'Clear autoclear bit 0, which is set although the image has no bitmaps extension (QEMU would mark the image corrupt on its first write).',
  retrust: 'Trust the bitmaps again (set autoclear bit 0) and mark every one of them fully dirty, since writes may have been missed.',
}

/** What a staged change will do, in plain words (the pending list): the planner's own words for an edit. */
export function describeChange(c: Change, clusterSize?: number): string {
  if (c.op === 'repair') return `Repair: ${REPAIR_CONSEQUENCE[c.mode]}`
  return describeEdit(c, clusterSize !== undefined ? { clusterSize } : {})
}

/** The pending list as the planner's request: edits in order, or the one repair. */
export function toPlanRequest(pending: readonly PendingEdit[], force: boolean): PlanRequest {
  const repair = pending.find((e): e is Extract<PendingEdit, { op: 'repair' }> => e.op === 'repair')
  if (repair) {
    if (pending.length > 1) throw new Error('A repair is written on its own: unstage the other changes first.')
    return { edits: [], repair: repair.mode, force }
  }
  // The edits as the API takes them: without the list's ids (the server refuses unknown fields).
  return { force, edits: pending.map(({ id: _id, ...e }) => e as Edit) }
}
