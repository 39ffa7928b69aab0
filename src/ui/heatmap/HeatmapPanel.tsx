/**
 * The heatmap of the selected bitmap over the shared view, with an optional compare row under
 * it: a ruler, canvases painted from worker cell counts, a legend and a hover tooltip. Zoom by
 * wheel, pinch, buttons or keys (+ − 0, arrows pan); drag to pan; double-click zooms in.
 */
import { useCallback, useEffect, useLayoutEffect, useRef, useState, type ReactNode } from 'react'
import type { BitmapSummary } from '../../session/api.js'
import { download, exportName } from '../download.js'
import { exact, hex, humanBytes, percent, preciseBytes } from '../format.js'
import type { OverlayData } from '../store/analysis.js'
import type { HeatData, HeatSlot } from '../store/app-store.js'
import { useActions, useApp, useAppShallow, useStoreApi } from '../store/hooks.js'
import { cssVar, useTheme } from '../theme.js'
import {
  LEGEND_STOPS, OVERLAY_KINDS, OVERLAY_LABEL, cssColor, heatColor, layerColor, overlayColor, rampPosition, type Rgb, type Theme,
} from './colors.js'
import { dominantLayer, hatch, paint, paintOverlay } from './draw.js'
import {
  type View, cellAtX, cellOfOffset, cellRange, offsetToX, rulerTicks, viewSpan, xToOffset, zoomFactor,
} from './geometry.js'

const ROW_HEIGHT = 56
const ZOOM_STEP = 0.5

interface Hover {
  slot: HeatSlot | 'layers'
  x: number
}

function parseRgb(css: string, fallback: Rgb): Rgb {
  const m = /^#([0-9a-f]{6})$/i.exec(css)
  if (!m) return fallback
  const n = parseInt(m[1]!, 16)
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255]
}

function sameView(a: View, b: View): boolean {
  return a.start === b.start && a.end === b.end
}

