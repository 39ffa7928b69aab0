/**
 * The disk map: the whole virtual disk (or the part zoomed to) as a grid of cells, each one
 * contiguous byte range, coloured like the strip. One pane per bitmap shown (A, and B side by
 * side or under it), the strip's view outlined on each; a caption that says what a cell and a
 * row cover; the shared tooltip and legend; PNG export; the extents list one key (E) away.
 */
import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from 'react'
import { download, exportName } from '../../download.js'
import { exact, hex, humanBytes } from '../../format.js'
import { OP_LABEL } from '../../store/analysis.js'
import { useActions, useAppShallow, useStoreApi } from '../../store/hooks.js'
import { currentMapGrid, type MapCells, type MapSlot } from '../../store/map.js'
import { useTheme } from '../../theme.js'
import { canvasColors, devicePixelRatioNow, useSize } from '../canvas.js'
import type { OverlayKind } from '../colors.js'
import { exportPng } from '../export-png.js'
import { DirtyLegend, OverlayLegend } from '../Legend.js'
import { CellTooltip, type CellTip } from '../Tooltip.js'
import { type MapGrid, gridRange, mapCellRange, rowSpanBytes } from './layout.js'
import { MapPane } from './MapPane.js'
import { resetMapTiming } from './painter.js'
import { sameCells } from './resample.js'
import { useMapGestures } from './useMapGestures.js'

/** Height of a pane's label line, CSS pixels. */
const LABEL_PX = 18
const GAP_PX = 8
/** Narrower than this, two panes go one over the other. */
const SIDE_BY_SIDE_FROM = 560

/** Focus the extents list (the map's screen-reader alternative). */
export function focusExtentList(): void {
  const el = document.getElementById('extent-list')
  el?.focus()
  el?.scrollIntoView({ block: 'nearest' })
}

