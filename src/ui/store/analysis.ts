/**
 * The backup-analysis part of the store: the dirty × allocation overlay, per-extent allocation
 * splits, incremental-backup estimates, bitmap algebra (results stay in the worker and come in
 * pages), libvirt checkpoint cross-checks and several open images (a backing chain). Wired
 * into createAppStore; the view, the selection and the generation counter are other slices'.
 */
import type {
  AlgebraResult, BitmapRef, BitmapSummary, CheckpointFile, CheckpointView, EngineClient, ErrorInfo, Estimate, Extent,
  ImageEntry, OverlayResult, SetOp, SplitRow,
} from '../../session/api.js'
import { type View, heatRequest } from '../heatmap/geometry.js'
import type { Change } from './edits.js'
import { latestRefresh } from './latest.js'

export type HeatMode = 'dirty' | 'allocation'

export interface OverlayData extends OverlayResult {
  bitmapIndex: number
  forView: View
  view: View
  cells: number
}

export type EstimateState =
  | { status: 'running' }
  /** `fullBytes`: for an in-use bitmap, the disk's allocated data (what the next, full, backup copies) */
  | { status: 'done'; estimate: Estimate; fullBytes?: number }
  | { status: 'error'; error: ErrorInfo }

/** Cells of an algebra result over the view (same shape as HeatData without a bitmap). */
export interface AlgebraHeat {
  resultId: number
  forView: View
  view: View
  cells: number
  counts: Float64Array
}

export interface AlgebraState {
  a: BitmapRef
  b: BitmapRef
  op: SetOp
  /** display names, e.g. "daily" or "base.qcow2: daily" */
  aName: string
  bName: string
  /** the finer granularity of A and B: the deepest zoom that still means something */
  granularity: number
  status: 'computing' | 'done' | 'error'
  result: AlgebraResult | null
  error: ErrorInfo | null
  heat: AlgebraHeat | null
  mode: 'view' | 'all'
  window: { first: number; count: number } | null
  /** pages of the result's extents, keyed by page number */
  pages: Record<number, Extent[]>
}

export interface CheckpointsState {
  files: CheckpointFile[]
  status: 'checking' | 'done' | 'error'
  view: CheckpointView | null
  error: ErrorInfo | null
}

export const OP_LABEL: Record<SetOp, { sign: string; name: string; words: string }> = {
  union: { sign: '∪', name: 'union', words: 'dirty in A or B (or both)' },
  intersect: { sign: '∩', name: 'intersection', words: 'dirty in both A and B' },
  minus: { sign: '∖', name: 'difference', words: 'dirty in A but not in B' },
  xor: { sign: '⊕', name: 'symmetric difference', words: 'dirty in exactly one of A and B' },
}

/** Bitmaps with more extents than this are estimated on request only (see maybeEstimate). */
export const AUTO_ESTIMATE_MAX_EXTENTS = 4_000_000

/** Extents per algebra page fetched from the worker. */
export const ALGEBRA_PAGE = 256
const MAX_ALGEBRA_PAGES = 200

export interface AnalysisState {
  heatMode: HeatMode
  overlay: OverlayData | null
  estimates: Record<number, EstimateState>
  /** allocation split of each extent page: key `${bitmapIndex}:${page}` like extentPages */
  extentSplits: Record<string, SplitRow[]>
  /** the images of an open set (empty when one image was opened) */
  images: ImageEntry[]
  activeImageId: number | null
  algebra: AlgebraState | null
  checkpoints: CheckpointsState | null
}

export interface AnalysisActions {
  setHeatMode(mode: HeatMode): void
  computeEstimate(index: number): Promise<void>
  activateImage(id: number): Promise<void>
  runAlgebra(a: BitmapRef, b: BitmapRef, op: SetOp): Promise<void>
  setAlgebraMode(mode: 'view' | 'all'): void
  ensureAlgebraExtents(firstIndex: number, lastIndex: number): void
  closeAlgebra(): void
  /**
   * Stage "save as new bitmap" for the result: a union as add + merge A + merge B; ∩, ∖ and ⊕ as
   * add + set the result's granules (qbm's set-ranges edit). False when there is no finished
   * result, no name, or (union) a source bitmap that is gone.
   */
  stageAlgebraSave(name: string): boolean
  loadCheckpoints(files: CheckpointFile[]): Promise<void>
  closeCheckpoints(): void
}

export const initialAnalysis = (): AnalysisState => ({
  heatMode: 'dirty',
  overlay: null,
  estimates: {},
  extentSplits: {},
  images: [],
  activeImageId: null,
  algebra: null,
  checkpoints: null,
})