export function HeatmapPanel(): ReactNode {
  const { image, view, selected, compare, heat, focus, stats, mode, overlay } = useAppShallow((s) => ({
    image: s.image, view: s.view, selected: s.selected, compare: s.compare, heat: s.heat, focus: s.focus, stats: s.stats,
    mode: s.heatMode, overlay: s.overlay,
  }))
  const actions = useActions()
  const storeApi = useStoreApi()
  const theme = useTheme()
  const areaRef = useRef<HTMLDivElement>(null)
  const [width, setWidth] = useState(0)
  const [hover, setHover] = useState<Hover | null>(null)
  const drag = useRef<{ x: number; view: View; moved: boolean } | null>(null)
  const pointers = useRef(new Map<number, number>())
  const pinch = useRef<{ dist: number; view: View } | null>(null)

  // Measure the drawing width; ask the store for one cell per device pixel.
  useLayoutEffect(() => {
    const el = areaRef.current
    if (!el) return
    const ro = new ResizeObserver(() => {
      const w = Math.floor(el.clientWidth)
      setWidth(w)
      actions.setHeatWidth(w * (window.devicePixelRatio || 1))
    })
    ro.observe(el)
    return () => ro.disconnect()
  }, [actions, image])

  // Wheel: zoom around the pointer (ctrl+wheel is a trackpad pinch); horizontal wheel pans.
  useEffect(() => {
    const el = areaRef.current
    if (!el) return
    const onWheel = (e: WheelEvent): void => {
      const v = storeApi.getState().view
      if (!v) return
      e.preventDefault()
      const rect = el.getBoundingClientRect()
      const x = e.clientX - rect.left
      const unit = e.deltaMode === 1 ? 20 : e.deltaMode === 2 ? 400 : 1
      if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) {
        const d = (e.shiftKey ? e.deltaY || e.deltaX : e.deltaX) * unit
        actions.pan((d / rect.width) * viewSpan(v))
        return
      }
      const factor = Math.exp(e.deltaY * unit * (e.ctrlKey ? 0.01 : 0.002))
      actions.zoom(factor, xToOffset(x, v, rect.width))
    }
    el.addEventListener('wheel', onWheel, { passive: false })
    return () => el.removeEventListener('wheel', onWheel)
  }, [actions, storeApi, image])

  const onPointerDown = useCallback((e: React.PointerEvent<HTMLDivElement>) => {
    const v = storeApi.getState().view
    if (!v || e.button !== 0) return
    e.currentTarget.setPointerCapture(e.pointerId)
    pointers.current.set(e.pointerId, e.clientX)
    if (pointers.current.size === 2) {
      const [a, b] = [...pointers.current.values()]
      pinch.current = { dist: Math.abs(a! - b!), view: v }
      drag.current = null
    } else {
      drag.current = { x: e.clientX, view: v, moved: false }
    }
  }, [storeApi])

  const onPointerMove = useCallback((e: React.PointerEvent<HTMLDivElement>) => {
    const el = areaRef.current
    if (!el) return
    const rect = el.getBoundingClientRect()
    const slot = (e.target as HTMLElement).closest('[data-slot]')?.getAttribute('data-slot') as Hover['slot'] | null
    setHover(slot ? { slot, x: e.clientX - rect.left } : null)
    if (pointers.current.has(e.pointerId)) pointers.current.set(e.pointerId, e.clientX)
    const p = pinch.current
    if (p && pointers.current.size === 2) {
      const [a, b] = [...pointers.current.values()]
      const dist = Math.max(1, Math.abs(a! - b!))
      const mid = (a! + b!) / 2 - rect.left
      const anchor = xToOffset(mid, p.view, rect.width)
      const span = viewSpan(p.view) * (p.dist / dist)
      const frac = mid / rect.width
      actions.setView({ start: Math.round(anchor - frac * span), end: Math.round(anchor - frac * span + span) })
      return
    }
    const d = drag.current
    if (!d) return
    const dx = e.clientX - d.x
    if (Math.abs(dx) > 2) d.moved = true
    if (!d.moved) return
    const delta = Math.round((-dx / rect.width) * viewSpan(d.view))
    actions.setView({ start: d.view.start + delta, end: d.view.end + delta })
  }, [actions])

  const onPointerUp = useCallback((e: React.PointerEvent<HTMLDivElement>) => {
    pointers.current.delete(e.pointerId)
    if (pointers.current.size < 2) pinch.current = null
    drag.current = null
  }, [])

  const onDoubleClick = useCallback((e: React.MouseEvent<HTMLDivElement>) => {
    const v = storeApi.getState().view
    const el = areaRef.current
    if (!v || !el) return
    const rect = el.getBoundingClientRect()
    actions.zoom(e.shiftKey ? 1 / ZOOM_STEP : ZOOM_STEP * ZOOM_STEP, xToOffset(e.clientX - rect.left, v, rect.width))
  }, [actions, storeApi])

  const onKeyDown = useCallback((e: React.KeyboardEvent<HTMLDivElement>) => {
    const v = storeApi.getState().view
    if (!v) return
    const step = viewSpan(v) * (e.shiftKey ? 0.5 : 0.1)
    let handled = true
    switch (e.key) {
      case '+': case '=': actions.zoom(ZOOM_STEP); break
      case '-': case '_': actions.zoom(1 / ZOOM_STEP); break
      case 'ArrowLeft': actions.pan(-step); break
      case 'ArrowRight': actions.pan(step); break
      case 'ArrowUp': actions.zoom(ZOOM_STEP); break
      case 'ArrowDown': actions.zoom(1 / ZOOM_STEP); break
      case 'Home': case '0': actions.resetView(); break
      default: handled = false
    }
    if (handled) e.preventDefault()
  }, [actions, storeApi])

  // Record drop-to-first-heatmap after the first paint of the primary row.
  const firstHeatPending = useApp((s) => s.firstHeatPending)
  useEffect(() => {
    if (firstHeatPending && heat.primary && view && sameView(heat.primary.forView, view)) {
      requestAnimationFrame(() => actions.markFirstHeatmap())
    }
  }, [firstHeatPending, heat.primary, view, actions])

  if (!image || !view) return null
  const bitmaps = image.summary.bitmaps
  const primary = bitmaps.find((b) => b.index === selected)
  const second = bitmaps.find((b) => b.index === compare)
  const disk = image.summary.diskLength

  function exportPng(): void {
    if (!primary || !view) return
    const dpr = window.devicePixelRatio || 1
    const w = Math.max(1, Math.round(width * dpr))
    void renderPng(w, view, disk, [
      { b: primary, heat: heat.primary },
      ...(second ? [{ b: second, heat: heat.compare }] : []),
    ], theme).then((blob) => {
      if (blob) download(blob, exportName(image!.name, primary.name, 'heatmap.png'))
    })
  }

  const hoverInfo = hover && width > 0 && hover.slot !== 'layers' ? describeHover(hover, hover.slot === 'primary' ? heat.primary : heat.compare, view, width, disk) : null
  const usableOverlay = mode === 'allocation' && overlay && primary && overlay.bitmapIndex === primary.index ? overlay : null
  const split = hover && width > 0 && usableOverlay && hover.slot !== 'compare' ? describeOverlay(hover.x, usableOverlay, view, width, disk) : null
  const showLayers = usableOverlay !== null && usableOverlay.layerNames.length > 1
  const rowsShown = 1 + (second ? 1 : 0) + (showLayers ? 1 : 0)

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
          <button type="button" className="btn btn-small" onClick={exportPng} disabled={!heat.primary}>Export PNG</button>
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
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerCancel={onPointerUp}
        onPointerLeave={() => setHover(null)}
        onDoubleClick={onDoubleClick}
        onKeyDown={onKeyDown}
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
        {hover && split && (
          <div
            className="heat-tooltip"
            role="tooltip"
            data-testid="overlay-tooltip"
            data-offset={split.offset}
            data-length={split.length}
            data-dirty-data={split.dirtyData}
            data-dirty-zero={split.dirtyZero}
            data-dirty-unallocated={split.dirtyUnallocated}
            data-clean-data={split.cleanData}
            style={{ left: Math.min(Math.max(0, hover.x + 12), Math.max(0, width - 320)), top: 26 }}
          >
            <div className="mono">{hex(split.offset)} – {hex(split.offset + split.length - 1)}</div>
            <div className="muted">{preciseBytes(split.offset)} – {preciseBytes(split.offset + split.length)} · {humanBytes(split.length)}</div>
            {OVERLAY_KINDS.map((k) => (
              <div key={k} className="split-line">
                <span className="swatch" style={{ background: cssColor(overlayColor(k, theme)) }} />
                {OVERLAY_LABEL[k]} <strong>{humanBytes(split[k])}</strong> <span className="mono muted">({exact(split[k])})</span>
              </div>
            ))}
            {split.layers.length > 1 && (
              <div className="muted">allocated by: {split.layers.map((n, d) => n > 0 ? `${usableOverlay!.layerNames[d] ?? `layer ${d}`} ${humanBytes(n)}` : null).filter(Boolean).join(' · ') || 'no layer'}</div>
            )}
          </div>
        )}
        {hover && hoverInfo && !split && (
          <div
            className="heat-tooltip"
            role="tooltip"
            data-testid="heat-tooltip"
            data-offset={hoverInfo.offset}
            data-length={hoverInfo.length}
            data-dirty={hoverInfo.dirty}
            style={{ left: Math.min(Math.max(0, hover.x + 12), Math.max(0, width - 300)), top: hover.slot === 'primary' ? 26 : 26 + ROW_HEIGHT + 18 }}
          >
            <div className="mono">{hex(hoverInfo.offset)} – {hex(hoverInfo.offset + hoverInfo.length - 1)}</div>
            <div className="muted">{preciseBytes(hoverInfo.offset)} – {preciseBytes(hoverInfo.offset + hoverInfo.length)} · {humanBytes(hoverInfo.length)}</div>
            <div>
              dirty <strong>{humanBytes(hoverInfo.dirty)}</strong> <span className="mono muted">({exact(hoverInfo.dirty)} bytes)</span> · {percent(hoverInfo.dirty, hoverInfo.length)}
            </div>
          </div>
        )}
        {hover && width > 0 && <div className="heat-hairline" style={{ left: hover.x }} />}
      </div>
      {mode === 'allocation'
        ? <OverlayLegend theme={theme} overlay={usableOverlay} view={view} disk={disk} />
        : <Legend theme={theme} />}
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

