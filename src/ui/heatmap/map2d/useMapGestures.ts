/**
 * The map's gestures, over all its panes (each pane is an element with `data-pane`):
 *  - wheel (or ctrl+wheel, a trackpad pinch) zooms one step per notch around the pointer;
 *    shift+wheel scrolls rows;
 *  - mouse drag draws a rectangle, a click picks a row: the strip then shows those bytes;
 *  - shift+drag or middle-button drag scrolls; one finger scrolls, two fingers pinch-zoom;
 *  - double-click zooms in (shift: out);
 *  - keys: + − zoom, ↑ ↓ scroll a row, PageUp PageDown a page, 0 and Home the whole disk,
 *    E the extents list.
 * Every step is noted (noteMapInput) so the repaint it causes is timed.
 */
import { useCallback, useEffect, useRef, useState, type RefObject } from 'react'
import type { AppActions, AppStore } from '../../store/app-store.js'
import { currentMapGrid, type MapSlot } from '../../store/map.js'
import { type MapGrid, hitCell, rectRange, rowRange } from './layout.js'
import { noteMapInput } from './painter.js'
import { devicePixelRatioNow } from '../canvas.js'

/** Wheel movement (pixels) per zoom step. */
const WHEEL_STEP = 100
/** Pinch ratio per zoom step. */
const PINCH_STEP = 1.5

/** Where the pointer is: which pane, CSS pixels in the map area, device pixels in the pane, the cell. */
export interface MapHover {
  slot: MapSlot
  areaX: number
  areaY: number
  cell: number
}

/** A rectangle being dragged, in device pixels of its pane. */
export interface MapDrag {
  slot: MapSlot
  x0: number
  y0: number
  x1: number
  y1: number
}

interface PanePoint {
  slot: MapSlot
  /** device pixels inside the pane's canvas */
  x: number
  y: number
  areaX: number
  areaY: number
}

/** The pane under a client point and the point in its device pixels. */
function panePoint(area: HTMLElement, target: EventTarget | null, clientX: number, clientY: number): PanePoint | null {
  const pane = (target as HTMLElement | null)?.closest?.('[data-pane]') as HTMLElement | null
  const canvas = pane?.querySelector('canvas')
  if (!pane || !canvas) return null
  const r = canvas.getBoundingClientRect()
  const a = area.getBoundingClientRect()
  const sx = r.width > 0 ? canvas.width / r.width : 1
  const sy = r.height > 0 ? canvas.height / r.height : 1
  return { slot: pane.dataset.pane as MapSlot, x: (clientX - r.left) * sx, y: (clientY - r.top) * sy, areaX: clientX - a.left, areaY: clientY - a.top }
}

/** Device pixels of a client point in pane `slot` (the pointer may be captured elsewhere). */
function pointIn(area: HTMLElement, slot: MapSlot, clientX: number, clientY: number): { x: number; y: number } | null {
  const canvas = area.querySelector(`[data-pane="${slot}"] canvas`) as HTMLCanvasElement | null
  if (!canvas) return null
  const r = canvas.getBoundingClientRect()
  return { x: (clientX - r.left) * (r.width > 0 ? canvas.width / r.width : 1), y: (clientY - r.top) * (r.height > 0 ? canvas.height / r.height : 1) }
}

