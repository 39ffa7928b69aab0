/** Edits: plan (pure) then commit (the only writer). */
export { planEdits, planRepair, editRefusal } from './plan.js'
export { commitPlan, planWriteCount } from './commit.js'
export type { CommitOptions } from './commit.js'
export type { Edit, EditSources, Repair, Plan, PlannedWrite, PlanOptions, ClearInUseMode } from './types.js'
export { EDIT_KINDS, describeEdit } from './kinds/index.js'
export type { DescribeContext } from './kinds/index.js'
export { planEnd, planOverrun, usedEnd, capacityRefusal } from './capacity.js'
export type { Overrun } from './capacity.js'