/** The cell under the pointer: its byte range (clipped to the disk) and dirty bytes. */
function describeHover(h: Hover, heat: HeatData | null, view: View, width: number, disk: number): { offset: number; length: number; dirty: number } | null {
  if (!heat || !sameView(heat.forView, view)) return null
  const i = sameView(heat.view, view) ? cellAtX(h.x, width, heat.cells) : cellOfOffset(xToOffset(h.x, view, width), heat.view, heat.cells)
  const r = cellRange(heat.view, heat.cells, i)
  return { offset: r.offset, length: Math.min(r.offset + r.length, disk) - r.offset, dirty: heat.counts[i] ?? 0 }
}

function Ruler({ view, width }: { view: View; width: number }): ReactNode {
  const ticks = width > 0 ? rulerTicks(view, width, 96) : []
  return (
    <div className="ruler" aria-hidden="true">
      {ticks.map((t) => (
        <span key={t.offset} className="tick" style={{ left: t.x }}>
          {t.x < width - 64 && <span className="tick-label">{t.label}</span>}
        </span>
      ))}
    </div>
  )
}

function HeatRow({ slot, b, heat, view, disk, width, theme, scanning, overlay = null }: {
  slot: HeatSlot; b: BitmapSummary; heat: HeatData | null; view: View; disk: number; width: number; theme: Theme; scanning: string | undefined
  /** draw the dirty × allocation overlay instead ('pending': not computed yet) */
  overlay?: OverlayData | 'pending' | null
}): ReactNode {
  const canvasRef = useRef<HTMLCanvasElement>(null)
  const usable = heat && heat.bitmapIndex === b.index ? heat : null
  const stale = b.status === 'in-use'
  useEffect(() => {
    const c = canvasRef.current
    if (!c || width <= 0) return
    const dpr = window.devicePixelRatio || 1
    const w = Math.max(1, Math.round(width * dpr))
    const h = Math.round(ROW_HEIGHT * dpr)
    if (c.width !== w) c.width = w
    if (c.height !== h) c.height = h
    const ctx = c.getContext('2d')
    if (!ctx) return
    const img = ctx.createImageData(w, h)
    const missing = parseRgb(cssVar('--heat-missing', ''), theme === 'dark' ? [0x1a, 0x1e, 0x24] : [0xf3, 0xf4, 0xf6])
    const gap = parseRgb(cssVar('--panel', ''), theme === 'dark' ? [0x16, 0x1a, 0x20] : [0xff, 0xff, 0xff])
    if (overlay) paintOverlay(img.data, w, h, overlay === 'pending' ? null : overlay, view, disk, theme, missing)
    else paint(img.data, w, h, usable, view, disk, theme, missing, gap)
    if (stale) hatch(img.data, w, h, theme === 'dark' ? [0x0e, 0x11, 0x15] : [0xff, 0xff, 0xff], 0.55)
    ctx.putImageData(img, 0, 0)
  }, [usable, view, disk, width, theme, overlay, stale])

  const dirtyCells = usable ? usable.counts.reduce((n, x) => n + (x > 0 ? 1 : 0), 0) : 0
  const label = overlay && overlay !== 'pending'
    ? `Dirty × allocation of bitmap ${b.name} from ${hex(view.start)} to ${hex(view.end)}${stale ? ' (stale: in use)' : ''}: each column stacks dirty data, dirty zero and dirty unallocated bytes.`
    : overlay === 'pending'
      ? `Dirty × allocation of bitmap ${b.name}: computing.`
      : usable
        ? `Heatmap of bitmap ${b.name} from ${hex(view.start)} to ${hex(view.end)}${stale ? ' (stale: in use)' : ''}: ${dirtyCells} of ${usable.cells} cells hold dirty data.`
        : `Heatmap of bitmap ${b.name}: ${scanning === 'scanning' ? 'reading its data' : 'no data yet'}.`
  return (
    <div className={stale ? 'heat-row heat-row-stale' : 'heat-row'} data-slot={slot} data-stale={stale ? 'true' : undefined}>
      <div className="heat-row-label small">
        <span className={slot === 'primary' ? 'slot-tag' : 'slot-tag slot-tag-compare'}>{slot === 'primary' ? 'A' : 'B'}</span>
        <span className="mono">{b.name}</span>
        {stale && <span className="badge badge-in-use" title="in_use is set: these are the bits stored at its last clean save">stale</span>}
        {!usable && <span className="muted"> · {scanning === 'scanning' ? 'reading…' : scanning === 'error' ? 'unreadable' : scanning === 'cancelled' ? 'not read' : 'waiting…'}</span>}
      </div>
      <canvas ref={canvasRef} className="heat-canvas" style={{ height: ROW_HEIGHT }} role="img" aria-label={label} data-testid={`heat-canvas-${slot}`} />
    </div>
  )
}

