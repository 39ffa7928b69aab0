/**
 * The heatmap part of the app store: the cells of the selected bitmap (primary) and of the
 * compared one, counted by the engine for the shared view at the heatmap's width, one request
 * per pane in flight and the latest wanted next (latest.ts).
 */
import { type View, heatRequest } from '../heatmap/geometry.js'
import type { StoreContext } from './context.js'
import { isAbort } from './errors.js'
import { latestRefresh } from './latest.js'

/** A heatmap pane: the selected bitmap, or the compared one. */
export type HeatSlot = 'primary' | 'compare'

/** Heat cells of one pane and what they were fetched for. */
export interface HeatData {
  bitmapIndex: number
  /** the store view these cells were fetched for */
  forView: View
  /** the byte range the cells cover (heatRequest: may be wider than forView) */
  view: View
  cells: number
  counts: Float64Array
}

/** The heatmap fields of the app state. */
export interface HeatState {
  /** width of the heatmap in device pixels: the most cells worth asking for */
  heatWidth: number
  heat: Record<HeatSlot, HeatData | null>
}

/** The heatmap actions. */
export interface HeatActions {
  setHeatWidth(px: number): void
}

/** No cells yet, 1000 pixels until the page measures. */
export const initialHeat = (): HeatState => ({ heatWidth: 1000, heat: { primary: null, compare: null } })

/** The heatmap actions, and the refresh of one pane. */
export function createHeat(ctx: StoreContext): { actions: HeatActions; refresh: (slot: HeatSlot) => void } {
  const { get, set, client } = ctx

  function slotBitmap(slot: HeatSlot): number | null {
    return slot === 'primary' ? get().selected : get().compare
  }

  /** Fetch the cells the pane wants now; true when it fetched (look again: the view may have moved). */
  async function fetchCells(slot: HeatSlot): Promise<boolean> {
    const s = get()
    const index = slotBitmap(slot)
    const b = ctx.bitmap(index)
    if (!s.view || index === null || !b) {
      if (s.heat[slot]) set({ heat: { ...s.heat, [slot]: null } })
      return false
    }
    if (s.stats[index]?.scan.status !== 'done') return false // the scan's end asks again
    const forView = s.view
    const req = heatRequest(forView, s.heatWidth, b.granularity)
    const have = s.heat[slot]
    if (have && have.bitmapIndex === index && have.cells === req.cells && have.view.start === req.start && have.view.end === req.end) {
      if (have.forView !== forView) set({ heat: { ...s.heat, [slot]: { ...have, forView } } })
      return false
    }
    const gen = ctx.generation()
    try {
      const counts = await client.heatmap(index, req.start, req.end, req.cells)
      if (gen !== ctx.generation()) return false
      const view = { start: req.start, end: req.end }
      set({ heat: { ...get().heat, [slot]: { bitmapIndex: index, forView, view, cells: req.cells, counts } } })
      // After the first picture: the incremental-backup estimate of the shown bitmap.
      if (slot === 'primary') ctx.refresh.estimate(index)
      return true
    } catch (e) {
      if (gen === ctx.generation() && !isAbort(e)) ctx.fail(`Computing the heatmap of '${b.name}'`, e)
      return false
    }
  }

  const refreshers: Record<HeatSlot, () => void> = {
    primary: latestRefresh(() => fetchCells('primary')),
    compare: latestRefresh(() => fetchCells('compare')),
  }

  const actions: HeatActions = {
    setHeatWidth(px) {
      const w = Math.max(16, Math.min(8192, Math.floor(px)))
      if (w === get().heatWidth) return
      set({ heatWidth: w })
      refreshers.primary()
      refreshers.compare()
      ctx.refresh.overlay()
      ctx.refresh.algebra()
    },
  }
  return { actions, refresh: (slot) => refreshers[slot]() }
}