/** The disk map's panel (mounted above the strip by HeatmapPanel). */
export function MapPanel(): ReactNode {
  const s = useAppShallow((st) => ({
    image: st.image, selected: st.selected, compare: st.compare, mode: st.heatMode, algebra: st.algebra, stats: st.stats,
    mapView: st.mapView, mapCanvas: st.mapCanvas, mapOrder: st.mapOrder, mapArrange: st.mapArrange, mapSource: st.mapSource, mapCells: st.mapCells,
  }))
  const actions = useActions()
  const storeApi = useStoreApi()
  const theme = useTheme()
  const areaRef = useRef<HTMLDivElement>(null)
  const width = useSize(areaRef, [s.image !== null]).width
  // The height the map may take: 40% of the window, between 200 and 560 CSS pixels. The area
  // itself is only as tall as the grid (a small disk ends before the panes do).
  const size = { width, height: useMapHeight() }
  const gestures = useMapGestures(areaRef, actions, storeApi, focusExtentList, [s.image])

  const bitmaps = s.image?.summary.bitmaps ?? []
  const primary = bitmaps.find((b) => b.index === s.selected)
  const second = bitmaps.find((b) => b.index === s.compare)
  const algebraShown = s.mapSource === 'algebra' && s.algebra?.status === 'done' && s.algebra.result !== null
  const panes: MapSlot[] = second ? ['primary', 'compare'] : ['primary']
  const arrange = size.width < SIDE_BY_SIDE_FROM ? 'stack' : s.mapArrange
  const paneW = panes.length === 2 && arrange === 'side' ? Math.floor((size.width - GAP_PX) / 2) : size.width
  const paneH = panes.length === 2 && arrange === 'stack' ? Math.floor((size.height - 2 * LABEL_PX - GAP_PX) / 2) : size.height - LABEL_PX

  // A new image: its first map is timed again (painter.ts).
  useEffect(() => { resetMapTiming() }, [s.image])

  useEffect(() => {
    if (paneW <= 0 || paneH <= 0) return
    const dpr = devicePixelRatioNow()
    actions.setMapCanvas({ width: Math.round(paneW * dpr), height: Math.round(paneH * dpr), minPx: Math.max(1, Math.round(dpr)) })
  }, [actions, paneW, paneH])

  const grid = useMemo(() => currentMapGrid(s), [s.mapView, s.mapCanvas, s.mapOrder, s.image]) // eslint-disable-line react-hooks/exhaustive-deps
  const labels = useMemo(() => {
    const out: Partial<Record<MapSlot, string>> = {}
    for (const slot of panes) {
      const b = slot === 'primary' ? primary : second
      if (b) out[slot] = paneLabel(paneName(slot, b.name, slot === 'primary' && algebraShown ? s.algebra : null), s.mapCanvas !== null, s.mapCells[slot], s.stats[b.index]?.scan.status)
    }
    return out
  }, [s.mapCanvas !== null, s.mapCells, s.stats, primary, second, algebraShown, s.algebra]) // eslint-disable-line react-hooks/exhaustive-deps

  const onExport = useCallback(() => {
    const el = areaRef.current
    const g = grid
    const img = storeApi.getState().image
    if (!el || !g || !img || !primary) return
    const shots = [...el.querySelectorAll<HTMLCanvasElement>('canvas.map-canvas')].map((c, k) => {
      const ctx = c.getContext('2d')
      const slot = panes[k]!
      const b = slot === 'primary' ? primary : second
      return ctx && {
        label: `${paneTag(slot, algebraShown ? s.algebra?.op : undefined)} ${paneName(slot, b?.name ?? '', algebraShown ? s.algebra : null)}${b?.status === 'in-use' && !(slot === 'primary' && algebraShown) ? ' · in use: stale (striped)' : ''}`,
        image: ctx.getImageData(0, 0, c.width, c.height),
        leftLabels: rowLabels(g),
      }
    }).filter((x): x is NonNullable<typeof x> => !!x)
    void exportPng({
      title: `${img.name} · disk map of ${paneName('primary', primary.name, algebraShown ? s.algebra : null)}`,
      lines: captionLines(g),
      panels: shots,
      legend: s.mode === 'allocation' && !algebraShown ? 'overlay' : 'dirty',
      theme,
      colors: canvasColors(theme),
    }).then((blob) => { if (blob) download(blob, exportName(img.name, primary.name, 'map.png')) })
  }, [grid, storeApi, primary, second, panes, algebraShown, s.algebra, s.mode, theme])

  if (!s.image || !primary) return null
  const disk = s.image.summary.diskLength
  const overlayMode = s.mode === 'allocation' && !algebraShown
  const tip = gestures.hover && grid && gestures.hover.cell >= 0 ? cellTip(grid, s.mapCells[gestures.hover.slot], gestures.hover.cell) : null
  const primaryCells = s.mapCells.primary
  const totals = overlayMode && grid && primaryCells?.arrays.length === 4 && sameCells(grid, primaryCells) ? overlayTotals(primaryCells, grid.count) : null
  const whole = grid ? gridRange(grid).start === 0 && gridRange(grid).end === disk : false

  return (
    <section className="panel map-panel" aria-labelledby="map-h">
      <div className="panel-head">
        <h2 id="map-h" className="panel-title">Disk map <span className="mono">{paneName('primary', primary.name, algebraShown ? s.algebra : null)}</span></h2>
        <div className="toolbar" role="toolbar" aria-label="Map controls">
          <fieldset className="segmented">
            <legend className="visually-hidden">Cell order</legend>
            <label className={s.mapOrder === 'rows' ? 'on' : undefined} title="Cells follow each other row after row, like text">
              <input type="radio" name="map-order" checked={s.mapOrder === 'rows'} onChange={() => actions.setMapOrder('rows')} />Rows
            </label>
            <label className={s.mapOrder === 'hilbert' ? 'on' : undefined} title="Cells follow a Hilbert curve inside squares: bytes close on the disk stay close on the map">
              <input type="radio" name="map-order" checked={s.mapOrder === 'hilbert'} onChange={() => actions.setMapOrder('hilbert')} />Hilbert
            </label>
          </fieldset>
          {second && (
            <fieldset className="segmented">
              <legend className="visually-hidden">Two bitmaps</legend>
              <label className={arrange === 'side' ? 'on' : undefined}>
                <input type="radio" name="map-arrange" checked={arrange === 'side'} disabled={size.width < SIDE_BY_SIDE_FROM} onChange={() => actions.setMapArrange('side')} />Side by side
              </label>
              <label className={arrange === 'stack' ? 'on' : undefined}>
                <input type="radio" name="map-arrange" checked={arrange === 'stack'} onChange={() => actions.setMapArrange('stack')} />A over B
              </label>
            </fieldset>
          )}
          {s.algebra?.status === 'done' && (
            <label className="inline-field">
              Shows
              <select aria-label="Map source" value={s.mapSource} onChange={(e) => actions.setMapSource(e.target.value === 'algebra' ? 'algebra' : 'bitmap')}>
                <option value="bitmap">{primary.name}</option>
                <option value="algebra">{s.algebra.aName} {OP_LABEL[s.algebra.op].sign} {s.algebra.bName}</option>
              </select>
            </label>
          )}
          <span className="sep" />
          <button type="button" className="btn btn-small" onClick={() => actions.mapZoom(1)} aria-label="Zoom the map out" title="Zoom out (−)">−</button>
          <button type="button" className="btn btn-small" onClick={() => actions.mapZoom(-1)} aria-label="Zoom the map in" title="Zoom in (+)">+</button>
          <button type="button" className="btn btn-small" onClick={() => actions.mapPan(-1)} aria-label="Scroll the map up a row" title="Up a row (↑)">▲</button>
          <button type="button" className="btn btn-small" onClick={() => actions.mapPan(1)} aria-label="Scroll the map down a row" title="Down a row (↓)">▼</button>
          <button type="button" className="btn btn-small" onClick={actions.mapReset} title="Fit the whole disk on the map (0)">Fit disk</button>
          <span className="sep" />
          <button type="button" className="btn btn-small" onClick={onExport} disabled={!primaryCells} title="The map as a PNG image, with its legend and scale">Save map PNG</button>
          <button type="button" className="btn btn-small" onClick={focusExtentList} title="The dirty extents as a list, for screen readers and keyboards (E)">Extents list (E)</button>
        </div>
      </div>
      <p className="view-line small" id="map-caption" data-testid="map-caption"
        data-cell-bytes={grid?.cellBytes} data-start={grid?.start} data-cells={grid?.count} data-row-bytes={grid ? rowSpanBytes(grid) : undefined}
        data-grid={grid ? JSON.stringify(grid) : undefined}>
        {grid && captionLines(grid).map((l, i) => <span key={i} className={i === 0 ? undefined : 'muted'}>{i > 0 && ' · '}{l}</span>)}
        {whole && <span className="muted"> · the whole disk</span>}
      </p>
      <div
        ref={areaRef}
        className={`map-area map-${arrange}${panes.length === 2 ? ' map-two' : ''}`}
        tabIndex={0}
        role="group"
        aria-label="Disk map. Drag a rectangle or click a row to show it in the heatmap strip. Keys: plus and minus zoom, up and down arrows scroll, 0 shows the whole disk, E moves to the extents list."
        aria-describedby="map-caption"
        onPointerDown={gestures.handlers.onPointerDown}
        onPointerMove={gestures.handlers.onPointerMove}
        onPointerUp={gestures.handlers.onPointerUp}
        onPointerCancel={gestures.handlers.onPointerCancel}
        onPointerLeave={gestures.handlers.onPointerLeave}
        onDoubleClick={gestures.handlers.onDoubleClick}
        onKeyDown={gestures.handlers.onKeyDown}
      >
        {paneW > 0 && paneH > 0 && panes.map((slot) => {
          const b = slot === 'primary' ? primary : second!
          const showsAlgebra = slot === 'primary' && algebraShown
          return (
            <MapPane key={slot} slot={slot} tag={paneTag(slot, showsAlgebra ? s.algebra?.op : undefined)} name={paneName(slot, b.name, showsAlgebra ? s.algebra : null)}
              stale={b.status === 'in-use' && !showsAlgebra} cssWidth={paneW} cssHeight={paneH} theme={theme} drag={gestures.drag}
              label={labels[slot] ?? ''} exact={!!grid && !!s.mapCells[slot] && sameCells(grid, s.mapCells[slot]!) && !s.mapCells[slot]!.preview} />
          )
        })}
        {gestures.hover && tip && (
          <CellTooltip tip={tip} x={gestures.hover.areaX} y={gestures.hover.areaY + 16} areaWidth={size.width} theme={theme}
            testId={tip.split ? 'map-overlay-tooltip' : 'map-tooltip'} />
        )}
      </div>
      {overlayMode
        ? <OverlayLegend theme={theme} totals={totals} scope={whole ? 'whole disk' : 'on the map'} testId="map-overlay-totals" />
        : <DirtyLegend theme={theme} />}
      <p className="small muted map-help">
        Drag a rectangle or click a row to show those bytes in the heatmap strip below; the strip&apos;s view is outlined here. Wheel, pinch or + − zoom
        the map down to single granules; shift+wheel, ↑ ↓ or a shift-drag scroll it; 0 shows the whole disk; E jumps to the extents list.
      </p>
    </section>
  )
}