function FocusMark({ offset, length, view, width, rows }: { offset: number; length: number; view: View; width: number; rows: number }): ReactNode {
  const x0 = Math.max(-2, offsetToX(offset, view, width))
  const x1 = Math.min(width + 2, offsetToX(offset + length, view, width))
  if (x1 < 0 || x0 > width) return null
  return <div className="focus-mark" style={{ left: x0 - 1, width: Math.max(3, x1 - x0 + 2), height: rows * (ROW_HEIGHT + 18) }} aria-hidden="true" />
}

function Legend({ theme }: { theme: Theme }): ReactNode {
  const stops: string[] = []
  for (let i = 0; i <= 20; i++) {
    const pos = i / 20
    // invert rampPosition (sqrt): fraction = pos²
    stops.push(`${cssColor(heatColor(Math.max(1e-9, pos * pos), theme))} ${pos * 100}%`)
  }
  return (
    <div className="legend small" aria-label="Colour legend: dirty share of each cell">
      <span className="legend-clean" style={{ background: cssColor(heatColor(0, theme)) }} />
      <span className="muted">clean</span>
      <span className="legend-ramp-wrap">
        <span className="legend-ramp" style={{ background: `linear-gradient(to right, ${stops.join(', ')})` }} />
        {LEGEND_STOPS.map((f) => (
          <span key={f} className="legend-stop" style={{ left: `${rampPosition(f) * 100}%` }}>{f * 100}%</span>
        ))}
      </span>
      <span className="muted">of each cell dirty</span>
    </div>
  )
}

