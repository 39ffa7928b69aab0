/**
 * The disk map (map2d/MapPanel.tsx), then the heatmap strip of the selected bitmap over the shared view, with an optional compare row
 * under it: toolbar, view line, ruler and rows (StripRows.tsx), the hover tooltip (Tooltip.tsx),
 * the legend (Legend.tsx) and the PNG export (export-png.ts). Gestures: useStripGestures.ts.
 */
import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react'
import type { BitmapSummary } from '../../session/api.js'
import { download, exportName } from '../download.js'
import { hex, humanBytes } from '../format.js'
import type { OverlayData } from '../store/analysis.js'
import type { HeatData } from '../store/app-store.js'
import { useActions, useApp, useAppShallow, useStoreApi } from '../store/hooks.js'
import { useTheme } from '../theme.js'
import { canvasColors, devicePixelRatioNow, useWidth } from './canvas.js'
import type { OverlayKind } from './colors.js'
import { exportPng } from './export-png.js'
import { type View, cellUnderX, cellsMeeting, rulerTicks, viewSpan, zoomFactor } from './geometry.js'
import { DirtyLegend, OverlayLegend } from './Legend.js'
import { MapPanel } from './map2d/MapPanel.js'
import { FocusMark, HeatRow, LayerRow, ROW_HEIGHT, ROW_LABEL, Ruler, paintStripRow } from './StripRows.js'
import { CellTooltip, type CellTip } from './Tooltip.js'
import { type StripHover, ZOOM_STEP, useStripGestures } from './useStripGestures.js'

function sameView(a: View, b: View): boolean {
  return a.start === b.start && a.end === b.end
}

/** The disk map (map2d/) over the strip: overview first, then the detail it zooms to. */
export function HeatmapPanel(): ReactNode {
  return (
    <>
      <MapPanel />
      <StripPanel />
    </>
  )
}

