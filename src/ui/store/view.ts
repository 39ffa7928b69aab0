/**
 * The view part of the app store: which bitmap is shown (and which compared), the table's sort,
 * the byte range the heatmap shows (shared by the heatmap, the extent list and the analysis
 * views) and the extent picked in the list. A new view asks the other slices for what they show.
 */
import type { Extent } from '../../session/api.js'
import { type View, clampView, fullView, panView, viewAround, viewSpan, zoomView } from '../heatmap/geometry.js'
import type { StoreContext } from './context.js'

/** The bitmap table's sort column. */
export type SortKey = 'index' | 'name' | 'granularity' | 'enabled' | 'status' | 'dirty' | 'tableSize'

/** The view fields of the app state. */
export interface ViewState {
  selected: number | null
  compare: number | null
  sort: { key: SortKey; dir: 1 | -1 }
  /** shared heatmap view (bytes); null before an image is open */
  view: View | null
  /** an extent the user picked in the list: highlighted in the heatmap */
  focus: Extent | null
}

/** The view actions. */
export interface ViewActions {
  select(index: number): void
  setCompare(index: number | null): void
  setSort(key: SortKey): void
  setView(v: View): void
  zoom(factor: number, anchor?: number): void
  pan(deltaBytes: number): void
  resetView(): void
  zoomToExtent(x: Extent): void
}

/** Nothing selected, the whole disk (once there is one). */
export const initialView = (): ViewState => ({ selected: null, compare: null, sort: { key: 'index', dir: 1 }, view: null, focus: null })

/** The view actions, and `applyView` for the slices that move the view themselves. */
export function createView(ctx: StoreContext): { actions: ViewActions; applyView: (v: View) => void } {
  const { get, set } = ctx

  /** The smallest granularity on screen: the deepest zoom the view allows. */
  function viewGranularity(): number {
    const a = ctx.bitmap(get().selected)?.granularity
    const b = ctx.bitmap(get().compare)?.granularity
    return Math.min(a ?? b ?? 65536, b ?? a ?? 65536)
  }

  function applyView(v: View): void {
    const img = get().image
    if (!img) return
    const nv = clampView(v, img.summary.diskLength, viewGranularity())
    const cur = get().view
    if (cur && cur.start === nv.start && cur.end === nv.end) return
    set({ view: nv })
    ctx.refresh.heat('primary')
    ctx.refresh.heat('compare')
    if (get().extentMode === 'view') ctx.refresh.extents()
    ctx.refresh.overlay()
    ctx.refresh.algebra()
  }

  const actions: ViewActions = {
    select(index) {
      if (!ctx.bitmap(index) || get().selected === index) return
      set({ selected: index, focus: null, extents: null })
      // A finer granularity may allow a deeper zoom; re-clamp the view.
      const v = get().view
      if (v) applyView(v)
      ctx.refresh.heat('primary')
      ctx.refresh.overlay()
      ctx.refresh.extents()
      if (get().stats[index]?.scan.status === 'idle') void ctx.refresh.scans()
    },

    setCompare(index) {
      if (index !== null && !ctx.bitmap(index)) return
      set({ compare: index })
      ctx.refresh.heat('compare')
      if (index !== null && get().stats[index]?.scan.status === 'idle') void ctx.refresh.scans()
    },

    setSort(key) {
      const s = get().sort
      set({ sort: s.key === key ? { key, dir: s.dir === 1 ? -1 : 1 } : { key, dir: 1 } })
    },

    setView(v) {
      applyView(v)
    },

    zoom(factor, anchor) {
      const v = get().view
      const img = get().image
      if (!v || !img) return
      const a = anchor ?? v.start + viewSpan(v) / 2
      applyView(zoomView(v, factor, a, img.summary.diskLength, viewGranularity()))
    },

    pan(deltaBytes) {
      const v = get().view
      const img = get().image
      if (!v || !img) return
      applyView(panView(v, Math.round(deltaBytes), img.summary.diskLength, viewGranularity()))
    },

    resetView() {
      const img = get().image
      if (img) applyView(fullView(img.summary.diskLength))
    },

    zoomToExtent(x) {
      const img = get().image
      if (!img) return
      set({ focus: x })
      applyView(viewAround(x.offset, x.length, img.summary.diskLength, viewGranularity()))
    },
  }
  return { actions, applyView }
}
