/**
 * The 2-D map's part of the store: its own view (cells of `cellBytes` from `start`, see
 * heatmap/map2d/layout.ts), the size of one pane, the order and arrangement chosen, and the
 * cells the engine counted for it. The map reacts to the rest of the store (the image, the
 * selected and compared bitmaps, their scans, the colour mode, a comparison result) through a
 * subscription, so the store's other actions need not know it exists. Cells come from the
 * engine's `heatmap`, `overlay` and `algebraHeat` over the scan's block index, one request per
 * pane in flight, the latest wanted next; while a bitmap is being scanned, `heatmapPreview`
 * counts what the scan has read so far.
 */
import type { EngineClient } from '../../session/api.js'
import {
  BLOCK_GRANULES, type MapCanvas, type MapGrid, type MapOrder, type MapView, clampMapView, fitWhole, layoutMap, panMap, zoomMap,
} from '../heatmap/map2d/layout.js'
import type { CellSource } from '../heatmap/map2d/resample.js'
import { latestWins } from './latest.js'

/** A pane of the map: the selected bitmap (A) or the compared one (B). */
export type MapSlot = 'primary' | 'compare'
/** Two bitmaps side by side, or A over B. */
export type MapArrange = 'side' | 'stack'
/** What the first pane shows: the selected bitmap, or the comparison (algebra) result. */
export type MapSource = 'bitmap' | 'algebra'

/** Counts for a pane: what was counted (`key`), over which cells, and the counts. */
export interface MapCells extends CellSource {
  /** 'b3' (bitmap 3), 'o3' (overlay of bitmap 3), 'a7' (algebra result 7) */
  key: string
  /** one array (dirty bytes), or four (overlay: dirty data, dirty zero, dirty unallocated, clean data) */
  arrays: Float64Array[]
  /** counted from the part a running scan had read: NaN where it had not */
  preview: boolean
}

/** The map's fields of the app state. */
export interface MapState {
  mapView: MapView | null
  /** one pane in device pixels; null until the map is on screen */
  mapCanvas: MapCanvas | null
  mapOrder: MapOrder
  mapArrange: MapArrange
  mapSource: MapSource
  mapCells: Record<MapSlot, MapCells | null>
}

/** The map's actions. */
export interface MapActions {
  /** The pane's size (device pixels) and its smallest cell: the map starts once it is known. */
  setMapCanvas(c: MapCanvas): void
  /** One zoom step around device pixel (x, y) of a pane (default: its centre); dir -1 in, 1 out. */
  mapZoom(dir: -1 | 1, x?: number, y?: number): void
  /** Scroll by rows (of cells, or of Hilbert squares). */
  mapPan(bands: number): void
  /** Show the whole disk. */
  mapReset(): void
  setMapOrder(o: MapOrder): void
  setMapArrange(a: MapArrange): void
  setMapSource(s: MapSource): void
}

/** The parts of the app state the map reads. */
export interface MapDeps {
  image: { summary: { diskLength: number; bitmaps: Array<{ index: number; granularity: number }> } } | null
  selected: number | null
  compare: number | null
  stats: Record<number, { scan: { status: string } }>
  heatMode: 'dirty' | 'allocation'
  algebra: { status: string; granularity: number; result: { id: number } | null } | null
  jobs: unknown[]
}

type Full = MapState & MapActions & MapDeps

/** The map's state before any image. */
export const initialMap = (): MapState => ({
  mapView: null,
  mapCanvas: null,
  mapOrder: 'rows',
  mapArrange: 'side',
  mapSource: 'bitmap',
  mapCells: { primary: null, compare: null },
})

/** The map fields kept when another image opens. */
export function keepMapSettings(s: MapState): Partial<MapState> {
  return { mapCanvas: s.mapCanvas, mapOrder: s.mapOrder, mapArrange: s.mapArrange }
}

/** Most index-block cells asked for before the map's own cells (see want). */
const COARSE_MAX = 1 << 20

/** Shortest time between two preview requests of a running scan. */
const PREVIEW_EVERY_MS = 200

interface Want {
  key: string
  kind: 'heat' | 'preview' | 'overlay' | 'algebra'
  index: number
  start: number
  cellBytes: number
  count: number
}

/** The smallest granularity the map may zoom to: that of the bitmaps shown. */
function mapGranularity(s: Full): number {
  const gr = (i: number | null): number | undefined => (i === null ? undefined : s.image?.summary.bitmaps.find((b) => b.index === i)?.granularity)
  const list = [gr(s.selected), gr(s.compare), s.mapSource === 'algebra' ? s.algebra?.granularity : undefined].filter((x): x is number => x !== undefined)
  return list.length > 0 ? Math.min(...list) : 65536
}

