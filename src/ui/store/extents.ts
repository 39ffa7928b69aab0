/**
 * The extent list part of the app store: which extents the list shows (those meeting the view,
 * or all), the pages of them fetched from the engine (kept up to MAX_PAGES), and their export.
 */
import type { ExportFormat, Extent } from '../../session/api.js'
import type { View } from '../heatmap/geometry.js'
import type { StoreContext } from './context.js'
import { isAbort } from './errors.js'
import { latestRefresh } from './latest.js'

/** Extents per page fetched from the worker. */
export const EXTENT_PAGE = 256
/** Extent pages kept in memory before the oldest are dropped. */
const MAX_PAGES = 400

/** The extents the list shows: numbers first .. first+count-1 of a bitmap's extents. */
export interface ExtentList {
  bitmapIndex: number
  mode: 'view' | 'all'
  /** number of the first listed extent */
  first: number
  count: number
  /** the view the window was computed for (mode 'view') */
  view: View
}

/** The extent list fields of the app state. */
export interface ExtentsState {
  extentMode: 'view' | 'all'
  extents: ExtentList | null
  /** pages of extents: key `${bitmapIndex}:${page}` */
  extentPages: Record<string, Extent[]>
}

/** The extent list actions. */
export interface ExtentsActions {
  setExtentMode(mode: 'view' | 'all'): void
  ensureExtents(firstIndex: number, lastIndex: number): void
  exportExtents(format: ExportFormat, range: 'all' | 'view'): Promise<Blob | null>
}

/** The list of the view, nothing fetched. */
export const initialExtents = (): ExtentsState => ({ extentMode: 'view', extents: null, extentPages: {} })

/** The extent list actions, its refresh, and `forgetLoading` for a new image (its pages are not the old one's). */
export function createExtents(ctx: StoreContext): { actions: ExtentsActions; refresh: () => void; forgetLoading: () => void } {
  const { get, set, client } = ctx
  const pagesLoading = new Set<string>()

  /** Compute the window the list shows now; true when it did (look again: the view may have moved). */
  async function fetchWindow(): Promise<boolean> {
    const s = get()
    const index = s.selected
    const b = ctx.bitmap(index)
    const st = index !== null ? s.stats[index]?.scan : undefined
    if (index === null || !b || !s.view || !st || st.status !== 'done') {
      if (s.extents) set({ extents: null })
      return false
    }
    const view = s.view
    const mode = s.extentMode
    const ex = s.extents
    if (ex && ex.bitmapIndex === index && ex.mode === mode && (mode === 'all' || (ex.view.start === view.start && ex.view.end === view.end))) return false
    const gen = ctx.generation()
    try {
      const whole = view.start === 0 && view.end >= s.image!.summary.diskLength
      const w = mode === 'all' || whole ? { first: 0, count: st.extentCount } : await client.extentWindow(index, view.start, view.end)
      if (gen !== ctx.generation()) return false
      set({ extents: { bitmapIndex: index, mode, first: w.first, count: w.count, view } })
      return true
    } catch (e) {
      if (gen === ctx.generation() && !isAbort(e)) ctx.fail(`Listing the extents of '${b.name}'`, e)
      return false
    }
  }

  const refresh = latestRefresh(fetchWindow)

  const actions: ExtentsActions = {
    setExtentMode(mode) {
      if (mode === get().extentMode) return
      set({ extentMode: mode })
      refresh()
    },

    ensureExtents(firstIndex, lastIndex) {
      const ex = get().extents
      if (!ex) return
      const index = ex.bitmapIndex
      const gen = ctx.generation()
      const p0 = Math.floor(Math.max(0, firstIndex) / EXTENT_PAGE)
      const p1 = Math.floor(Math.max(0, lastIndex) / EXTENT_PAGE)
      for (let p = p0; p <= p1; p++) {
        const key = `${index}:${p}`
        if (get().extentPages[key] || pagesLoading.has(key)) continue
        pagesLoading.add(key)
        ctx.refresh.splits(index, p, p * EXTENT_PAGE, EXTENT_PAGE)
        client.extentPage(index, p * EXTENT_PAGE, EXTENT_PAGE).then(
          (rows) => {
            if (gen !== ctx.generation()) return
            const pages = { ...get().extentPages, [key]: rows }
            const keys = Object.keys(pages)
            if (keys.length > MAX_PAGES) for (const k of keys.slice(0, keys.length - MAX_PAGES)) delete pages[k]
            set({ extentPages: pages })
          },
          (e: unknown) => { if (gen === ctx.generation() && !isAbort(e)) ctx.fail('Reading extents', e) },
        ).finally(() => pagesLoading.delete(key))
      }
    },

    async exportExtents(format, range) {
      const s = get()
      const b = ctx.bitmap(s.selected)
      if (!b || !s.view) return null
      const { job, signal } = ctx.jobs.start('export', `Exporting the extents of '${b.name}'`)
      try {
        return range === 'view'
          ? await client.exportExtents(b.index, format, s.view.start, s.view.end, signal)
          : await client.exportExtents(b.index, format, undefined, undefined, signal)
      } catch (e) {
        if (!isAbort(e)) ctx.fail(`Exporting the extents of '${b.name}'`, e)
        return null
      } finally {
        ctx.jobs.end(job.id)
      }
    },
  }
  return { actions, refresh, forgetLoading: () => pagesLoading.clear() }
}
