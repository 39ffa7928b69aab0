/**
 * The changes part of the app store: the pending list (edits.ts), the engine's plan for review,
 * and the save: "Write to file" (the handle, or the host in place) or "Download edited copy".
 */
import type { ErrorInfo, OpenResult, OpenSource, PlanReview } from '../../session/api.js'
import type { View } from '../heatmap/geometry.js'
import type { StoreContext } from './context.js'
import { type Change, type PendingEdit, toPlanRequest } from './edits.js'
import { errorInfo } from './errors.js'

/** The review of the pending changes before they are saved. */
export type Review =
  | { status: 'planning' }
  | { status: 'ready'; plan: PlanReview; force: boolean }
  /** the planner refused; `needsForce` when confirming that no VM uses the image would help */
  | { status: 'refused'; error: ErrorInfo; needsForce: boolean; force: boolean }
  | { status: 'saving'; plan: PlanReview }

/** The changes fields of the app state. */
export interface ReviewState {
  pending: PendingEdit[]
  review: Review | null
}

/** The changes actions. */
export interface ReviewActions {
  addPending(edit: Change): void
  removePending(id: number): void
  clearPending(): void
  /** Plan the pending changes for review (`force`: the user confirmed no VM uses the image). */
  reviewChanges(force?: boolean): Promise<void>
  closeReview(): void
  /**
   * Write the reviewed plan to the file. `requestWrite` asks for readwrite permission on the
   * handle and must run inside the user's click.
   */
  writeToFile(requestWrite: (h: FileSystemFileHandle) => Promise<boolean>): Promise<boolean>
  /** The reviewed plan laid over the original, as a Blob to download (null on failure). */
  editedCopy(): Promise<Blob | null>
}

/** Nothing staged. */
export const initialReview = (): ReviewState => ({ pending: [], review: null })

/** What the changes need of the open slice: where the image came from, and how to show it again. */
export interface ReviewDeps {
  source(): OpenSource | null
  /** show the written image, keeping the selection (by name) and the view */
  reshow(r: OpenResult, keep: { selected: string | null; compare: string | null; view: View | null }): void
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

/** The changes actions. */
export function createReview(ctx: StoreContext, deps: ReviewDeps): ReviewActions {
  const { get, set, client } = ctx
  let editSeq = 0
  return {
    addPending(edit) {
      set({ pending: [...get().pending, { ...edit, id: ++editSeq }] })
    },

    removePending(id) {
      set({ pending: get().pending.filter((p) => p.id !== id) })
    },

    clearPending() {
      set({ pending: [] })
    },

    async reviewChanges(force = false) {
      const s = get()
      if (!s.image || s.pending.length === 0 || s.review?.status === 'saving') return
      const old = s.review
      if (old && (old.status === 'ready')) void client.dropPlan(old.plan.planId).catch(() => undefined)
      set({ review: { status: 'planning' } })
      const gen = ctx.generation()
      // Planning first runs the image check (the whole L1/L2 walk qemu-img check does): on a
      // big image that takes a while, so it is a job with Cancel like a scan.
      const { job, signal } = ctx.jobs.start('plan', 'Checking the image and planning the changes')
      try {
        const plan = await client.planEdits(toPlanRequest(s.pending, force), signal)
        if (gen === ctx.generation()) set({ review: { status: 'ready', plan, force } })
      } catch (e) {
        if (gen !== ctx.generation()) return
        const info = errorInfo(e)
        // The planner refuses while bitmaps are in use unless told no VM has the image open.
        const needsForce = !force && info.code === 'bitmaps-in-use'
        set({ review: { status: 'refused', error: info, needsForce, force } })
      } finally {
        ctx.jobs.end(job.id)
      }
    },

    closeReview() {
      const r = get().review
      if (r?.status === 'saving') return
      if (r?.status === 'ready') void client.dropPlan(r.plan.planId).catch(() => undefined)
      set({ review: null })
    },

    async writeToFile(requestWrite) {
      const s = get()
      const r = s.review
      const img = s.image
      if (!img || r?.status !== 'ready') return false
      const src = deps.source()
      if (!src || (src.kind !== 'handle' && src.kind !== 'host')) {
        ctx.fail(`Writing ${img.name}`, { code: 'ConstraintError', message: 'This image was opened as a plain file, which the browser gives read-only. Use "Download edited copy", or open the file with "Open image…" or by dropping it.' })
        return false
      }
      // A browser file needs readwrite permission, asked inside the click; a host writes itself.
      if (src.kind === 'handle') {
        let ok = false
        try {
          ok = await requestWrite(src.handle)
        } catch {
          ok = false
        }
        if (!ok) {
          ctx.fail(`Writing ${img.name}`, { code: 'NotAllowedError', message: `Permission to write to '${img.name}' was not granted.` })
          return false
        }
      }
      const gen = ctx.generation()
      const keep = { selected: ctx.bitmap(s.selected)?.name ?? null, compare: ctx.bitmap(s.compare)?.name ?? null, view: s.view }
      set({ review: { status: 'saving', plan: r.plan } })
      const changes = plural(r.plan.summary.length, 'change')
      const { job } = ctx.jobs.start('commit', `Writing ${changes} to ${img.name}`)
      if (r.plan.writeMode === 'copy') ctx.jobs.patch(job.id, { step: 'copying', fileSize: r.plan.fileSize })
      try {
        const res = await client.commitPlan(r.plan.planId, (d, t, step) => {
          if (gen === ctx.generation()) ctx.jobs.patch(job.id, { doneBytes: d, totalBytes: t, step })
        })
        if (gen !== ctx.generation()) return false
        ctx.nextGeneration() // results computed for the old file are void
        get().closeAlgebra()
        const active = get().activeImageId
        if (active !== null) set({ images: get().images.map((x) => (x.id === active ? { ...x, result: res } : x)) })
        deps.reshow(res, keep)
        ctx.refresh.checkpoints()
        set({ pending: [], review: null, notice: `Wrote ${changes} to ${res.name}. It now holds ${plural(res.summary.bitmaps.length, 'bitmap')}.` })
        void ctx.refresh.scans()
        return true
      } catch (e) {
        if (gen === ctx.generation()) {
          set({ review: { status: 'ready', plan: r.plan, force: false } })
          ctx.fail(`Writing ${img.name}`, e)
        }
        return false
      } finally {
        ctx.jobs.end(job.id)
      }
    },

    async editedCopy() {
      const s = get()
      const r = s.review
      if (!s.image || r?.status !== 'ready') return null
      try {
        return await client.editedCopy(r.plan.planId)
      } catch (e) {
        ctx.fail(`Building the edited copy of ${s.image.name}`, e)
        return null
      }
    },
  }
}