function useMapHeight(): number {
  const get = (): number => Math.round(Math.min(560, Math.max(200, window.innerHeight * 0.4)))
  const [h, setH] = useState(get)
  useEffect(() => {
    const on = (): void => setH(get())
    window.addEventListener('resize', on)
    return () => window.removeEventListener('resize', on)
  }, [])
  return h
}

function paneTag(slot: MapSlot, op: keyof typeof OP_LABEL | undefined): string {
  if (op) return `A${OP_LABEL[op].sign}B`
  return slot === 'primary' ? 'A' : 'B'
}

function paneName(slot: MapSlot, name: string, al: { aName: string; bName: string; op: keyof typeof OP_LABEL } | null | undefined): string {
  return slot === 'primary' && al ? `${al.aName} ${OP_LABEL[al.op].sign} ${al.bName}` : name
}

/** What a cell and a row cover, and the bytes shown, in words. */
function captionLines(g: MapGrid): string[] {
  const r = gridRange(g)
  const perCell = `each cell ${humanBytes(g.cellBytes)} (${exact(g.cellBytes)} bytes)`
  const order = g.order === 'rows'
    ? `each row ${humanBytes(rowSpanBytes(g))} (${exact(g.cols)} cells), rows top to bottom`
    : `cells follow a Hilbert curve through squares of ${g.tile}×${g.tile} cells (${humanBytes(g.tile * g.tile * g.cellBytes)} each), squares left to right, top to bottom`
  return [perCell, order, `${exact(g.count)} cells: ${hex(r.start)} – ${hex(r.end)} (${humanBytes(r.start)} – ${humanBytes(r.end)})`]
}

