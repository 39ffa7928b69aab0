/**
 * The app's one store (zustand vanilla, no React): the open image, bitmap stats, selection,
 * the shared heatmap view, heatmap cells and extent pages fetched from the worker, jobs with
 * progress, the last error and the pending changes. Actions live here and are the only code
 * that calls the engine client; components read slices through the hooks in hooks.ts.
 */
import { createStore, type StoreApi } from 'zustand/vanilla'
import type {
  BitmapSummary, EngineClient, ErrorInfo, Extent, ExportFormat, ImageSummary, OpenResult, OpenSource, PlanReview,
} from '../../session/api.js'
import {
  type View, clampView, fullView, heatRequest, panView, viewAround, viewSpan, zoomView,
} from '../heatmap/geometry.js'
import type { RecentEntry, RecentFiles } from '../recent.js'
import { sourceName } from '../../session/sources.js'
import { type AnalysisActions, type AnalysisState, createAnalysis, initialAnalysis } from './analysis.js'
import { type Change, type PendingEdit, toPlanRequest } from './edits.js'
import { type MapActions, type MapState, createMapSlice, initialMap, keepMapSettings } from './map.js'
import { type HostActions, type HostState, createHost, initialHost } from './host.js'

/** Extents per page fetched from the worker. */
export const EXTENT_PAGE = 256
/** Extent pages kept in memory before the oldest are dropped. */
const MAX_PAGES = 400

/** How an image came in ('launch': the operating system opened it with the installed app). */
export type HowOpened = 'drop' | 'picker' | 'input' | 'demo' | 'recent' | 'host' | 'launch'

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

export type ScanState =
  | { status: 'idle' }
  | { status: 'scanning' }
  | { status: 'done'; dirtyBytes: number; extentCount: number }
  | { status: 'cancelled' }
  | { status: 'error'; error: ErrorInfo }

export interface BitmapStats {
  scan: ScanState
  sha256?: string
  sha: 'idle' | 'running' | 'done' | 'error'
}

export type JobKind = 'open' | 'scan' | 'sha256' | 'export' | 'plan' | 'commit' | 'analysis' | 'host'

export interface Job {
  id: number
  kind: JobKind
  label: string
  doneBytes: number
  totalBytes: number
  startedAt: number
  /** what is happening now, when the label alone does not say (commit: 'copying', then each write) */
  step?: string
  /** a commit copies the whole file first: its size, for the ETA */
  fileSize?: number
  /** what doneBytes/totalBytes count when not bytes */
  unit?: 'images'
}

/** The review of the pending changes before they are saved. */
export type Review =
  | { status: 'planning' }
  | { status: 'ready'; plan: PlanReview; force: boolean }
  /** the planner refused; `needsForce` when confirming that no VM uses the image would help */
  | { status: 'refused'; error: ErrorInfo; needsForce: boolean; force: boolean }
  | { status: 'saving'; plan: PlanReview }

export type HeatSlot = 'primary' | 'compare'

export interface HeatData {
  bitmapIndex: number
  /** the store view these cells were fetched for */
  forView: View
  /** the byte range the cells cover (heatRequest: may be wider than forView) */
  view: View
  cells: number
  counts: Float64Array
}

export interface ExtentList {
  bitmapIndex: number
  mode: 'view' | 'all'
  /** number of the first listed extent */
  first: number
  count: number
  /** the view the window was computed for (mode 'view') */
  view: View
}

export type SortKey = 'index' | 'name' | 'granularity' | 'enabled' | 'status' | 'dirty' | 'tableSize'

export interface AppError {
  /** what we were doing, e.g. "Opening disk.qcow2" */
  context: string
  info: ErrorInfo
}