/** The map's handlers for its area, the pointer's place (for the tooltip) and the rectangle being dragged. */
export function useMapGestures(areaRef: RefObject<HTMLDivElement | null>, actions: AppActions, storeApi: AppStore, focusExtents: () => void, deps: readonly unknown[]): {
  hover: MapHover | null
  drag: MapDrag | null
  handlers: {
    onPointerDown: (e: React.PointerEvent<HTMLDivElement>) => void
    onPointerMove: (e: React.PointerEvent<HTMLDivElement>) => void
    onPointerUp: (e: React.PointerEvent<HTMLDivElement>) => void
    onPointerCancel: (e: React.PointerEvent<HTMLDivElement>) => void
    onPointerLeave: () => void
    onDoubleClick: (e: React.MouseEvent<HTMLDivElement>) => void
    onKeyDown: (e: React.KeyboardEvent<HTMLDivElement>) => void
  }
} {
  const [hover, setHover] = useState<MapHover | null>(null)
  const [drag, setDrag] = useState<MapDrag | null>(null)
  const wheel = useRef({ zoom: 0, pan: 0 })
  const press = useRef<{ kind: 'rect' | 'pan'; p: PanePoint; moved: boolean; lastBand: number } | null>(null)
  const touches = useRef(new Map<number, { x: number; y: number }>())
  const pinch = useRef<{ dist: number; slot: MapSlot } | null>(null)

  const grid = useCallback((): MapGrid | null => currentMapGrid(storeApi.getState()), [storeApi])
  const zoom = useCallback((dir: -1 | 1, x?: number, y?: number) => { noteMapInput(); actions.mapZoom(dir, x, y) }, [actions])
  const pan = useCallback((bands: number) => { if (bands !== 0) { noteMapInput(); actions.mapPan(bands) } }, [actions])

  useEffect(() => {
    const el = areaRef.current
    if (!el) return
    const onWheel = (e: WheelEvent): void => {
      const p = panePoint(el, e.target, e.clientX, e.clientY)
      if (!p) return
      e.preventDefault()
      const unit = e.deltaMode === 1 ? 40 : e.deltaMode === 2 ? 800 : 1
      const w = wheel.current
      if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
        w.pan += (e.deltaY || e.deltaX) * unit
        const bands = Math.trunc(w.pan / (WHEEL_STEP / 2))
        if (bands !== 0) { w.pan -= bands * (WHEEL_STEP / 2); pan(bands) }
        return
      }
      w.zoom += e.deltaY * unit * (e.ctrlKey ? 4 : 1)
      while (Math.abs(w.zoom) >= WHEEL_STEP) {
        const dir = w.zoom > 0 ? 1 : -1
        w.zoom -= dir * WHEEL_STEP
        zoom(dir, p.x, p.y)
      }
    }
    el.addEventListener('wheel', onWheel, { passive: false })
    return () => el.removeEventListener('wheel', onWheel)
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [zoom, pan, ...deps])

  const onPointerDown = useCallback((e: React.PointerEvent<HTMLDivElement>) => {
    const el = areaRef.current
    const p = el && panePoint(el, e.target, e.clientX, e.clientY)
    if (!p) return
    el.setPointerCapture?.(e.pointerId)
    if (e.pointerType === 'touch') {
      touches.current.set(e.pointerId, { x: e.clientX, y: e.clientY })
      if (touches.current.size === 2) {
        const [a, b] = [...touches.current.values()]
        pinch.current = { dist: Math.hypot(a!.x - b!.x, a!.y - b!.y), slot: press.current?.p.slot ?? p.slot }
        press.current = null
        return
      }
    }
    const panning = e.pointerType === 'touch' || e.button === 1 || e.shiftKey
    if (!panning && e.button !== 0) return
    press.current = { kind: panning ? 'pan' : 'rect', p, moved: false, lastBand: 0 }
  }, [areaRef])

  const onPointerMove = useCallback((e: React.PointerEvent<HTMLDivElement>) => {
    const el = areaRef.current
    if (!el) return
    const p = panePoint(el, e.target, e.clientX, e.clientY)
    const g = grid()
    setHover(p && g ? { slot: p.slot, areaX: p.areaX, areaY: p.areaY, cell: hitCell(g, p.x, p.y) } : null)
    if (touches.current.has(e.pointerId)) touches.current.set(e.pointerId, { x: e.clientX, y: e.clientY })
    if (pinch.current && touches.current.size === 2) {
      const [a, b] = [...touches.current.values()]
      const dist = Math.hypot(a!.x - b!.x, a!.y - b!.y)
      const ratio = dist / Math.max(1, pinch.current.dist)
      const mid = pointIn(el, pinch.current.slot, (a!.x + b!.x) / 2, (a!.y + b!.y) / 2)
      if ((ratio >= PINCH_STEP || ratio <= 1 / PINCH_STEP) && mid) {
        pinch.current.dist = dist
        zoom(ratio > 1 ? -1 : 1, mid.x, mid.y)
      }
      return
    }
    const d = press.current
    if (!d || !g) return
    // Moves are measured in the pane where the press began (the pointer is captured).
    const at = pointIn(el, d.p.slot, e.clientX, e.clientY)
    if (!at) return
    const { x, y } = at
    if (Math.abs(x - d.p.x) + Math.abs(y - d.p.y) > 4 * devicePixelRatioNow()) d.moved = true
    if (!d.moved) return
    if (d.kind === 'rect') {
      setDrag({ slot: d.p.slot, x0: d.p.x, y0: d.p.y, x1: x, y1: y })
      return
    }
    const bandPx = g.cellPx * (g.order === 'rows' ? 1 : g.tile)
    const band = Math.trunc((d.p.y - y) / bandPx)
    if (band !== d.lastBand) {
      pan(band - d.lastBand)
      d.lastBand = band
    }
  }, [areaRef, grid, pan, zoom])

  const endPress = useCallback((e: React.PointerEvent<HTMLDivElement>, commit: boolean) => {
    touches.current.delete(e.pointerId)
    if (touches.current.size < 2) pinch.current = null
    const d = press.current
    press.current = null
    setDrag(null)
    const g = grid()
    if (!d || !g || !commit || d.kind !== 'rect') return
    const s = g.cellPx
    if (d.moved) {
      const at = areaRef.current && pointIn(areaRef.current, d.p.slot, e.clientX, e.clientY)
      if (!at) return
      const { x, y } = at
      const range = rectRange(g, Math.floor(d.p.x / s), Math.floor(d.p.y / s), Math.floor(x / s), Math.floor(y / s))
      if (range) actions.setView(range)
      return
    }
    const row = rowRange(g, Math.floor(d.p.y / s))
    if (row && hitCell(g, d.p.x, d.p.y) >= 0) actions.setView(row)
  }, [actions, areaRef, grid])

  const onPointerUp = useCallback((e: React.PointerEvent<HTMLDivElement>) => endPress(e, true), [endPress])
  const onPointerCancel = useCallback((e: React.PointerEvent<HTMLDivElement>) => endPress(e, false), [endPress])
  const onPointerLeave = useCallback(() => setHover(null), [])

  const onDoubleClick = useCallback((e: React.MouseEvent<HTMLDivElement>) => {
    const el = areaRef.current
    const p = el && panePoint(el, e.target, e.clientX, e.clientY)
    if (p) zoom(e.shiftKey ? 1 : -1, p.x, p.y)
  }, [areaRef, zoom])

  const onKeyDown = useCallback((e: React.KeyboardEvent<HTMLDivElement>) => {
    const g = grid()
    const page = g ? Math.max(1, Math.floor((g.order === 'rows' ? g.rows : g.rows / g.tile) * 0.9)) : 1
    let handled = true
    switch (e.key) {
      case '+': case '=': zoom(-1); break
      case '-': case '_': zoom(1); break
      case 'ArrowUp': pan(-1); break
      case 'ArrowDown': pan(1); break
      case 'PageUp': pan(-page); break
      case 'PageDown': pan(page); break
      case 'Home': case '0': noteMapInput(); actions.mapReset(); break
      case 'e': case 'E': focusExtents(); break
      default: handled = false
    }
    if (handled) e.preventDefault()
  }, [actions, focusExtents, grid, pan, zoom])

  return { hover, drag, handlers: { onPointerDown, onPointerMove, onPointerUp, onPointerCancel, onPointerLeave, onDoubleClick, onKeyDown } }
}