function StripPanel(): ReactNode {
  const { image, view, selected, compare, heat, focus, stats, mode, overlay } = useAppShallow((s) => ({
    image: s.image, view: s.view, selected: s.selected, compare: s.compare, heat: s.heat, focus: s.focus, stats: s.stats,
    mode: s.heatMode, overlay: s.overlay,
  }))
  const actions = useActions()
  const storeApi = useStoreApi()
  const theme = useTheme()
  const areaRef = useRef<HTMLDivElement>(null)
  const [hover, setHover] = useState<StripHover | null>(null)
  const width = useWidth(areaRef, [image !== null])
  const gestures = useStripGestures(areaRef, actions, storeApi, setHover, [image])

  // One cell per device pixel.
  useEffect(() => {
    if (width > 0) actions.setHeatWidth(width * devicePixelRatioNow())
  }, [actions, width])

  // Record drop-to-first-heatmap after the first paint of the primary row.
  const firstHeatPending = useApp((s) => s.firstHeatPending)
  useEffect(() => {
    if (firstHeatPending && heat.primary && view && sameView(heat.primary.forView, view)) {
      requestAnimationFrame(() => actions.markFirstHeatmap())
    }
  }, [firstHeatPending, heat.primary, view, actions])

  const onExport = useCallback((): void => {
    const s = storeApi.getState()
    const img = s.image
    const v = s.view
    const b = img?.summary.bitmaps.find((x) => x.index === s.selected)
    if (!img || !v || !b || width <= 0) return
    const second = img.summary.bitmaps.find((x) => x.index === s.compare)
    void stripPng(Math.max(1, Math.round(width * devicePixelRatioNow())), v, img.summary.diskLength, [
      { b, heat: s.heat.primary },
      ...(second ? [{ b: second, heat: s.heat.compare }] : []),
    ], theme, s.heatMode === 'allocation' && s.overlay?.bitmapIndex === b.index ? s.overlay : null, img.name).then((blob) => {
      if (blob) download(blob, exportName(img.name, b.name, 'heatmap.png'))
    })
  }, [storeApi, theme, width])

  if (!image || !view) return null
  const bitmaps = image.summary.bitmaps
  const primary = bitmaps.find((b) => b.index === selected)
  const second = bitmaps.find((b) => b.index === compare)
  const disk = image.summary.diskLength
  const usableOverlay = mode === 'allocation' && overlay && primary && overlay.bitmapIndex === primary.index ? overlay : null
  const showLayers = usableOverlay !== null && usableOverlay.layerNames.length > 1
  const rowsShown = 1 + (second ? 1 : 0) + (showLayers ? 1 : 0)
  const tip = hover && width > 0 ? hoverTip(hover, mode === 'allocation' ? usableOverlay : null, hover.slot === 'compare' ? heat.compare : heat.primary, view, width, disk) : null

  return (
    <section className="panel heatmap-panel" aria-labelledby="heatmap-h">
      <div className="panel-head">
        <h2 id="heatmap-h" className="panel-title">
          Heatmap {primary && <span className="mono">{primary.name}</span>}
        </h2>
        <div className="toolbar" role="toolbar" aria-label="Heatmap controls">
          <fieldset className="segmented">
            <legend className="visually-hidden">Heatmap shows</legend>
            <label className={mode === 'dirty' ? 'on' : undefined}>
              <input type="radio" name="heat-mode" checked={mode === 'dirty'} onChange={() => actions.setHeatMode('dirty')} />
              Dirty
            </label>
            <label className={mode === 'allocation' ? 'on' : undefined} title="Colour the dirty bytes by how they read: allocated data, zero, or unallocated">
              <input type="radio" name="heat-mode" checked={mode === 'allocation'} onChange={() => actions.setHeatMode('allocation')} />
              Dirty × allocation
            </label>
          </fieldset>
          <span className="sep" />
          <label className="inline-field">
            Compare with
            <select value={compare ?? ''} onChange={(e) => actions.setCompare(e.target.value === '' ? null : Number(e.target.value))}>
              <option value="">none</option>
              {bitmaps.filter((b) => b.index !== selected).map((b) => (
                <option key={b.index} value={b.index}>{b.name}</option>
              ))}
            </select>
          </label>
          <span className="sep" />
          <button type="button" className="btn btn-small" onClick={() => actions.zoom(1 / ZOOM_STEP)} aria-label="Zoom out" title="Zoom out (−)">−</button>
          <button type="button" className="btn btn-small" onClick={() => actions.zoom(ZOOM_STEP)} aria-label="Zoom in" title="Zoom in (+)">+</button>
          <button type="button" className="btn btn-small" onClick={actions.resetView} title="Whole disk (0)">Whole disk</button>
          <span className="sep" />
          <button type="button" className="btn btn-small" onClick={onExport} disabled={!heat.primary}>Export PNG</button>
        </div>
      </div>
      <p className="view-line small" aria-live="polite" data-testid="view-range">
        <span className="mono">{hex(view.start)} – {hex(view.end)}</span>
        <span className="muted"> · {humanBytes(view.start)} – {humanBytes(view.end)} · span {humanBytes(viewSpan(view))}
          {' '}· zoom ×{formatZoom(zoomFactor(view, disk))}
          {heat.primary && sameView(heat.primary.forView, view) && primary && <> · {cellDesc(heat.primary, primary)}</>}
        </span>
      </p>
      <div
        ref={areaRef}
        className="heat-area"
        tabIndex={0}
        role="group"
        aria-label="Heatmap view. Keys: plus and minus zoom, arrows pan, 0 shows the whole disk."
        onPointerDown={gestures.onPointerDown}
        onPointerMove={gestures.onPointerMove}
        onPointerUp={gestures.onPointerUp}
        onPointerCancel={gestures.onPointerUp}
        onPointerLeave={gestures.onPointerLeave}
        onDoubleClick={gestures.onDoubleClick}
        onKeyDown={gestures.onKeyDown}
      >
        <Ruler view={view} width={width} />
        {primary && (
          <HeatRow slot="primary" b={primary} heat={heat.primary} view={view} disk={disk} width={width} theme={theme} scanning={stats[primary.index]?.scan.status}
            overlay={mode === 'allocation' ? usableOverlay ?? 'pending' : null} />
        )}
        {showLayers && <LayerRow overlay={usableOverlay} view={view} disk={disk} width={width} theme={theme} />}
        {second && (
          <HeatRow slot="compare" b={second} heat={heat.compare} view={view} disk={disk} width={width} theme={theme} scanning={stats[second.index]?.scan.status} />
        )}
        {focus && width > 0 && <FocusMark offset={focus.offset} length={focus.length} view={view} width={width} rows={rowsShown} />}
        {hover && tip && (
          <CellTooltip tip={tip} x={hover.x} y={hover.slot === 'compare' ? 26 + ROW_HEIGHT + ROW_LABEL : 26} areaWidth={width} theme={theme}
            testId={tip.split ? 'overlay-tooltip' : 'heat-tooltip'} />
        )}
        {hover && width > 0 && <div className="heat-hairline" style={{ left: hover.x }} />}
      </div>
      {mode === 'allocation'
        ? <OverlayLegend theme={theme} totals={overlayTotals(usableOverlay, view, disk)} scope={sameView(view, { start: 0, end: disk }) ? 'whole disk' : 'in view'}
          backingMissing={usableOverlay?.backingMissing} />
        : <DirtyLegend theme={theme} />}
      {primary?.status === 'in-use' && (
        <p className="small stale-note" data-testid="stale-note">
          <span className="stale-swatch" aria-hidden="true" /> Striped: <span className="mono">{primary.name}</span> is marked in use, so these are its
          {' '}stored bits from its last clean save (stale). Writes since then are not in them. Compare it with another bitmap below, and see Changes → Clear in_use for what to do.
        </p>
      )}
    </section>
  )
}