export interface AppState extends AnalysisState, HostState, MapState {
  image: OpenImage | null
  opening: string | null
  stats: Record<number, BitmapStats>
  selected: number | null
  compare: number | null
  sort: { key: SortKey; dir: 1 | -1 }
  /** shared heatmap view (bytes); null before an image is open */
  view: View | null
  /** width of the heatmap in device pixels: the most cells worth asking for */
  heatWidth: number
  heat: Record<HeatSlot, HeatData | null>
  extentMode: 'view' | 'all'
  extents: ExtentList | null
  /** pages of extents: key `${bitmapIndex}:${page}` */
  extentPages: Record<string, Extent[]>
  /** an extent the user picked in the list: highlighted in the heatmap */
  focus: Extent | null
  jobs: Job[]
  /** the background scan queue was stopped by Cancel */
  scansPaused: boolean
  error: AppError | null
  notice: string | null
  pending: PendingEdit[]
  /** the engine can plan and commit edits (src/engine/edits) */
  editsAvailable: boolean
  review: Review | null
  recent: RecentEntry[]
  /** a heatmap draw after open still has to record the drop-to-first-heatmap time */
  firstHeatPending: boolean
  /** drop-to-first-heatmap of the last open, in ms */
  firstHeatMs: number | null
}

export interface AppActions extends AnalysisActions, HostActions, MapActions {
  open(source: OpenSource, how: HowOpened): Promise<void>
  /** Open several images at once (a backing chain, or images to compare). */
  openMany(sources: OpenSource[], how: HowOpened): Promise<void>
  openDemo(url: string): Promise<void>
  openRecent(entry: RecentEntry, requestRead: (h: FileSystemFileHandle) => Promise<boolean>): Promise<void>
  loadRecent(): Promise<void>
  forgetRecent(id: string): Promise<void>
  closeImage(): Promise<void>
  select(index: number): void
  setCompare(index: number | null): void
  setSort(key: SortKey): void
  setHeatWidth(px: number): void
  setView(v: View): void
  zoom(factor: number, anchor?: number): void
  pan(deltaBytes: number): void
  resetView(): void
  zoomToExtent(x: Extent): void
  setExtentMode(mode: 'view' | 'all'): void
  ensureExtents(firstIndex: number, lastIndex: number): void
  scanBitmap(index: number): Promise<void>
  resumeScans(): void
  computeSha(index: number): Promise<void>
  exportExtents(format: ExportFormat, range: 'all' | 'view'): Promise<Blob | null>
  cancelJob(id: number): void
  dismissError(): void
  dismissNotice(): void
  showError(context: string, e: unknown): void
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
  markFirstHeatmap(): void
}

export type AppStore = StoreApi<AppState & AppActions>

export interface StoreDeps {
  client: EngineClient
  recent?: RecentFiles
  /** performance.mark / measure by default */
  mark?: (name: string) => void
  measure?: (name: string, start: string, end: string) => number | null
  now?: () => number
  /** true once src/engine/edits exists and the worker exposes it */
  editsAvailable?: boolean
}

/** Plain ErrorInfo from anything a client call threw. */
export function errorInfo(e: unknown): ErrorInfo {
  if (e && typeof e === 'object' && 'info' in e && (e as { info: unknown }).info && typeof (e as { info: unknown }).info === 'object') {
    return (e as { info: ErrorInfo }).info
  }
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) return e as ErrorInfo
  if (e instanceof Error) return { code: e.name, message: e.message }
  return { code: 'Error', message: String(e) }
}

export function isAbort(e: unknown): boolean {
  return errorInfo(e).code === 'AbortError'
}

const MARK_OPEN = 'qbm:open'
const MARK_HEAT = 'qbm:first-heatmap'
const MEASURE = 'qbm:drop-to-first-heatmap'
/** around each bitmap scan: tests check the page stays responsive in between */
const MARK_SCAN_START = 'qbm:scan-start'
const MARK_SCAN_END = 'qbm:scan-end'

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