/** The grid the map shows now, or null before it can. */
export function currentMapGrid(s: Pick<Full, 'mapView' | 'mapCanvas' | 'mapOrder' | 'image'>): MapGrid | null {
  if (!s.mapView || !s.mapCanvas || !s.image) return null
  return layoutMap(s.mapView, s.mapCanvas, s.mapOrder, s.image.summary.diskLength)
}

/** The map's actions, and the listener that keeps its cells in step with the rest of the store. */
export function createMapSlice(ctx: {
  get: () => Full
  set: (p: Partial<MapState>) => void
  client: EngineClient
  now?: () => number
}): { actions: MapActions; onChange: (s: Full, prev: Full) => void } {
  const { get, set, client } = ctx
  const now = ctx.now ?? (() => Date.now())
  const lastPreview: Record<MapSlot, number> = { primary: -Infinity, compare: -Infinity }
  const previewTimer: Record<MapSlot, ReturnType<typeof setTimeout> | undefined> = { primary: undefined, compare: undefined }

  function setView(v: MapView | null): void {
    const cur = get().mapView
    if (cur && v && cur.start === v.start && cur.cellBytes === v.cellBytes && cur.cellPx === v.cellPx && cur.whole === v.whole) return
    set({ mapView: v })
  }

  /** Re-fit or re-clamp the view after the image, the pane or the order changed. */
  function refit(): void {
    const s = get()
    if (!s.image || !s.mapCanvas) { if (s.mapView) set({ mapView: null }); return }
    const disk = s.image.summary.diskLength
    const g = mapGranularity(s)
    setView(s.mapView ? clampMapView(s.mapView, s.mapCanvas, s.mapOrder, disk, g) : fitWhole(s.mapCanvas, s.mapOrder, disk, g))
  }

  function want(slot: MapSlot): Want | null {
    const s = get()
    const g = currentMapGrid(s)
    if (!g || g.count === 0) return null
    const at = { start: g.start, cellBytes: g.cellBytes, count: g.count }
    if (slot === 'primary' && s.mapSource === 'algebra') {
      const al = s.algebra
      if (!al || al.status !== 'done' || !al.result) return null
      return { key: `a${al.result.id}`, kind: 'algebra', index: al.result.id, ...at }
    }
    const index = slot === 'primary' ? s.selected : s.compare
    if (index === null || !s.image?.summary.bitmaps.some((b) => b.index === index)) return null
    const scan = s.stats[index]?.scan.status
    if (scan !== 'scanning' && scan !== 'done') return null
    if (scan === 'done' && slot === 'primary' && s.heatMode === 'allocation') return { key: `o${index}`, kind: 'overlay', index, ...at }
    const key = `b${index}`
    const gran = s.image.summary.bitmaps.find((b) => b.index === index)!.granularity
    const block = gran * BLOCK_GRANULES
    // Cells finer than an index block need the bitmap's bits: a running scan's preview, and the
    // first picture after it, take one cell per block instead (the index answers those without
    // a read, the whole map at once); the grid's own cells follow.
    const have = s.mapCells[slot]
    const coarse = g.cellBytes < block && (scan === 'scanning' || !have || have.key !== key || have.preview)
    const cells = coarse ? { start: Math.floor(g.start / block) * block, cellBytes: block, count: 0 } : at
    if (coarse) cells.count = Math.ceil((g.start + g.count * g.cellBytes - cells.start) / block)
    if (coarse && cells.count > COARSE_MAX) return scan === 'done' ? { key, kind: 'heat', index, ...at } : null
    if (scan === 'scanning') return { key, kind: 'preview', index, ...cells }
    return { key, kind: 'heat', index, ...cells }
  }

  function satisfied(w: Want, have: MapCells | null): boolean {
    return !!have && have.key === w.key && have.start === w.start && have.cellBytes === w.cellBytes && have.count === w.count && have.preview === (w.kind === 'preview')
  }

  async function fetchCells(slot: MapSlot, w: Want): Promise<void> {
    const image = get().image
    const end = w.start + w.count * w.cellBytes
    let arrays: Float64Array[]
    let preview = false
    if (w.kind === 'algebra') arrays = [await client.algebraHeat(w.index, w.start, end, w.count)]
    else if (w.kind === 'overlay') {
      const o = await client.overlay(w.index, w.start, end, w.count)
      arrays = [o.dirtyData, o.dirtyZero, o.dirtyUnallocated, o.cleanData]
    } else if (w.kind === 'preview') {
      lastPreview[slot] = now()
      const p = await client.heatmapPreview(w.index, w.start, end, w.count)
      arrays = [p.counts]
      preview = !p.complete
    } else arrays = [await client.heatmap(w.index, w.start, end, w.count)]
    if (get().image !== image) return // another image opened meanwhile
    set({ mapCells: { ...get().mapCells, [slot]: { key: w.key, start: w.start, cellBytes: w.cellBytes, count: w.count, arrays, preview } } })
  }

  const runners: Record<MapSlot, (w: Want) => void> = {
    primary: latestWins((w: Want) => fetchCells('primary', w).then(() => true), () => refresh('primary')),
    compare: latestWins((w: Want) => fetchCells('compare', w).then(() => true), () => refresh('compare')),
  }

  /** Ask for the cells a pane needs, unless it has them; a running scan's preview at most every PREVIEW_EVERY_MS. */
  function refresh(slot: MapSlot): void {
    const w = want(slot)
    const have = get().mapCells[slot]
    if (!w) {
      if (have && slot === 'compare' && get().compare === null) set({ mapCells: { ...get().mapCells, compare: null } })
      return
    }
    if (satisfied(w, have) && w.kind !== 'preview') return
    if (w.kind === 'preview') {
      const wait = lastPreview[slot] + PREVIEW_EVERY_MS - now()
      if (wait > 0) {
        if (previewTimer[slot] === undefined) previewTimer[slot] = setTimeout(() => { previewTimer[slot] = undefined; refresh(slot) }, wait)
        return
      }
    }
    runners[slot](w)
  }

  function refreshAll(): void {
    refresh('primary')
    refresh('compare')
  }

  function onChange(s: Full, prev: Full): void {
    if (s.image !== prev.image) {
      set({ mapView: null, mapCells: { primary: null, compare: null } })
      refit()
      refreshAll()
      return
    }
    if (s.mapCanvas !== prev.mapCanvas || s.mapOrder !== prev.mapOrder || s.selected !== prev.selected || s.compare !== prev.compare ||
      (s.mapSource !== prev.mapSource)) refit()
    const cur = get()
    const scanning = (i: number | null): boolean => i !== null && cur.stats[i]?.scan.status === 'scanning'
    if (cur.mapView !== prev.mapView || cur.mapCanvas !== prev.mapCanvas || cur.stats !== prev.stats || cur.selected !== prev.selected ||
      cur.compare !== prev.compare || cur.heatMode !== prev.heatMode || cur.algebra?.result !== prev.algebra?.result ||
      cur.mapSource !== prev.mapSource || cur.mapOrder !== prev.mapOrder ||
      (cur.jobs !== prev.jobs && (scanning(cur.selected) || scanning(cur.compare)))) refreshAll()
  }

  const actions: MapActions = {
    setMapCanvas(c) {
      const cur = get().mapCanvas
      if (cur && cur.width === c.width && cur.height === c.height && cur.minPx === c.minPx) return
      set({ mapCanvas: c })
    },
    mapZoom(dir, x, y) {
      const s = get()
      if (!s.mapView || !s.mapCanvas || !s.image) return
      const px = x ?? s.mapCanvas.width / 2
      const py = y ?? s.mapCanvas.height / 2
      setView(zoomMap(s.mapView, dir, px, py, s.mapCanvas, s.mapOrder, s.image.summary.diskLength, mapGranularity(s)))
    },
    mapPan(bands) {
      const s = get()
      if (!s.mapView || !s.mapCanvas || !s.image) return
      setView(panMap(s.mapView, bands, s.mapCanvas, s.mapOrder, s.image.summary.diskLength, mapGranularity(s)))
    },
    mapReset() {
      const s = get()
      if (!s.mapCanvas || !s.image) return
      setView(fitWhole(s.mapCanvas, s.mapOrder, s.image.summary.diskLength, mapGranularity(s)))
    },
    setMapOrder(o) {
      if (o === get().mapOrder) return
      // The same bytes on another layout: start over from the whole disk.
      set({ mapOrder: o, mapView: null })
    },
    setMapArrange(a) {
      if (a !== get().mapArrange) set({ mapArrange: a })
    },
    setMapSource(src) {
      if (src !== get().mapSource) set({ mapSource: src })
    },
  }
  return { actions, onChange }
}