/** Under the overlay: which layer of the backing chain each column's allocation comes from. */
function LayerRow({ overlay, view, disk, width, theme }: { overlay: OverlayData; view: View; disk: number; width: number; theme: Theme }): ReactNode {
  const canvasRef = useRef<HTMLCanvasElement>(null)
  const h = 18
  useEffect(() => {
    const c = canvasRef.current
    if (!c || width <= 0) return
    const dpr = window.devicePixelRatio || 1
    const w = Math.max(1, Math.round(width * dpr))
    const hh = Math.round(h * dpr)
    if (c.width !== w) c.width = w
    if (c.height !== hh) c.height = hh
    const ctx = c.getContext('2d')
    if (!ctx) return
    const img = ctx.createImageData(w, hh)
    const best = dominantLayer(overlay, view, w, disk)
    const none = heatColor(0, theme)
    for (let x = 0; x < w; x++) {
      const col = best[x]! < 0 ? none : layerColor(best[x]!, theme)
      for (let y = 0; y < hh; y++) {
        const i = (y * w + x) * 4
        img.data[i] = col[0]; img.data[i + 1] = col[1]; img.data[i + 2] = col[2]; img.data[i + 3] = 255
      }
    }
    ctx.putImageData(img, 0, 0)
  }, [overlay, view, disk, width, theme])
  return (
    <div className="heat-row" data-slot="layers">
      <div className="heat-row-label small">
        <span className="muted">allocation from:</span>
        {overlay.layerNames.map((n, d) => (
          <span key={n} className="layer-key"><span className="swatch" style={{ background: cssColor(layerColor(d, theme)) }} /><span className="mono">{n}</span></span>
        ))}
      </div>
      <canvas ref={canvasRef} className="heat-canvas" style={{ height: h }} role="img" data-testid="heat-canvas-layers"
        aria-label={`Which layer of the backing chain (${overlay.layerNames.join(' → ')}) allocates each region`} />
    </div>
  )
}

/** The overlay cell under pixel x: its range and bytes per category (and per layer). */
function describeOverlay(x: number, o: OverlayData, view: View, width: number, disk: number): null | {
  offset: number; length: number; dirtyData: number; dirtyZero: number; dirtyUnallocated: number; cleanData: number; layers: number[]
} {
  if (!sameView(o.forView, view)) return null
  const i = sameView(o.view, view) ? cellAtX(x, width, o.cells) : cellOfOffset(xToOffset(x, view, width), o.view, o.cells)
  const r = cellRange(o.view, o.cells, i)
  return {
    offset: r.offset, length: Math.min(r.offset + r.length, disk) - r.offset,
    dirtyData: o.dirtyData[i] ?? 0, dirtyZero: o.dirtyZero[i] ?? 0, dirtyUnallocated: o.dirtyUnallocated[i] ?? 0, cleanData: o.cleanData[i] ?? 0,
    layers: o.layers.map((l) => l[i] ?? 0),
  }
}

function sum(a: Float64Array, from = 0, to = a.length): number {
  let s = 0
  for (let i = from; i < to; i++) s += a[i]!
  return s
}