const initial = (editsAvailable: boolean): AppState => ({
  ...initialAnalysis(),
  ...initialMap(),
  ...initialHost(),
  image: null,
  opening: null,
  stats: {},
  selected: null,
  compare: null,
  sort: { key: 'index', dir: 1 },
  view: null,
  heatWidth: 1000,
  heat: { primary: null, compare: null },
  extentMode: 'view',
  extents: null,
  extentPages: {},
  focus: null,
  jobs: [],
  scansPaused: false,
  error: null,
  notice: null,
  pending: [],
  editsAvailable,
  review: null,
  recent: [],
  firstHeatPending: false,
  firstHeatMs: null,
})

export function createAppStore(deps: StoreDeps): AppStore {
  const { client } = deps
  const mark = deps.mark ?? defaultMark
  const measure = deps.measure ?? defaultMeasure
  const now = deps.now ?? (() => Date.now())
  const controllers = new Map<number, AbortController>()
  let jobSeq = 0
  let editSeq = 0
  /** bumped on every open/close: results for an older image are dropped */
  let generation = 0
  const heatBusy: Record<HeatSlot, boolean> = { primary: false, compare: false }
  const heatAgain: Record<HeatSlot, boolean> = { primary: false, compare: false }
  let extentsBusy = false
  let extentsAgain = false
  const pagesLoading = new Set<string>()
  let scanLoop: Promise<void> | null = null
  let scanLoopGen = -1
  /** what the open image came from (the handle is needed to ask for write permission) */
  let currentSource: OpenSource | null = null
  /** the sources of an open set, by image id */
  const currentSources = new Map<number, OpenSource>()

  let map: ReturnType<typeof createMapSlice> | undefined
  const store = createStore<AppState & AppActions>()((set, get) => {
    // ---- helpers -------------------------------------------------------------------------
    function bitmap(index: number | null): BitmapSummary | undefined {
      if (index === null) return undefined
      return get().image?.summary.bitmaps.find((b) => b.index === index)
    }

    function setStats(index: number, patch: Partial<BitmapStats>): void {
      const cur = get().stats[index] ?? { scan: { status: 'idle' }, sha: 'idle' }
      set({ stats: { ...get().stats, [index]: { ...cur, ...patch } } })
    }

    function startJob(kind: JobKind, label: string): { job: Job; signal: AbortSignal } {
      const id = ++jobSeq
      const c = new AbortController()
      controllers.set(id, c)
      const job: Job = { id, kind, label, doneBytes: 0, totalBytes: 0, startedAt: now() }
      set({ jobs: [...get().jobs, job] })
      return { job, signal: c.signal }
    }

    function progress(id: number, doneBytes: number, totalBytes: number): void {
      set({ jobs: get().jobs.map((j) => (j.id === id ? { ...j, doneBytes, totalBytes } : j)) })
    }

    function endJob(id: number): void {
      controllers.delete(id)
      set({ jobs: get().jobs.filter((j) => j.id !== id) })
    }

    /** The smallest granularity on screen: the deepest zoom the view allows. */
    function viewGranularity(): number {
      const a = bitmap(get().selected)?.granularity
      const b = bitmap(get().compare)?.granularity
      return Math.min(a ?? b ?? 65536, b ?? a ?? 65536)
    }

    function applyView(v: View): void {
      const img = get().image
      if (!img) return
      const nv = clampView(v, img.summary.diskLength, viewGranularity())
      const cur = get().view
      if (cur && cur.start === nv.start && cur.end === nv.end) return
      set({ view: nv })
      refreshHeat('primary')
      refreshHeat('compare')
      if (get().extentMode === 'view') void refreshExtents()
      analysis.refreshOverlay()
      analysis.refreshAlgebra()
    }

    function slotBitmap(slot: HeatSlot): number | null {
      return slot === 'primary' ? get().selected : get().compare
    }

    function scanned(index: number | null): boolean {
      return index !== null && get().stats[index]?.scan.status === 'done'
    }

    /** Fetch heatmap cells for a slot; at most one request per slot in flight, latest wins. */
    function refreshHeat(slot: HeatSlot): void {
      if (heatBusy[slot]) { heatAgain[slot] = true; return }
      const s = get()
      const index = slotBitmap(slot)
      const b = bitmap(index)
      if (!s.view || index === null || !b) {
        if (s.heat[slot]) set({ heat: { ...s.heat, [slot]: null } })
        return
      }
      if (!scanned(index)) return // the scan's end calls us again
      const forView = s.view
      const req = heatRequest(forView, s.heatWidth, b.granularity)
      const have = s.heat[slot]
      if (have && have.bitmapIndex === index && have.cells === req.cells && have.view.start === req.start && have.view.end === req.end) {
        if (have.forView !== forView) set({ heat: { ...s.heat, [slot]: { ...have, forView } } })
        return
      }
      heatBusy[slot] = true
      heatAgain[slot] = false
      const gen = generation
      let ok = false
      client.heatmap(index, req.start, req.end, req.cells).then(
        (counts) => {
          if (gen !== generation) return
          ok = true
          const view = { start: req.start, end: req.end }
          set({ heat: { ...get().heat, [slot]: { bitmapIndex: index, forView, view, cells: req.cells, counts } } })
          // After the first picture: the incremental-backup estimate of the shown bitmap.
          if (slot === 'primary') analysis.maybeEstimate(index)
        },
        (e: unknown) => {
          if (gen !== generation || isAbort(e)) return
          fail(`Computing the heatmap of '${b.name}'`, e)
        },
      ).finally(() => {
        heatBusy[slot] = false
        if (gen !== generation) return
        const cur = get()
        const h = cur.heat[slot]
        // What is wanted may have moved while we were busy (a failed request is not retried).
        const stale = !h || h.bitmapIndex !== slotBitmap(slot) || !cur.view || h.forView.start !== cur.view.start || h.forView.end !== cur.view.end
        if (heatAgain[slot] || (ok && stale)) refreshHeat(slot)
      })
    }

    /** Recompute which extents the list shows (all, or those meeting the view). */
    async function refreshExtents(): Promise<void> {
      if (extentsBusy) { extentsAgain = true; return }
      const s = get()
      const index = s.selected
      const b = bitmap(index)
      const st = index !== null ? s.stats[index]?.scan : undefined
      if (index === null || !b || !s.view || !st || st.status !== 'done') {
        if (s.extents) set({ extents: null })
        return
      }
      extentsBusy = true
      extentsAgain = false
      const gen = generation
      const view = s.view
      const mode = s.extentMode
      let ok = false
      try {
        const whole = view.start === 0 && view.end >= s.image!.summary.diskLength
        const w = mode === 'all' || whole ? { first: 0, count: st.extentCount } : await client.extentWindow(index, view.start, view.end)
        if (gen === generation) {
          ok = true
          set({ extents: { bitmapIndex: index, mode, first: w.first, count: w.count, view } })
        }
      } catch (e) {
        if (gen === generation && !isAbort(e)) fail(`Listing the extents of '${b.name}'`, e)
      } finally {
        extentsBusy = false
        const cur = get()
        const ex = cur.extents
        const stale = !ex || cur.selected !== index || cur.extentMode !== mode || (mode === 'view' && (!cur.view || cur.view.start !== view.start || cur.view.end !== view.end))
        if (gen === generation && (extentsAgain || (ok && stale))) void refreshExtents()
      }
    }

    function fail(context: string, e: unknown): void {
      set({ error: { context, info: errorInfo(e) } })
    }

    /** Order in which bitmaps are scanned: the selected one, the compared one, then the rest. */
    function nextToScan(): number | null {
      const s = get()
      if (!s.image || s.scansPaused) return null
      const order = [s.selected, s.compare, ...s.image.summary.bitmaps.map((b) => b.index)]
      for (const i of order) {
        if (i === null) continue
        const st = s.stats[i]?.scan.status ?? 'idle'
        if (st === 'idle') return i
      }
      return null
    }

    /** Scan bitmaps one after another in the background until none is left (or Cancel). */
    function runScanQueue(): Promise<void> {
      // A loop for an older image stops at its next step; start ours after it.
      if (scanLoop) return scanLoopGen === generation ? scanLoop : scanLoop.then(() => runScanQueue())
      const gen = generation
      scanLoopGen = gen
      scanLoop = (async () => {
        try {
          for (let i = nextToScan(); i !== null && gen === generation; i = nextToScan()) await doScan(i)
        } finally {
          scanLoop = null
        }
      })()
      return scanLoop
    }

    async function doScan(index: number): Promise<void> {
      const b = bitmap(index)
      if (!b) return
      const gen = generation
      const { job, signal } = startJob('scan', `Reading bitmap '${b.name}'`)
      setStats(index, { scan: { status: 'scanning' } })
      mark(MARK_SCAN_START)
      try {
        const r = await client.scan(index, (d, t) => { if (gen === generation) progress(job.id, d, t) }, signal)
        mark(MARK_SCAN_END)
        if (gen !== generation) return
        setStats(index, { scan: { status: 'done', dirtyBytes: r.dirtyBytes, extentCount: r.extentCount } })
        if (get().selected === index || get().compare === index) {
          refreshHeat(get().selected === index ? 'primary' : 'compare')
          if (get().compare === index && get().selected === index) refreshHeat('compare')
          if (get().selected === index) { void refreshExtents(); analysis.refreshOverlay() }
        }
      } catch (e) {
        if (gen !== generation) return
        if (isAbort(e)) {
          setStats(index, { scan: { status: 'cancelled' } })
          set({ scansPaused: true })
        } else {
          setStats(index, { scan: { status: 'error', error: errorInfo(e) } })
        }
      } finally {
        endJob(job.id)
      }
    }

    /** Show an opened (or re-opened) image; keeps the selection by name when it still exists. */
    function showImage(r: OpenResult, how: HowOpened, keep: { selected: string | null; compare: string | null; view: View | null } | null): BitmapSummary | undefined {
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

    function resetForImage(): Partial<AppState> {
      const keep = get()
      return {
        ...initial(keep.editsAvailable), recent: keep.recent, heatWidth: keep.heatWidth, sort: keep.sort, extentMode: keep.extentMode, heatMode: keep.heatMode,
        ...keepMapSettings(keep),
        host: keep.host, overview: keep.overview, overviewLoading: keep.overviewLoading, attentionOnly: keep.attentionOnly, checking: keep.checking,
      }
    }

    /** Show another image of the open set (refused while edits for the shown one are pending). */
    async function activate(id: number): Promise<void> {
      const img = get().image
      if (!img) return
      if (get().pending.length > 0) {
        fail('Switching images', { code: 'ConstraintError', message: 'The pending changes belong to the image shown: save or unstage them before showing another image.' })
        return
      }
      const gen = ++generation
      for (const c of controllers.values()) c.abort()
      pagesLoading.clear()
      try {
        const r = await client.activate(id)
        if (gen !== generation) return
        const src = currentSources.get(id)
        if (src) currentSource = src
        set({ activeImageId: id, review: null })
        showImage(r, img.how, { selected: null, compare: null, view: get().view })
        void runScanQueue()
        analysis.refreshAlgebra()
        analysis.recheckCheckpoints()
      } catch (e) {
        if (gen === generation) fail('Switching images', e)
      }
    }

    const analysis = createAnalysis({
      get: () => get(),
      set: (p) => set(p),
      client,
      generation: () => generation,
      fail: (c, e) => fail(c, e),
      isAbort,
      errorInfo,
      addPending: (e) => get().addPending(e),
      activate,
      startJob: (label) => { const { job, signal } = startJob('analysis', label); return { id: job.id, signal } },
      endJob: (id) => endJob(id),
    })

    map = createMapSlice({ get: () => get(), set: (p) => set(p), client })
    const host = createHost({
      get: () => get(),
      set: (p) => set(p),
      client,
      startJob: (label) => {
        const { job, signal } = startJob('host', label)
        set({ jobs: get().jobs.map((j) => (j.id === job.id ? { ...j, unit: 'images' as const } : j)) })
        return { id: job.id, signal, progress: (d, t) => progress(job.id, d, t) }
      },
      endJob: (id) => endJob(id),
      fail: (c, e) => fail(c, e),
      isAbort,
      openHost: (id, name) => get().open({ kind: 'host', id, name }, 'host'),
      closeImage: () => get().closeImage(),
      shownHostId: () => (currentSource?.kind === 'host' ? currentSource.id : undefined),
    })

    // ---- actions -------------------------------------------------------------------------
    return {
      ...initial(deps.editsAvailable ?? false),
      ...analysis.actions,
      ...map.actions,
      ...host,

      async open(source, how) {
        const gen = ++generation
        mark(MARK_OPEN)
        for (const c of controllers.values()) c.abort()
        const name = sourceName(source)
        pagesLoading.clear()
        set({ ...resetForImage(), opening: name })
        const { job, signal } = startJob('open', `Opening ${name}`)
        try {
          const r = await client.open(source, signal)
          if (gen !== generation) return
          currentSource = source
          currentSources.clear()
          const first = showImage(r, how, null)
          set({ opening: null, firstHeatPending: first !== undefined })
          if (source.kind === 'handle' && deps.recent) {
            deps.recent.add(source.handle).then((recent) => set({ recent }), () => undefined)
          }
          void runScanQueue()
        } catch (e) {
          if (gen !== generation) return
          set({ opening: null })
          if (!isAbort(e)) fail(`Opening ${name}`, e)
        } finally {
          endJob(job.id)
        }
      },

      async openMany(sources, how) {
        if (sources.length === 1) return get().open(sources[0]!, how)
        const gen = ++generation
        mark(MARK_OPEN)
        for (const c of controllers.values()) c.abort()
        const label = `${sources.length} images`
        pagesLoading.clear()
        set({ ...resetForImage(), opening: label })
        const { job, signal } = startJob('open', `Opening ${label}`)
        try {
          const r = await client.openSet(sources, signal)
          if (gen !== generation) return
          currentSources.clear()
          sources.forEach((src, i) => currentSources.set(r.images[i]?.id ?? i + 1, src))
          currentSource = currentSources.get(r.activeId) ?? null
          const active = r.images.find((x) => x.id === r.activeId)!
          set({ images: r.images, activeImageId: r.activeId })
          const first = showImage(active.result, how, null)
          set({ opening: null, firstHeatPending: first !== undefined })
          void runScanQueue()
        } catch (e) {
          if (gen !== generation) return
          set({ opening: null })
          if (!isAbort(e)) fail(`Opening ${label}`, e)
        } finally {
          endJob(job.id)
        }
      },

      async openDemo(url) {
        await get().open({ kind: 'url', url, name: 'demo.qcow2' }, 'demo')
      },

      async openRecent(entry, requestRead) {
        let ok = false
        try {
          ok = await requestRead(entry.handle)
        } catch {
          ok = false
        }
        if (!ok) {
          set({ error: { context: `Opening ${entry.name}`, info: { code: 'NotAllowedError', message: `Permission to read '${entry.name}' was not granted. Open it again with "Open image…" or by dropping it.` } } })
          return
        }
        await get().open({ kind: 'handle', handle: entry.handle }, 'recent')
      },

      async loadRecent() {
        if (!deps.recent) return
        set({ recent: await deps.recent.list() })
      },

      async forgetRecent(id) {
        if (!deps.recent) return
        set({ recent: await deps.recent.remove(id) })
      },

      async closeImage() {
        generation++
        currentSource = null
        currentSources.clear()
        for (const c of controllers.values()) c.abort()
        set({ ...resetForImage() })
        await client.close().catch(() => undefined)
      },

      select(index) {
        if (!bitmap(index) || get().selected === index) return
        set({ selected: index, focus: null, extents: null })
        // A finer granularity may allow a deeper zoom; re-clamp the view.
        const v = get().view
        if (v) applyView(v)
        refreshHeat('primary')
        analysis.refreshOverlay()
        void refreshExtents()
        if (get().stats[index]?.scan.status === 'idle') void runScanQueue()
      },

      setCompare(index) {
        if (index !== null && !bitmap(index)) return
        set({ compare: index })
        refreshHeat('compare')
        if (index !== null && get().stats[index]?.scan.status === 'idle') void runScanQueue()
      },

      setSort(key) {
        const s = get().sort
        set({ sort: s.key === key ? { key, dir: s.dir === 1 ? -1 : 1 } : { key, dir: 1 } })
      },

      setHeatWidth(px) {
        const w = Math.max(16, Math.min(8192, Math.floor(px)))
        if (w === get().heatWidth) return
        set({ heatWidth: w })
        refreshHeat('primary')
        refreshHeat('compare')
        analysis.refreshOverlay()
        analysis.refreshAlgebra()
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

      setExtentMode(mode) {
        if (mode === get().extentMode) return
        set({ extentMode: mode })
        void refreshExtents()
      },

      ensureExtents(firstIndex, lastIndex) {
        const ex = get().extents
        if (!ex) return
        const index = ex.bitmapIndex
        const gen = generation
        const p0 = Math.floor(Math.max(0, firstIndex) / EXTENT_PAGE)
        const p1 = Math.floor(Math.max(0, lastIndex) / EXTENT_PAGE)
        for (let p = p0; p <= p1; p++) {
          const key = `${index}:${p}`
          if (get().extentPages[key] || pagesLoading.has(key)) continue
          pagesLoading.add(key)
          analysis.loadSplits(index, p, p * EXTENT_PAGE, EXTENT_PAGE)
          client.extentPage(index, p * EXTENT_PAGE, EXTENT_PAGE).then(
            (rows) => {
              if (gen !== generation) return
              const pages = { ...get().extentPages, [key]: rows }
              const keys = Object.keys(pages)
              if (keys.length > MAX_PAGES) for (const k of keys.slice(0, keys.length - MAX_PAGES)) delete pages[k]
              set({ extentPages: pages })
            },
            (e: unknown) => { if (gen === generation && !isAbort(e)) fail('Reading extents', e) },
          ).finally(() => pagesLoading.delete(key))
        }
      },

      async scanBitmap(index) {
        const st = get().stats[index]?.scan.status
        if (st === 'scanning' || st === 'done') return
        setStats(index, { scan: { status: 'idle' } })
        set({ scansPaused: false })
        await runScanQueue()
      },

      resumeScans() {
        const stats = { ...get().stats }
        for (const [k, v] of Object.entries(stats)) if (v.scan.status === 'cancelled') stats[Number(k)] = { ...v, scan: { status: 'idle' } }
        set({ stats, scansPaused: false })
        void runScanQueue()
      },

      async computeSha(index) {
        const b = bitmap(index)
        if (!b || get().stats[index]?.sha === 'running') return
        const gen = generation
        const { job, signal } = startJob('sha256', `SHA-256 of '${b.name}'`)
        setStats(index, { sha: 'running' })
        try {
          const sha256 = await client.sha256(index, (d, t) => { if (gen === generation) progress(job.id, d, t) }, signal)
          if (gen === generation) setStats(index, { sha: 'done', sha256 })
        } catch (e) {
          if (gen !== generation) return
          setStats(index, { sha: isAbort(e) ? 'idle' : 'error' })
          if (!isAbort(e)) fail(`Computing the SHA-256 of '${b.name}'`, e)
        } finally {
          endJob(job.id)
        }
      },

      async exportExtents(format, range) {
        const s = get()
        const b = bitmap(s.selected)
        if (!b || !s.view) return null
        const { job, signal } = startJob('export', `Exporting the extents of '${b.name}'`)
        try {
          return range === 'view'
            ? await client.exportExtents(b.index, format, s.view.start, s.view.end, signal)
            : await client.exportExtents(b.index, format, undefined, undefined, signal)
        } catch (e) {
          if (!isAbort(e)) fail(`Exporting the extents of '${b.name}'`, e)
          return null
        } finally {
          endJob(job.id)
        }
      },

      cancelJob(id) {
        controllers.get(id)?.abort()
      },

      dismissError() {
        set({ error: null })
      },

      dismissNotice() {
        set({ notice: null })
      },

      showError(context, e) {
        fail(context, e)
      },

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
        const gen = generation
        // Planning first runs the image check (the whole L1/L2 walk qemu-img check does): on a
        // big image that takes a while, so it is a job with Cancel like a scan.
        const { job, signal } = startJob('plan', 'Checking the image and planning the changes')
        try {
          const plan = await client.planEdits(toPlanRequest(s.pending, force), signal)
          if (gen === generation) set({ review: { status: 'ready', plan, force } })
        } catch (e) {
          if (gen !== generation) return
          const info = errorInfo(e)
          // The planner refuses while bitmaps are in use unless told no VM has the image open.
          const needsForce = !force && info.code === 'bitmaps-in-use'
          set({ review: { status: 'refused', error: info, needsForce, force } })
        } finally {
          endJob(job.id)
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
        const src = currentSource
        if (!src || (src.kind !== 'handle' && src.kind !== 'host')) {
          fail(`Writing ${img.name}`, { code: 'ConstraintError', message: 'This image was opened as a plain file, which the browser gives read-only. Use "Download edited copy", or open the file with "Open image…" or by dropping it.' })
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
            fail(`Writing ${img.name}`, { code: 'NotAllowedError', message: `Permission to write to '${img.name}' was not granted.` })
            return false
          }
        }
        const gen = generation
        const keep = { selected: bitmap(s.selected)?.name ?? null, compare: bitmap(s.compare)?.name ?? null, view: s.view }
        set({ review: { status: 'saving', plan: r.plan } })
        const { job } = startJob('commit', `Writing ${r.plan.summary.length} change${r.plan.summary.length === 1 ? '' : 's'} to ${img.name}`)
        if (r.plan.writeMode === 'copy') set({ jobs: get().jobs.map((j) => (j.id === job.id ? { ...j, step: 'copying', fileSize: r.plan.fileSize } : j)) })
        try {
          const res = await client.commitPlan(r.plan.planId, (d, t, step) => {
            if (gen === generation) set({ jobs: get().jobs.map((j) => (j.id === job.id ? { ...j, doneBytes: d, totalBytes: t, step } : j)) })
          })
          if (gen !== generation) return false
          generation++ // results computed for the old file are void
          get().closeAlgebra()
          const active = get().activeImageId
          if (active !== null) set({ images: get().images.map((x) => (x.id === active ? { ...x, result: res } : x)) })
          showImage(res, img.how, keep)
          analysis.recheckCheckpoints()
          set({ pending: [], review: null, notice: `Wrote ${r.plan.summary.length} change${r.plan.summary.length === 1 ? '' : 's'} to ${res.name}. It now holds ${res.summary.bitmaps.length} bitmap${res.summary.bitmaps.length === 1 ? '' : 's'}.` })
          void runScanQueue()
          return true
        } catch (e) {
          if (gen === generation) {
            set({ review: { status: 'ready', plan: r.plan, force: false } })
            fail(`Writing ${img.name}`, e)
          }
          return false
        } finally {
          endJob(job.id)
        }
      },

      async editedCopy() {
        const s = get()
        const r = s.review
        if (!s.image || r?.status !== 'ready') return null
        try {
          return await client.editedCopy(r.plan.planId)
        } catch (e) {
          fail(`Building the edited copy of ${s.image.name}`, e)
          return null
        }
      },

      markFirstHeatmap() {
        if (!get().firstHeatPending) return
        mark(MARK_HEAT)
        const ms = measure(MEASURE, MARK_OPEN, MARK_HEAT)
        set({ firstHeatPending: false, firstHeatMs: ms })
      },
    }
  })
  // The map follows the rest of the state by itself (store/map.ts).
  store.subscribe((s, prev) => map?.onChange(s, prev))
  return store
}
