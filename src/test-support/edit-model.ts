/**
 * An independent, deliberately simple model of what each bitmap edit does to the list of
 * bitmaps (docs/format.md §6.4, §8), for computing expected states in interop tests. Extents are byte
 * ranges of the disk; a merge across granularities dirties every target granule that any
 * source-dirty byte falls in.
 */
import type { Edit, Repair } from '../engine/index.js'
import { type Extent, roundToGranules, union } from './edit-oracle.js'

export interface ModelState {
  name: string
  granularity: number
  /** sorted: 'auto', 'in-use' */
  flags: string[]
  extents: Extent[]
  /** name before the edit (undefined for a new bitmap) */
  origin?: string
  /** bits (or, for in-use bitmaps, QEMU's view of them) may differ from before */
  changed: boolean
}

export interface ModelContext {
  /** disk length */
  L: number
  /** granularity an add without -g picks */
  defaultGranularity: number
  /** bitmap lists of other images, by the path used in merge edits' sourceKey */
  sources?: Record<string, ModelState[]>
}

/** An engine edit, with cross-image merges naming their source by key instead of an Image. */
export type ModelEdit = (Exclude<Edit, { op: 'merge' }> | { op: 'merge'; name: string; source: string; sourceKey?: string })

const sortFlags = (f: string[]): string[] => [...new Set(f)].sort()

export function startState(list: Array<{ name: string; granularity: number; flags: string[]; extents: Extent[] }>): ModelState[] {
  return list.map((b) => ({ name: b.name, granularity: b.granularity, flags: sortFlags(b.flags), extents: b.extents.map((e) => ({ ...e })), origin: b.name, changed: false }))
}

export function applyModel(pre: ModelState[], edits: ModelEdit[], ctx: ModelContext): ModelState[] {
  const list = pre.map((b) => ({ ...b, flags: [...b.flags], extents: b.extents.map((e) => ({ ...e })) }))
  const get = (name: string): ModelState => {
    const b = list.find((x) => x.name === name)
    if (!b) throw new Error(`model: no bitmap '${name}'`)
    return b
  }
  for (const e of edits) {
    switch (e.op) {
      case 'add':
        list.push({ name: e.name, granularity: e.granularity ?? ctx.defaultGranularity, flags: e.disabled ? [] : ['auto'], extents: [], changed: true })
        break
      case 'remove':
        list.splice(list.indexOf(get(e.name)), 1)
        break
      case 'enable': { const b = get(e.name); b.flags = sortFlags([...b.flags, 'auto']); break }
      case 'disable': { const b = get(e.name); b.flags = b.flags.filter((f) => f !== 'auto'); break }
      case 'clear': { const b = get(e.name); b.extents = []; b.changed = true; break }
      case 'rename': get(e.name).name = e.newName; break
      case 'clear-in-use': {
        const b = get(e.name)
        b.flags = b.flags.filter((f) => f !== 'in-use')
        b.changed = true
        if (e.mode === 'dirty') b.extents = ctx.L > 0 ? [{ offset: 0, length: ctx.L }] : []
        else if (e.mode === 'empty') b.extents = []
        else b.extents = clip(b.extents, ctx.L)
        break
      }
      case 'copy': {
        const s = get(e.name)
        list.push({ name: e.newName, granularity: s.granularity, flags: [...s.flags], extents: s.extents.map((x) => ({ ...x })), changed: true })
        break
      }
      case 'merge': {
        const t = get(e.name)
        const srcList = e.sourceKey ? ctx.sources?.[e.sourceKey] : list
        const s = srcList?.find((x) => x.name === e.source)
        if (!s) throw new Error(`model: no source bitmap '${e.source}'`)
        t.extents = union(t.extents, roundToGranules(s.extents, t.granularity, ctx.L))
        t.changed = true
        break
      }
    }
  }
  return list
}

export function applyRepairModel(pre: ModelState[], repair: Repair, ctx: ModelContext): ModelState[] {
  switch (repair) {
    case 'drop-all-bitmaps':
    case 'fix-autoclear':
      return []
    case 'retrust':
      return pre.map((b) => ({ ...b, flags: b.flags.filter((f) => f !== 'in-use'), extents: [{ offset: 0, length: ctx.L }], changed: true }))
  }
}

function clip(list: Extent[], L: number): Extent[] {
  return list.filter((e) => e.offset < L).map((e) => ({ offset: e.offset, length: Math.min(e.length, L - e.offset) }))
}
