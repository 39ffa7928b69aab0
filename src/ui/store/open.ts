/**
 * The open part of the app store: opening one image or several (a backing chain, images to
 * compare) by one path, showing an image (again, after a commit or a switch, keeping the
 * selection by name), closing it, and the drop-to-first-heatmap timing.
 */
import type { BitmapSummary, ImageSummary, OpenResult, OpenSetResult, OpenSource } from '../../session/api.js'
import { sourceName } from '../../session/sources.js'
import { type View, fullView } from '../heatmap/geometry.js'
import type { AppState } from './app-store.js'
import type { StoreContext } from './context.js'
import { isAbort } from './errors.js'
import type { BitmapStats } from './scans.js'

/** How an image came in ('launch': the operating system opened it with the installed app). */
export type HowOpened = 'drop' | 'picker' | 'input' | 'demo' | 'recent' | 'host' | 'launch'

/** The image shown, as the page knows it. */
export interface OpenImage {
  name: string
  /** edits can be written back (a FileSystemFileHandle in the browser, `--write` on a host) */
  writable: boolean
  /** why not, when not writable */
  readOnlyReason?: string
  /** 'copy': the browser copies the whole file per save; 'in-place': a host writes the changed clusters */
  writeMode: 'copy' | 'in-place'
  /** a QEMU process has it open (host only) */
  heldBy?: OpenResult['heldBy']
  how: HowOpened
  summary: ImageSummary
}

/** The open fields of the app state. */
export interface OpenState {
  image: OpenImage | null
  /** what is being opened, for the page's message */
  opening: string | null
  /** a heatmap draw after open still has to record the drop-to-first-heatmap time */
  firstHeatPending: boolean
  /** drop-to-first-heatmap of the last open, in ms */
  firstHeatMs: number | null
}

/** The open actions. */
export interface OpenActions {
  open(source: OpenSource, how: HowOpened): Promise<void>
  /** Open several images at once (a backing chain, or images to compare). */
  openMany(sources: OpenSource[], how: HowOpened): Promise<void>
  openDemo(url: string): Promise<void>
  closeImage(): Promise<void>
  markFirstHeatmap(): void
}

/** No image. */
export const initialOpen = (): OpenState => ({ image: null, opening: null, firstHeatPending: false, firstHeatMs: null })

/** What to keep when an image is shown again: the selected and compared bitmaps by name, the view. */
export interface Keep {
  selected: string | null
  compare: string | null
  view: View | null
}

/** What the open slice needs besides the context. */
export interface OpenDeps {
  /** the state of a fresh image: every field reset but the page's settings */
  reset(): Partial<AppState>
  /** forget what is being fetched for the old image (extent pages) */
  forgetLoading(): void
  /** the last open of a file handle, for the recent list */
  remember(handle: FileSystemFileHandle): void
  measure(name: string, start: string, end: string): number | null
}

const MARK_OPEN = 'qbm:open'
const MARK_HEAT = 'qbm:first-heatmap'
const MEASURE = 'qbm:drop-to-first-heatmap'

/**
 * The open actions; `showImage` and `activate` (show another image of the open set) for the
 * other slices; `source()`, what the shown image came from (the handle asks for write permission).
 */