/** Legend of the overlay, with its totals over the cells on screen. */
function OverlayLegend({ theme, overlay, view, disk }: { theme: Theme; overlay: OverlayData | null; view: View; disk: number }): ReactNode {
  // Totals over the cells that cover the view (the whole disk when the view is the whole disk).
  let first = 0
  let last = 0
  if (overlay && sameView(overlay.forView, view)) {
    first = cellOfOffset(view.start, overlay.view, overlay.cells)
    last = cellOfOffset(Math.max(view.start, Math.min(view.end, disk) - 1), overlay.view, overlay.cells) + 1
  }
  const tot = overlay && last > first
    ? { dirtyData: sum(overlay.dirtyData, first, last), dirtyZero: sum(overlay.dirtyZero, first, last), dirtyUnallocated: sum(overlay.dirtyUnallocated, first, last), cleanData: sum(overlay.cleanData, first, last) }
    : null
  return (
    <div className="legend legend-overlay small" data-testid="overlay-totals"
      {...(tot ? { 'data-dirty-data': tot.dirtyData, 'data-dirty-zero': tot.dirtyZero, 'data-dirty-unallocated': tot.dirtyUnallocated, 'data-clean-data': tot.cleanData } : {})}>
      {OVERLAY_KINDS.map((k) => (
        <span key={k} className="legend-item">
          <span className="swatch" style={{ background: cssColor(overlayColor(k, theme)) }} />
          {OVERLAY_LABEL[k]}{tot && <> <strong>{humanBytes(tot[k])}</strong></>}
        </span>
      ))}
      <span className="legend-item">
        <span className="swatch" style={{ background: cssColor(heatColor(0, theme)) }} />
        clean, unallocated or zero
      </span>
      <span className="muted">{tot ? (sameView(view, { start: 0, end: disk }) ? 'whole disk' : 'in view') : 'computing…'}
        {overlay?.backingMissing !== undefined && <> · backing file <span className="mono">{overlay.backingMissing}</span> is not open: what it holds counts as unallocated (drop it together with this image)</>}
      </span>
    </div>
  )
}

/** The heatmap as a PNG: ruler, one labelled row per bitmap, legend. */
async function renderPng(w: number, view: View, disk: number, rows: Array<{ b: BitmapSummary; heat: HeatData | null }>, theme: Theme): Promise<Blob | null> {
  const rowH = 64
  const labelH = 20
  const rulerH = 22
  const legendH = 28
  const pad = 8
  const h = rulerH + rows.length * (labelH + rowH) + legendH + pad
  const c = document.createElement('canvas')
  c.width = w
  c.height = h
  const ctx = c.getContext('2d')
  if (!ctx) return null
  const bg = cssVar('--panel', theme === 'dark' ? '#161a20' : '#ffffff')
  const fg = cssVar('--text', theme === 'dark' ? '#dbe1e8' : '#1d232b')
  const muted = cssVar('--muted', '#6b7684')
  ctx.fillStyle = bg
  ctx.fillRect(0, 0, w, h)
  ctx.font = '12px ui-monospace, monospace'
  ctx.textBaseline = 'top'
  ctx.fillStyle = muted
  for (const t of rulerTicks(view, w, 110)) {
    ctx.fillRect(Math.round(t.x), rulerH - 6, 1, 6)
    ctx.fillText(t.label, Math.min(w - 60, t.x + 3), 4)
  }
  let y = rulerH
  for (const r of rows) {
    ctx.fillStyle = fg
    ctx.fillText(`${r.b.name} · granularity ${humanBytes(r.b.granularity)} · ${hex(view.start)} – ${hex(view.end)}`, 2, y + 4)
    y += labelH
    const img = ctx.createImageData(w, rowH)
    paint(img.data, w, rowH, r.heat && r.heat.bitmapIndex === r.b.index ? r.heat : null, view, disk, theme, heatColor(0, theme), parseRgb(bg, [255, 255, 255]))
    ctx.putImageData(img, 0, y)
    y += rowH
  }
  // legend
  const lw = Math.min(300, w - 200)
  for (let x = 0; x < lw; x++) {
    const pos = x / lw
    ctx.fillStyle = cssColor(heatColor(Math.max(1e-9, pos * pos), theme))
    ctx.fillRect(60 + x, y + 8, 1, 10)
  }
  ctx.fillStyle = cssColor(heatColor(0, theme))
  ctx.fillRect(2, y + 8, 14, 10)
  ctx.fillStyle = muted
  ctx.fillText('clean', 20, y + 7)
  ctx.fillText('0% → 100% of each cell dirty', 68 + lw, y + 7)
  return new Promise((resolve) => c.toBlob(resolve, 'image/png'))
}