function formatZoom(z: number): string {
  return z < 10 ? z.toFixed(1) : z < 1e6 ? Math.round(z).toLocaleString('en-US') : z.toExponential(1)
}

function cellDesc(h: HeatData, b: BitmapSummary): string {
  const cellBytes = viewSpan(h.view) / h.cells
  const perGranule = cellBytes / b.granularity
  return `${h.cells.toLocaleString('en-US')} cells of ${perGranule <= 1.0001 && perGranule >= 0.9999 ? '1 granule' : `~${humanBytes(Math.round(cellBytes))}`}`
}

/** What the tooltip says about the cell under the pointer: its dirty bytes, or its overlay split (row A). */
function hoverTip(h: StripHover, o: OverlayData | null, heat: HeatData | null, view: View, width: number, disk: number): CellTip | null {
  if (o && h.slot !== 'compare') {
    if (!sameView(o.forView, view)) return null
    const c = cellUnderX(h.x, width, view, o, disk)
    const i = c.index
    const layers = o.layers.map((l) => l[i] ?? 0)
    return {
      offset: c.offset, length: c.length,
      split: { dirtyData: o.dirtyData[i] ?? 0, dirtyZero: o.dirtyZero[i] ?? 0, dirtyUnallocated: o.dirtyUnallocated[i] ?? 0, cleanData: o.cleanData[i] ?? 0 },
      layers: layers.length > 1 ? layers.map((n, d) => n > 0 ? `${o.layerNames[d] ?? `layer ${d}`} ${humanBytes(n)}` : null).filter(Boolean).join(' · ') || 'no layer' : null,
    }
  }
  if (h.slot === 'layers' || !heat || !sameView(heat.forView, view)) return null
  const c = cellUnderX(h.x, width, view, heat, disk)
  return { offset: c.offset, length: c.length, dirty: heat.counts[c.index] ?? 0 }
}

function sum(a: Float64Array, from: number, to: number): number {
  let s = 0
  for (let i = from; i < to; i++) s += a[i]!
  return s
}

/** The overlay's totals over the cells that cover the view. */
function overlayTotals(o: OverlayData | null, view: View, disk: number): Record<OverlayKind, number> | null {
  if (!o || !sameView(o.forView, view)) return null
  const { first, last } = cellsMeeting(o, view.start, view.end, disk)
  if (last <= first) return null
  return { dirtyData: sum(o.dirtyData, first, last), dirtyZero: sum(o.dirtyZero, first, last), dirtyUnallocated: sum(o.dirtyUnallocated, first, last), cleanData: sum(o.cleanData, first, last) }
}

/** The strip as a PNG: one labelled row per bitmap under a ruler, the legend, the range in words. */
function stripPng(w: number, view: View, disk: number, rows: Array<{ b: BitmapSummary; heat: HeatData | null }>, theme: 'light' | 'dark',
  overlay: OverlayData | null, imageName: string): Promise<Blob | null> {
  const rowH = 64
  const ticks = rulerTicks(view, w, 110).map((t) => ({ x: t.x, text: t.label }))
  const panels = rows.map((r, k) => {
    const img = new ImageData(w, rowH)
    paintStripRow(img.data, w, rowH, r.b, r.heat, view, disk, theme, k === 0 ? overlay : null)
    return {
      label: `${k === 0 ? 'A' : 'B'} ${r.b.name} · granularity ${humanBytes(r.b.granularity)}${r.b.status === 'in-use' ? ' · in use: stale (striped)' : ''}`,
      image: img,
      ...(k === 0 ? { topTicks: ticks } : {}),
    }
  })
  const primary = rows[0]!
  const cells = primary.heat && sameView(primary.heat.forView, view) ? ` · ${cellDesc(primary.heat, primary.b)}` : ''
  return exportPng({
    title: `${imageName} · heatmap of ${primary.b.name}`,
    lines: [`${hex(view.start)} – ${hex(view.end)} · ${humanBytes(view.start)} – ${humanBytes(view.end)} · span ${humanBytes(viewSpan(view))}${cells}`],
    panels,
    legend: overlay ? 'overlay' : 'dirty',
    theme,
    colors: canvasColors(theme),
  })
}