export function createOpen(ctx: StoreContext, deps: OpenDeps): {
  actions: OpenActions
  showImage: (r: OpenResult, keep: Keep | null) => BitmapSummary | undefined
  activate: (id: number) => Promise<void>
  source: () => OpenSource | null
} {
  const { get, set, client } = ctx
  /** the sources of the open images, by image id (one image: id 1) */
  const sources = new Map<number, OpenSource>()
  let current: OpenSource | null = null

  /** Show an opened (or re-opened) image; keeps the selection by name when it still exists. */
  function showImage(r: OpenResult, keep: Keep | null, how: HowOpened = get().image?.how ?? 'drop'): BitmapSummary | undefined {
    const summary = r.summary
    const stats: Record<number, BitmapStats> = {}
    for (const b of summary.bitmaps) stats[b.index] = { scan: { status: 'idle' }, sha: 'idle' }
    const byName = (n: string | null) => (n === null ? undefined : summary.bitmaps.find((b) => b.name === n))
    // Start on a bitmap QEMU trusts that has data; an in-use one's data is stale.
    const first = byName(keep?.selected ?? null)
      ?? summary.bitmaps.find((b) => b.status === 'ok' && b.dataBytes > 0)
      ?? summary.bitmaps.find((b) => b.status === 'ok')
      ?? summary.bitmaps.find((b) => b.status !== 'invalid')
      ?? summary.bitmaps[0]
    const second = byName(keep?.compare ?? null)
    const sameDisk = keep?.view && keep.view.end <= summary.diskLength
    set({
      image: {
        name: r.name, writable: r.writable, writeMode: r.writeMode, how, summary,
        ...(r.readOnlyReason !== undefined ? { readOnlyReason: r.readOnlyReason } : {}),
        ...(r.heldBy ? { heldBy: r.heldBy } : {}),
      },
      stats,
      selected: first ? first.index : null,
      compare: second && second !== first ? second.index : null,
      view: sameDisk ? keep!.view : fullView(summary.diskLength),
      heat: { primary: null, compare: null },
      extents: null,
      extentPages: {},
      focus: null,
      scansPaused: false,
      overlay: null,
      estimates: {},
      extentSplits: {},
    })
    return first
  }

  /** Open one image (client.open) or several (client.openSet): the one path of every open. */
  async function openAll(list: OpenSource[], how: HowOpened): Promise<void> {
    const single = list.length === 1
    const label = single ? sourceName(list[0]!) : `${list.length} images`
    const gen = ctx.nextGeneration()
    ctx.mark(MARK_OPEN)
    ctx.jobs.abortAll()
    deps.forgetLoading()
    set({ ...deps.reset(), opening: label })
    const { job, signal } = ctx.jobs.start('open', `Opening ${label}`)
    try {
      let shown: OpenResult
      let opened: OpenSetResult | undefined
      if (single) shown = await client.open(list[0]!, signal)
      else {
        opened = await client.openSet(list, signal)
        const activeId = opened.activeId
        shown = opened.images.find((x) => x.id === activeId)!.result
      }
      if (gen !== ctx.generation()) return
      sources.clear()
      if (opened) {
        list.forEach((src, i) => sources.set(opened!.images[i]?.id ?? i + 1, src))
        current = sources.get(opened.activeId) ?? null
        set({ images: opened.images, activeImageId: opened.activeId })
      } else current = list[0]!
      const first = showImage(shown, null, how)
      set({ opening: null, firstHeatPending: first !== undefined })
      if (single && list[0]!.kind === 'handle') deps.remember(list[0]!.handle)
      void ctx.refresh.scans()
    } catch (e) {
      if (gen !== ctx.generation()) return
      set({ opening: null })
      if (!isAbort(e)) ctx.fail(`Opening ${label}`, e)
    } finally {
      ctx.jobs.end(job.id)
    }
  }

  /** Show another image of the open set (refused while edits for the shown one are pending). */
  async function activate(id: number): Promise<void> {
    const img = get().image
    if (!img) return
    if (get().pending.length > 0) {
      ctx.fail('Switching images', { code: 'ConstraintError', message: 'The pending changes belong to the image shown: save or unstage them before showing another image.' })
      return
    }
    const gen = ctx.nextGeneration()
    ctx.jobs.abortAll()
    deps.forgetLoading()
    try {
      const r = await client.activate(id)
      if (gen !== ctx.generation()) return
      const src = sources.get(id)
      if (src) current = src
      set({ activeImageId: id, review: null })
      showImage(r, { selected: null, compare: null, view: get().view }, img.how)
      void ctx.refresh.scans()
      ctx.refresh.algebra()
      ctx.refresh.checkpoints()
    } catch (e) {
      if (gen === ctx.generation()) ctx.fail('Switching images', e)
    }
  }

  const actions: OpenActions = {
    open: (source, how) => openAll([source], how),

    openMany: (list, how) => openAll(list, how),

    async openDemo(url) {
      await get().open({ kind: 'url', url, name: 'demo.qcow2' }, 'demo')
    },

    async closeImage() {
      ctx.nextGeneration()
      current = null
      sources.clear()
      ctx.jobs.abortAll()
      set({ ...deps.reset() })
      await client.close().catch(() => undefined)
    },

    markFirstHeatmap() {
      if (!get().firstHeatPending) return
      ctx.mark(MARK_HEAT)
      const ms = deps.measure(MEASURE, MARK_OPEN, MARK_HEAT)
      set({ firstHeatPending: false, firstHeatMs: ms })
    },
  }
  return { actions, showImage: (r, keep) => showImage(r, keep), activate, source: () => current }
}
