/**
 * Pending changes: edits the user staged, listed with what each will do. They are committed
 * together ("Write to file" or "Download edited copy"), because Chromium copies the whole file
 * for every write session (browser-platform.md), so one save must carry every change.
 */
import type { PlanRequest, RepairMode } from '../../session/api.js'

export type ClearInUseMode = 'keep' | 'dirty' | 'empty'

export type EditSpec =
  /** granularity undefined: qemu-img's default for the cluster size */
  | { kind: 'add'; name: string; granularity?: number; enabled: boolean }
  | { kind: 'remove'; name: string }
  | { kind: 'clear-in-use'; name: string; mode: ClearInUseMode }
  | { kind: 'enable'; name: string }
  | { kind: 'disable'; name: string }
  | { kind: 'clear'; name: string }
  /** sourceImageId: the source bitmap is in another image of the open set */
  | { kind: 'merge'; source: string; target: string; sourceImageId?: number }
  | { kind: 'rename'; name: string; newName: string }
  /** set the granules of a comparison result computed in this session (kept in the worker) */
  | { kind: 'set-from-algebra'; name: string; algebraId: number; what: string }
  | { kind: 'repair'; mode: RepairMode }

export type PendingEdit = EditSpec & { id: number }

/** qemu-img's default granularity for a new bitmap: the cluster size within [4 KiB, 64 KiB]. */
export function defaultGranularity(clusterSize: number): number {
  return Math.min(65536, Math.max(4096, clusterSize))
}

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

/** What a staged edit will do, in plain words (shown in the pending list). */
export function describeEdit(e: EditSpec): string {
  switch (e.kind) {
    case 'add':
      return `Add bitmap '${e.name}' (granularity ${e.granularity !== undefined ? `${e.granularity} bytes` : "qemu-img's default"}, ${e.enabled ? 'enabled: QEMU records writes into it' : 'disabled'}), empty.`
    case 'remove':
      return `Remove bitmap '${e.name}' and free its clusters. Backups based on it must restart with a full backup.`
    case 'clear-in-use':
      return `Clear in_use on '${e.name}'. ${CLEAR_IN_USE_CONSEQUENCE[e.mode]}`
    case 'enable':
      return `Enable '${e.name}' (set the auto flag): QEMU records writes into it when the image is next used.`
    case 'disable':
      return `Disable '${e.name}' (clear the auto flag): QEMU keeps it but stops recording writes.`
    case 'clear':
      return `Clear every dirty bit of '${e.name}'.`
    case 'merge':
      return `Merge '${e.source}'${e.sourceImageId !== undefined ? ' (from another open image)' : ''} into '${e.target}': every granule dirty in either becomes dirty in '${e.target}'.`
    case 'rename':
      return `Rename '${e.name}' to '${e.newName}'.`
    case 'set-from-algebra':
      return `Set in '${e.name}' every granule dirty in ${e.what} (the comparison computed in this session; qbm's own edit, qemu-img has none like it).`
    case 'repair':
      return `Repair: ${REPAIR_CONSEQUENCE[e.mode]}`
  }
}

/** The pending list as the planner's request: edits in order, or the one repair. */
export function toPlanRequest(pending: readonly EditSpec[], force: boolean): PlanRequest {
  const repair = pending.find((e): e is Extract<EditSpec, { kind: 'repair' }> => e.kind === 'repair')
  if (repair) {
    if (pending.length > 1) throw new Error('A repair is written on its own: unstage the other changes first.')
    return { edits: [], repair: repair.mode, force }
  }
  return {
    force,
    edits: pending.map((e) => {
      switch (e.kind) {
        case 'add': return { op: 'add' as const, name: e.name, ...(e.granularity !== undefined ? { granularity: e.granularity } : {}), disabled: !e.enabled }
        case 'remove': return { op: 'remove' as const, name: e.name }
        case 'clear-in-use': return { op: 'clear-in-use' as const, name: e.name, mode: e.mode }
        case 'enable': return { op: 'enable' as const, name: e.name }
        case 'disable': return { op: 'disable' as const, name: e.name }
        case 'clear': return { op: 'clear' as const, name: e.name }
        case 'merge': return { op: 'merge' as const, name: e.target, source: e.source, ...(e.sourceImageId !== undefined ? { sourceImageId: e.sourceImageId } : {}) }
        case 'rename': return { op: 'rename' as const, name: e.name, newName: e.newName }
        case 'set-from-algebra': return { op: 'set-ranges' as const, name: e.name, algebraId: e.algebraId, what: e.what }
        case 'repair': throw new Error('unreachable')
      }
    }),
  }
}
