/**
 * Every edit kind, by op: the one list the planner, the API (src/session/api.ts), the page and
 * the CLI's flag table share. A new kind is a module in this folder and a row here.
 */
import { ConstraintError } from '../../errors.js'
import { add } from './add.js'
import { clearInUse } from './clear-in-use.js'
import { clear } from './clear.js'
import { copy } from './copy.js'
import { disable, enable } from './flags.js'
import type { DescribeContext, EditOf, PlanModel } from './kind.js'
import { merge } from './merge.js'
import { remove } from './remove.js'
import { rename } from './rename.js'
import { setRanges } from './set-ranges.js'

/** The edit kinds, by op. */
export const EDIT_KINDS = {
  add, remove, enable, disable, clear, merge, rename, 'clear-in-use': clearInUse, 'set-ranges': setRanges, copy,
} as const

/** One edit as plain data: any kind's edit (`op` names the kind, `name` the bitmap it is on). */
export type Edit = { [K in keyof typeof EDIT_KINDS]: EditOf<(typeof EDIT_KINDS)[K]> }[keyof typeof EDIT_KINDS]

type AnyKind = { describe(e: Edit, ctx?: DescribeContext): string; apply(e: Edit, m: PlanModel): Promise<string | undefined> }

function kindOf(e: Edit): AnyKind {
  const k = Object.hasOwn(EDIT_KINDS, e.op) ? EDIT_KINDS[e.op] : undefined
  if (!k) throw new ConstraintError(`unknown edit '${String(e.op)}'`, 'invalid-edit')
  return k as unknown as AnyKind
}

/** What an edit does, in one line: the page's pending list and the plan's summary. */
export function describeEdit(e: Edit, ctx?: DescribeContext): string {
  return kindOf(e).describe(e, ctx)
}

/** Apply one edit to the planner's model; its line for the plan's summary. */
export async function applyEdit(e: Edit, m: PlanModel): Promise<string> {
  const k = kindOf(e)
  const detail = await k.apply(e, m)
  const line = k.describe(e, { clusterSize: m.clusterSize })
  return detail === undefined ? line : `${line} ${detail}`
}

export type { ClearInUseMode } from './clear-in-use.js'
export type { DataSource, DescribeContext, EditKind, ModelBitmap, OtherImage, PlanModel } from './kind.js'