type Full = AnalysisState & AnalysisActions & {
  view: View | null
  heatWidth: number
  selected: number | null
  stats: Record<number, { scan: { status: string } }>
  image: { summary: { bitmaps: BitmapSummary[]; diskLength: number } } | null
  extentPages: Record<string, Extent[]>
  pending: Array<{ id: number }>
}

export interface AnalysisCtx {
  get: () => Full
  set: (p: Partial<AnalysisState>) => void
  client: EngineClient
  generation: () => number
  fail: (context: string, e: unknown) => void
  isAbort: (e: unknown) => boolean
  errorInfo: (e: unknown) => ErrorInfo
  addPending: (e: Change) => void
  /** switch the shown image to another of the open set (the store re-shows it) */
  activate: (id: number) => Promise<void>
  startJob: (label: string) => { id: number; signal: AbortSignal }
  endJob: (id: number) => void
}

function sameView(a: View, b: View): boolean {
  return a.start === b.start && a.end === b.end
}

export function createAnalysis(ctx: AnalysisCtx): {
  actions: AnalysisActions
  refreshOverlay: () => void
  refreshAlgebra: () => void
  loadSplits: (bitmapIndex: number, page: number, first: number, count: number) => void
  maybeEstimate: (index: number) => void
  recheckCheckpoints: () => void
} {
  const { get, set, client } = ctx
  let algebraSeq = 0
  const splitsLoading = new Set<string>()
  const algebraLoading = new Set<number>()

  function bitmap(index: number | null): BitmapSummary | undefined {
    if (index === null) return undefined
    return get().image?.summary.bitmaps.find((b) => b.index === index)
  }

  /** Fetch the overlay the view wants now; true when it fetched (look again: the view may have moved). */
  async function fetchOverlay(): Promise<boolean> {
    const s = get()
    const index = s.selected
    const b = bitmap(index)
    if (s.heatMode !== 'allocation' || !s.view || index === null || !b || s.stats[index]?.scan.status !== 'done') return false
    const forView = s.view
    const req = heatRequest(forView, s.heatWidth, b.granularity)
    const have = s.overlay
    if (have && have.bitmapIndex === index && have.cells === req.cells && have.view.start === req.start && have.view.end === req.end) {
      if (have.forView !== forView) set({ overlay: { ...have, forView } })
      return false
    }
    const gen = ctx.generation()
    try {
      const o = await client.overlay(index, req.start, req.end, req.cells)
      if (gen !== ctx.generation()) return false
      set({ overlay: { ...o, bitmapIndex: index, forView, view: { start: req.start, end: req.end }, cells: req.cells } })
      return true
    } catch (e) {
      if (gen === ctx.generation() && !ctx.isAbort(e)) ctx.fail(`Computing the allocation overlay of '${b.name}'`, e)
      return false
    }
  }

  const refreshOverlay = latestRefresh(fetchOverlay)

  function loadSplits(bitmapIndex: number, page: number, first: number, count: number): void {
    const key = `${bitmapIndex}:${page}`
    if (get().extentSplits[key] || splitsLoading.has(key)) return
    splitsLoading.add(key)
    const gen = ctx.generation()
    client.extentSplits(bitmapIndex, first, count).then(
      (rows) => {
        if (gen !== ctx.generation()) return
        const splits = { ...get().extentSplits, [key]: rows }
        // keep only the pages the list still holds
        const pages = get().extentPages
        for (const k of Object.keys(splits)) if (!pages[k] && k !== key) delete splits[k]
        set({ extentSplits: splits })
      },
      () => undefined, // the list works without the annotation (e.g. an unreadable L2 table)
    ).finally(() => splitsLoading.delete(key))
  }

  async function computeEstimate(index: number): Promise<void> {
    const b = bitmap(index)
    if (!b || get().estimates[index]?.status === 'running') return
    const gen = ctx.generation()
    set({ estimates: { ...get().estimates, [index]: { status: 'running' } } })
    const job = ctx.startJob(`Estimating the incremental backup of '${b.name}'`)
    try {
      const estimate = await client.estimate(index, job.signal)
      // A backup tool cannot use an in-use bitmap: the next backup is full. Its size is the
      // disk's allocated data: the data bytes of one overlay cell over the whole disk.
      let full: { fullBytes: number } | Record<string, never> = {}
      const disk = get().image?.summary.diskLength ?? 0
      if (b.status === 'in-use' && disk > 0) {
        const o = await client.overlay(index, 0, disk, 1, job.signal)
        full = { fullBytes: (o.dirtyData[0] ?? 0) + (o.cleanData[0] ?? 0) }
      }
      if (gen === ctx.generation()) set({ estimates: { ...get().estimates, [index]: { status: 'done', estimate, ...full } } })
    } catch (e) {
      if (gen !== ctx.generation()) return
      if (ctx.isAbort(e)) {
        const est = { ...get().estimates }
        delete est[index]
        set({ estimates: est })
      } else set({ estimates: { ...get().estimates, [index]: { status: 'error', error: ctx.errorInfo(e) } } })
    } finally {
      ctx.endJob(job.id)
    }
  }

  function maybeEstimate(index: number): void {
    const b = bitmap(index)
    const scan = get().stats[index]?.scan
    if (!b || get().estimates[index] || scan?.status !== 'done') return
    // Splitting hundreds of millions of extents by allocation keeps the engine busy for minutes:
    // then the panel offers the estimate instead of starting it (heatmaps and the map stay quick).
    if ('extentCount' in scan && typeof scan.extentCount === 'number' && scan.extentCount > AUTO_ESTIMATE_MAX_EXTENTS) return
    void computeEstimate(index)
  }

  /** Fetch the algebra result's cells and list window for the view now; true when it fetched. */
  async function fetchAlgebra(): Promise<boolean> {
    const s = get()
    const al = s.algebra
    if (!al || al.status !== 'done' || !al.result || !s.view) return false
    const forView = s.view
    const req = heatRequest(forView, s.heatWidth, al.granularity)
    const id = al.result.id
    const haveHeat = al.heat && al.heat.resultId === id && al.heat.cells === req.cells && al.heat.view.start === req.start && al.heat.view.end === req.end
    if (haveHeat && al.heat && sameView(al.heat.forView, forView) && al.window) return false
    const gen = ctx.generation()
    const whole = forView.start === 0 && forView.end >= (s.image?.summary.diskLength ?? 0)
    try {
      const [counts, window] = await Promise.all([
        haveHeat ? Promise.resolve(null) : client.algebraHeat(id, req.start, req.end, req.cells),
        al.mode === 'all' || whole ? Promise.resolve({ first: 0, count: al.result.extentCount }) : client.algebraWindow(id, forView.start, forView.end),
      ])
      const cur = get().algebra
      if (gen !== ctx.generation() || !cur || cur.result?.id !== id) return false
      const heat = counts ? { resultId: id, forView, view: { start: req.start, end: req.end }, cells: req.cells, counts } : cur.heat ? { ...cur.heat, forView } : null
      set({ algebra: { ...cur, heat, window } })
      return true
    } catch (e) {
      if (gen === ctx.generation() && !ctx.isAbort(e)) ctx.fail('Showing the comparison', e)
      return false
    }
  }

  const refreshAlgebra = latestRefresh(fetchAlgebra)

  function recheckCheckpoints(): void {
    const c = get().checkpoints
    if (c && c.files.length > 0) void actions.loadCheckpoints(c.files)
  }

  const actions: AnalysisActions = {
    setHeatMode(mode) {
      if (mode === get().heatMode) return
      set({ heatMode: mode })
      if (mode === 'allocation') {
        refreshOverlay()
        const sel = get().selected
        if (sel !== null) maybeEstimate(sel)
      }
    },

    computeEstimate,

    async activateImage(id) {
      if (id === get().activeImageId) return
      await ctx.activate(id)
    },

    async runAlgebra(a, b, op) {
      const s = get()
      const name = (r: BitmapRef): string => {
        const img = s.images.find((x) => x.id === r.image)
        const bm = (img?.result.summary.bitmaps ?? s.image?.summary.bitmaps ?? []).find((x) => x.index === r.bitmap)
        const n = bm?.name ?? `#${r.bitmap}`
        return img && s.images.length > 1 && r.image !== s.activeImageId ? `${img.result.name}: ${n}` : n
      }
      const gran = (r: BitmapRef): number => {
        const img = s.images.find((x) => x.id === r.image)
        return (img?.result.summary.bitmaps ?? s.image?.summary.bitmaps ?? []).find((x) => x.index === r.bitmap)?.granularity ?? 65536
      }
      const old = s.algebra?.result
      if (old) void client.dropAlgebra(old.id).catch(() => undefined)
      const seq = ++algebraSeq
      const gen = ctx.generation()
      set({
        algebra: {
          a, b, op, aName: name(a), bName: name(b), granularity: Math.min(gran(a), gran(b)), status: 'computing',
          result: null, error: null, heat: null, mode: s.algebra?.mode ?? 'view', window: null, pages: {},
        },
      })
      const job = ctx.startJob(`Computing ${name(a)} ${OP_LABEL[op].sign} ${name(b)}`)
      try {
        const result = await client.algebra(a, b, op, job.signal)
        const cur = get().algebra
        if (gen !== ctx.generation() || seq !== algebraSeq || !cur) { void client.dropAlgebra(result.id).catch(() => undefined); return }
        set({ algebra: { ...cur, status: 'done', result } })
        refreshAlgebra()
      } catch (e) {
        const cur = get().algebra
        if (gen !== ctx.generation() || seq !== algebraSeq || !cur) return
        if (ctx.isAbort(e)) set({ algebra: null })
        else set({ algebra: { ...cur, status: 'error', error: ctx.errorInfo(e) } })
      } finally {
        ctx.endJob(job.id)
      }
    },

    setAlgebraMode(mode) {
      const al = get().algebra
      if (!al || al.mode === mode) return
      set({ algebra: { ...al, mode, window: null } })
      refreshAlgebra()
    },

    ensureAlgebraExtents(firstIndex, lastIndex) {
      const al = get().algebra
      if (!al?.result) return
      const id = al.result.id
      const p0 = Math.floor(Math.max(0, firstIndex) / ALGEBRA_PAGE)
      const p1 = Math.floor(Math.max(0, lastIndex) / ALGEBRA_PAGE)
      for (let p = p0; p <= p1; p++) {
        if (al.pages[p] || algebraLoading.has(p)) continue
        algebraLoading.add(p)
        client.algebraPage(id, p * ALGEBRA_PAGE, ALGEBRA_PAGE).then(
          (rows) => {
            const cur = get().algebra
            if (!cur || cur.result?.id !== id) return
            const pages = { ...cur.pages, [p]: rows }
            const keys = Object.keys(pages)
            if (keys.length > MAX_ALGEBRA_PAGES) for (const k of keys.slice(0, keys.length - MAX_ALGEBRA_PAGES)) delete pages[Number(k)]
            set({ algebra: { ...cur, pages } })
          },
          (e: unknown) => { if (!ctx.isAbort(e)) ctx.fail('Reading the comparison', e) },
        ).finally(() => algebraLoading.delete(p))
      }
    },

    closeAlgebra() {
      const al = get().algebra
      if (al?.result) void client.dropAlgebra(al.result.id).catch(() => undefined)
      algebraSeq++
      set({ algebra: null })
    },

    stageAlgebraSave(name) {
      const s = get()
      const al = s.algebra
      if (!al || al.status !== 'done' || !al.result || !name) return false
      if (al.op !== 'union') {
        // ∩, ∖, ⊕ clear bits where a merge would only set them: qbm's own edit sets the result's
        // granules in a new, empty bitmap at the finer granularity (exact at byte resolution).
        ctx.addPending({ op: 'add', name, granularity: al.granularity, disabled: true })
        ctx.addPending({ op: 'set-ranges', name, resultId: al.result.id, what: `${al.aName} ${OP_LABEL[al.op].sign} ${al.bName}` })
        return true
      }
      const nameOf = (r: BitmapRef): string | undefined => {
        const img = s.images.find((x) => x.id === r.image)
        return (img?.result.summary.bitmaps ?? s.image?.summary.bitmaps ?? []).find((x) => x.index === r.bitmap)?.name
      }
      const an = nameOf(al.a)
      const bn = nameOf(al.b)
      if (!an || !bn) return false
      const active = s.activeImageId
      const other = (r: BitmapRef): { sourceImageId: number } | Record<string, never> => (active !== null && r.image !== active ? { sourceImageId: r.image } : {})
      // The finer granularity keeps the union exact at byte resolution.
      ctx.addPending({ op: 'add', name, granularity: al.granularity, disabled: true })
      ctx.addPending({ op: 'merge', name, source: an, ...other(al.a) })
      ctx.addPending({ op: 'merge', name, source: bn, ...other(al.b) })
      return true
    },

    async loadCheckpoints(files) {
      const gen = ctx.generation()
      set({ checkpoints: { files, status: 'checking', view: get().checkpoints?.view ?? null, error: null } })
      try {
        const view = await client.checkpoints(files)
        if (gen !== ctx.generation() && get().checkpoints?.files !== files) return
        set({ checkpoints: { files, status: 'done', view, error: null } })
      } catch (e) {
        set({ checkpoints: { files, status: 'error', view: null, error: ctx.errorInfo(e) } })
      }
    },

    closeCheckpoints() {
      set({ checkpoints: null })
    },
  }

  return { actions, refreshOverlay, refreshAlgebra, loadSplits, maybeEstimate, recheckCheckpoints }
}
