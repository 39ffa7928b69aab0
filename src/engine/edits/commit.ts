/**
 * The committer: the only engine code that writes. Order of docs/format.md §6.3: new clusters and
 * refcount increments, flush; cluster 0 in one write, flush; refcount decrements, flush.
 */
import type { WritableBlockDevice } from '../device.js'
import type { Plan } from './types.js'

/** Options of commitPlan. */
export interface CommitOptions {
  onProgress?: (doneBytes: number, totalBytes: number, step: string) => void
  /**
   * Runs once, right before the first write; when it throws, nothing is written and commitPlan
   * throws that error. The host's edit path checks here, a second time, that no QEMU process
   * has opened the image since the plan was made (src/host/edit.ts).
   */
  beforeFirstWrite?: () => Promise<void>
}

/** Execute a plan. Once started it is never cancelled: stopping half-way is what crash safety is for, not a feature. */
export async function commitPlan(dev: WritableBlockDevice, plan: Plan, opts: CommitOptions = {}): Promise<void> {
  const total = [...plan.writes, plan.header, ...plan.frees].reduce((s, w) => s + w.data.length, 0)
  let done = 0
  const step = async (w: { offset: number; data: Uint8Array; what: string }): Promise<void> => {
    await dev.write(w.offset, w.data)
    done += w.data.length
    opts.onProgress?.(done, total, w.what)
  }
  await opts.beforeFirstWrite?.()
  for (const w of plan.writes) await step(w)
  await dev.flush()
  await step(plan.header)
  await dev.flush()
  for (const w of plan.frees) await step(w)
  await dev.flush()
}

/** Number of writes a plan makes (for crash-injection tests). */
export function planWriteCount(plan: Plan): number {
  return plan.writes.length + 1 + plan.frees.length
}
