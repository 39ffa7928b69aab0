/**
 * The strip's gestures: wheel zooms around the pointer (ctrl+wheel is a trackpad pinch) and a
 * horizontal or shift wheel pans; drag pans; two pointers pinch; double-click zooms in (shift:
 * out); keys + − zoom, arrows pan (shift: by half a view), 0 and Home show the whole disk.
 */
import { useCallback, useEffect, useRef, type RefObject } from 'react'
import type { AppActions, AppStore } from '../store/app-store.js'
import { type View, viewSpan, xToOffset } from './geometry.js'

/** Zoom factor of one step (buttons, keys): half the span. */
export const ZOOM_STEP = 0.5

/** Where the pointer is over the strip: which row, and x in CSS pixels. */
export interface StripHover {
  slot: 'primary' | 'compare' | 'layers'
  x: number
}

/** The strip's pointer, wheel and key handlers (the wheel is attached to `areaRef` directly: it must not be passive). */
export function useStripGestures(areaRef: RefObject<HTMLDivElement | null>, actions: AppActions, storeApi: AppStore, onHover: (h: StripHover | null) => void, deps: readonly unknown[]): {
  onPointerDown: (e: React.PointerEvent<HTMLDivElement>) => void
  onPointerMove: (e: React.PointerEvent<HTMLDivElement>) => void
  onPointerUp: (e: React.PointerEvent<HTMLDivElement>) => void
  onPointerLeave: () => void
  onDoubleClick: (e: React.MouseEvent<HTMLDivElement>) => void
  onKeyDown: (e: React.KeyboardEvent<HTMLDivElement>) => void
} {
  const drag = useRef<{ x: number; view: View; moved: boolean } | null>(null)
  const pointers = useRef(new Map<number, number>())
  const pinch = useRef<{ dist: number; view: View } | null>(null)

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
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [actions, storeApi, ...deps])

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
    const slot = (e.target as HTMLElement).closest('[data-slot]')?.getAttribute('data-slot') as StripHover['slot'] | null
    onHover(slot ? { slot, x: e.clientX - rect.left } : null)
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
  }, [actions, areaRef, onHover])

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
  }, [actions, areaRef, storeApi])

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

  const onPointerLeave = useCallback(() => onHover(null), [onHover])

  return { onPointerDown, onPointerMove, onPointerUp, onPointerLeave, onDoubleClick, onKeyDown }
}
