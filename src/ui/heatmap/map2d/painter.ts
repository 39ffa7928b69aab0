/**
 * Paints one pane of the map straight from the store, outside React: a zoom or pan step
 * repaints in the same task (cells of the previous view resampled onto the new grid), and
 * repaints again when the exact cells arrive. Also records how long that took, as performance
 * measures the e2e tests and the bench read:
 *  - `qbm:map-step`: from the input (noteMapInput) to the first repaint of the new view;
 *  - `qbm:map-exact`: from the input to the paint of the exact cells for it;
 *  - marks `qbm:map-preview` (cells from a running scan, detail: how many are known), `qbm:first-map` (the first map with
 *    every cell known, perhaps from coarser cells) and `qbm:first-map-exact` (the first map of
 *    the grid's own cells).
 */
import type { MapCells, MapSlot, MapState } from '../../store/map.js'
import { hatch } from '../draw.js'
import type { CanvasColors, Theme } from '../colors.js'
import { type MapGrid, cellOrigins, layoutMap, usedHeightPx } from './layout.js'
import { type MapPalette, mapPalette, paintDirty, paintOverlayMap } from './paint.js'
import { cellShares, sameCells } from './resample.js'

let inputAt: number | null = null
let exactFrom: number | null = null
let firstMapMarked = false
let firstExactMarked = false

/** Call when a gesture or key asks the map to move: the next repaints are timed from now. */
export function noteMapInput(): void {
  inputAt = performance.now()
  exactFrom = inputAt
}

/** A new image: the next exact map is its first. */
export function resetMapTiming(): void {
  firstMapMarked = false
  firstExactMarked = false
  inputAt = null
  exactFrom = null
}

/** Whether `cells` cover every byte the grid shows (at whatever cell size). */
function coversGrid(g: MapGrid, c: MapCells): boolean {
  return c.start <= g.start && c.start + c.count * c.cellBytes >= Math.min(g.diskLength, g.start + g.count * g.cellBytes)
}

/** What a pane needs from the store. */
export type PaneState = Pick<MapState, 'mapView' | 'mapCanvas' | 'mapOrder' | 'mapCells'> & { image: { summary: { diskLength: number } } | null }

/** Paints a pane from the store's state. */
export interface PanePainter {
  paint(s: PaneState): void
}

/** A painter for `slot` on `canvas`; `stale` stripes the cells (an in-use bitmap's stored bits). */
export function createPanePainter(canvas: HTMLCanvasElement, slot: MapSlot, theme: Theme, colors: CanvasColors, stale: boolean): PanePainter {
  const pal: MapPalette = mapPalette(theme, colors)
  let img: ImageData | null = null
  let px: Uint32Array | null = null
  let origins: { key: string; data: Uint32Array } | null = null
  let lastGridKey = ''
  let lastExact = false
  const scratch = [0, 1, 2, 3].map(() => new Float32Array(0))

  function originsFor(g: MapGrid, width: number): Uint32Array {
    const key = `${g.order}:${g.cellPx}:${g.cols}:${g.rows}:${width}`
    if (!origins || origins.key !== key) origins = { key, data: cellOrigins(g, width) }
    return origins.data
  }

  return {
    paint(s) {
      if (!s.mapView || !s.mapCanvas || !s.image) return
      const g = layoutMap(s.mapView, s.mapCanvas, s.mapOrder, s.image.summary.diskLength)
      // A disk that ends before the pane does: the canvas stops at its last row.
      const width = s.mapCanvas.width
      const height = Math.min(s.mapCanvas.height, usedHeightPx(g))
      if (canvas.width !== width) canvas.width = width
      if (canvas.height !== height) canvas.height = height
      const ctx = canvas.getContext('2d')
      if (!ctx) return
      if (!img || img.width !== width || img.height !== height) {
        img = ctx.createImageData(width, height)
        px = new Uint32Array(img.data.buffer)
      }
      const cells: MapCells | null = s.mapCells[slot]
      const o = originsFor(g, width)
      const exact = !!cells && sameCells(g, cells) && !cells.preview
      for (let k = 0; k < scratch.length; k++) if (scratch[k]!.length < g.count) scratch[k] = new Float32Array(g.capacity)
      if (cells && cells.arrays.length === 4) paintOverlayMap(px!, width, g, o, cellShares(g, cells, cells.arrays, scratch), pal)
      else paintDirty(px!, width, g, o, cells ? cellShares(g, cells, cells.arrays, scratch)[0]! : null, pal)
      if (stale) hatch(img.data, width, height, colors.stripe, 0.55)
      ctx.putImageData(img, 0, 0)
      const end = performance.now()
      const gridKey = `${g.start}:${g.cellBytes}:${g.cellPx}:${g.order}:${width}:${height}`
      if (gridKey !== lastGridKey && inputAt !== null && slot === 'primary') {
        performance.measure('qbm:map-step', { start: inputAt, end })
        inputAt = null
      }
      if (exact && (!lastExact || gridKey !== lastGridKey) && slot === 'primary') {
        if (exactFrom !== null) { performance.measure('qbm:map-exact', { start: exactFrom, end }); exactFrom = null }
        if (!firstExactMarked) { firstExactMarked = true; performance.mark('qbm:first-map-exact') }
      }
      if (cells && !cells.preview && !firstMapMarked && slot === 'primary' && coversGrid(g, cells)) { firstMapMarked = true; performance.mark('qbm:first-map') }
      if (cells?.preview && slot === 'primary') {
        // How much of the map the running scan has filled in: the mark's detail.
        let known = 0
        const a = cells.arrays[0]!
        for (let i = 0; i < cells.count; i++) if (a[i] === a[i]) known++
        if (known > 0) performance.mark('qbm:map-preview', { detail: { known, cells: cells.count } })
      }
      lastGridKey = gridKey
      lastExact = exact
    },
  }
}
