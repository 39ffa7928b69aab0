/**
 * The app's one store (zustand vanilla, no React), made of slices of one subject each: open.ts
 * (the image), view.ts (selection and view), heat.ts, extents.ts, scans.ts (scans and SHA-256),
 * review.ts (pending changes, review, save), jobs.ts, errors.ts, recent-files.ts, and the
 * analysis, host and map slices. Actions live in the slices and are the only code that calls the
 * engine client; components read the state through the hooks in hooks.ts. This file wires them.
 */
import { createStore, type StoreApi } from 'zustand/vanilla'
import type { EngineClient } from '../../session/api.js'
import type { RecentFiles } from '../recent.js'
import { type AnalysisActions, type AnalysisState, createAnalysis, initialAnalysis } from './analysis.js'
import type { Refreshes, StoreContext } from './context.js'
import { type ErrorsActions, type ErrorsState, createErrors, errorInfo, initialErrors, isAbort } from './errors.js'
import { type ExtentsActions, type ExtentsState, createExtents, initialExtents } from './extents.js'
import { type HeatActions, type HeatState, createHeat, initialHeat } from './heat.js'
import { type HostActions, type HostState, createHost, initialHost } from './host.js'
import { type JobsActions, type JobsState, createJobs, initialJobs } from './jobs.js'
import { type MapActions, type MapState, createMapSlice, initialMap, keepMapSettings } from './map.js'
import { type OpenActions, type OpenState, createOpen, initialOpen } from './open.js'
import { type RecentActions, type RecentState, createRecent, initialRecent } from './recent-files.js'
import { type ReviewActions, type ReviewState, createReview, initialReview } from './review.js'
import { type ScansActions, type ScansState, createScans, initialScans } from './scans.js'
import { type ViewActions, type ViewState, createView, initialView } from './view.js'

// What components and tests import from the store, wherever the slice keeping it lives.
export { errorInfo, isAbort } from './errors.js'
export { EXTENT_PAGE } from './extents.js'
export type { HeatData, HeatSlot } from './heat.js'
export type { BitmapStats } from './scans.js'
export type { SortKey } from './view.js'

/** The whole state: every slice's fields. */
export interface AppState extends OpenState, ViewState, HeatState, ExtentsState, ScansState, JobsState, ErrorsState, ReviewState,
  RecentState, AnalysisState, HostState, MapState {}

/** Every slice's actions. */
export interface AppActions extends OpenActions, ViewActions, HeatActions, ExtentsActions, ScansActions, JobsActions, ErrorsActions,
  ReviewActions, RecentActions, AnalysisActions, HostActions, MapActions {}

/** The store (zustand vanilla). */
export type AppStore = StoreApi<AppState & AppActions>

/** What the store is made with: the engine client and the page's platform pieces (replaced in tests). */
export interface StoreDeps {
  client: EngineClient
  recent?: RecentFiles
  /** performance.mark / measure by default */
  mark?: (name: string) => void
  measure?: (name: string, start: string, end: string) => number | null
  now?: () => number
}

function defaultMark(name: string): void {
  globalThis.performance?.mark?.(name)
}

function defaultMeasure(name: string, start: string, end: string): number | null {
  try {
    return globalThis.performance?.measure?.(name, start, end)?.duration ?? null
  } catch {
    return null
  }
}

const initial = (): AppState => ({
  ...initialOpen(),
  ...initialView(),
  ...initialHeat(),
  ...initialExtents(),
  ...initialScans(),
  ...initialJobs(),
  ...initialErrors(),
  ...initialReview(),
  ...initialRecent(),
  ...initialAnalysis(),
  ...initialMap(),
  ...initialHost(),
})

/** What a new image keeps of the state: the page's settings, the recent list and the host's overview. */
function keepAcrossImages(s: AppState): Partial<AppState> {
  return {
    recent: s.recent, heatWidth: s.heatWidth, sort: s.sort, extentMode: s.extentMode, heatMode: s.heatMode,
    ...keepMapSettings(s),
    host: s.host, overview: s.overview, overviewLoading: s.overviewLoading, attentionOnly: s.attentionOnly, checking: s.checking,
  }
}

/** The app's store, its slices wired together. */
export function createAppStore(deps: StoreDeps): AppStore {
  const { client } = deps
  let map: ReturnType<typeof createMapSlice> | undefined
  const store = createStore<AppState & AppActions>()((set, get) => {
    /** bumped on every open/close: results for an older image are dropped */
    let generation = 0
    const jobs = createJobs(get, set, deps.now ?? (() => Date.now()))
    const errors = createErrors(set)
    const ctx: StoreContext = {
      get,
      set,
      client,
      generation: () => generation,
      nextGeneration: () => ++generation,
      jobs: jobs.control,
      fail: errors.fail,
      mark: deps.mark ?? defaultMark,
      bitmap: (index) => (index === null ? undefined : get().image?.summary.bitmaps.find((b) => b.index === index)),
      refresh: {} as Refreshes,
    }
    const view = createView(ctx)
    const heat = createHeat(ctx)
    const extents = createExtents(ctx)
    const scans = createScans(ctx)
    const recent = createRecent(ctx, deps.recent)
    const open = createOpen(ctx, {
      reset: () => ({ ...initial(), ...keepAcrossImages(get()) }),
      forgetLoading: extents.forgetLoading,
      remember: recent.remember,
      measure: deps.measure ?? defaultMeasure,
    })
    const review = createReview(ctx, { source: open.source, reshow: open.showImage })
    const analysis = createAnalysis({
      get,
      set,
      client,
      generation: ctx.generation,
      fail: ctx.fail,
      isAbort,
      errorInfo,
      addPending: (e) => get().addPending(e),
      activate: open.activate,
      startJob: (label) => { const { job, signal } = ctx.jobs.start('analysis', label); return { id: job.id, signal } },
      endJob: ctx.jobs.end,
    })
    Object.assign(ctx.refresh, {
      heat: heat.refresh,
      extents: extents.refresh,
      scans: scans.runQueue,
      overlay: analysis.refreshOverlay,
      algebra: analysis.refreshAlgebra,
      estimate: analysis.maybeEstimate,
      splits: analysis.loadSplits,
      checkpoints: analysis.recheckCheckpoints,
    } satisfies Refreshes)
    map = createMapSlice({ get, set, client })
    const host = createHost({
      get,
      set,
      client,
      startJob: (label) => {
        const { job, signal } = ctx.jobs.start('host', label)
        ctx.jobs.patch(job.id, { unit: 'images' })
        return { id: job.id, signal, progress: (d, t) => ctx.jobs.progress(job.id, d, t) }
      },
      endJob: ctx.jobs.end,
      fail: ctx.fail,
      isAbort,
      openHost: (id, name) => get().open({ kind: 'host', id, name }, 'host'),
      closeImage: () => get().closeImage(),
      shownHostId: () => { const s = open.source(); return s?.kind === 'host' ? s.id : undefined },
    })
    return {
      ...initial(),
      ...open.actions,
      ...view.actions,
      ...heat.actions,
      ...extents.actions,
      ...scans.actions,
      ...jobs.actions,
      ...errors.actions,
      ...review,
      ...recent.actions,
      ...analysis.actions,
      ...map.actions,
      ...host,
    }
  })
  // The map follows the rest of the state by itself (store/map.ts).
  store.subscribe((s, prev) => map?.onChange(s, prev))
  return store
}