/** Offsets of the rows along the left edge of an export, about every 40 pixels. */
function rowLabels(g: MapGrid): Array<{ y: number; text: string }> {
  const band = g.order === 'rows' ? g.cellPx : g.cellPx * g.tile
  const bands = g.order === 'rows' ? g.rows : g.rows / g.tile
  const every = Math.max(1, Math.ceil(40 / band))
  const out: Array<{ y: number; text: string }> = []
  for (let k = 0; k < bands; k += every) {
    const start = g.start + k * rowSpanBytes(g)
    if (start >= g.diskLength) break
    out.push({ y: k * band, text: humanBytes(start) })
  }
  return out
}

/** The tooltip of cell i: its bytes and what was counted in it (exactly, when the cells are this grid's). */
function cellTip(g: MapGrid, cells: MapCells | null, i: number): CellTip {
  const r = mapCellRange(g, i)
  const exactCells = cells && sameCells(g, cells) && !cells.preview ? cells : null
  if (exactCells && exactCells.arrays.length === 4) {
    const [dd, dz, du, cd] = exactCells.arrays as [Float64Array, Float64Array, Float64Array, Float64Array]
    return { ...r, split: { dirtyData: dd[i]!, dirtyZero: dz[i]!, dirtyUnallocated: du[i]!, cleanData: cd[i]! } }
  }
  return { ...r, dirty: exactCells ? exactCells.arrays[0]![i]! : null }
}

function overlayTotals(c: MapCells, count: number): Record<OverlayKind, number> {
  const sum = (a: Float64Array): number => { let t = 0; for (let i = 0; i < count; i++) t += a[i]!; return t }
  const [dd, dz, du, cd] = c.arrays as [Float64Array, Float64Array, Float64Array, Float64Array]
  return { dirtyData: sum(dd), dirtyZero: sum(dz), dirtyUnallocated: sum(du), cleanData: sum(cd) }
}

function paneLabel(name: string, sized: boolean, cells: MapCells | null, scan: string | undefined): string {
  if (!sized) return `Disk map of ${name}: waiting for its size.`
  if (!cells) return `Disk map of ${name}: ${scan === 'scanning' ? 'reading its data' : 'no data yet'}.`
  if (cells.preview) return `Disk map of ${name}: reading its data, the map fills in as it is read.`
  let dirty = 0
  const a = cells.arrays[0]!
  if (cells.arrays.length === 4) {
    for (let i = 0; i < cells.count; i++) if (a[i]! + cells.arrays[1]![i]! + cells.arrays[2]![i]! > 0) dirty++
  } else for (let i = 0; i < cells.count; i++) if (a[i]! > 0) dirty++
  return `Disk map of ${name}: ${exact(dirty)} of ${exact(cells.count)} cells of ${humanBytes(cells.cellBytes)} hold dirty data; the heatmap strip's view is outlined. The extents list below says the same in words.`
}
