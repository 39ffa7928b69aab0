/**
 * The one canvas set-up of the strip, the map and the comparison row: size a canvas for the
 * device pixel ratio, paint an ImageData and put it back; measure an element's width; read the
 * theme's canvas colours from the page's CSS custom properties.
 */
import { useLayoutEffect, useState, type RefObject } from 'react'
import { cssVar } from '../theme.js'
import { CANVAS_DEFAULTS, CANVAS_VARS, type CanvasColors, type Theme, parseCssColor } from './colors.js'

/** Device pixels per CSS pixel (1 where the page has no window). */
export function devicePixelRatioNow(): number {
  return typeof window !== 'undefined' ? window.devicePixelRatio || 1 : 1
}

/**
 * Size `canvas` to cssWidth×cssHeight CSS pixels in device pixels, let `fill` paint its pixels
 * (an ImageData of that size, opaque black to start with), put them back. Returns the size in
 * device pixels, or null when there is nothing to paint.
 */
export function paintCanvas(canvas: HTMLCanvasElement | null, cssWidth: number, cssHeight: number, fill: (img: ImageData) => void): { width: number; height: number } | null {
  if (!canvas || cssWidth <= 0 || cssHeight <= 0) return null
  const dpr = devicePixelRatioNow()
  const width = Math.max(1, Math.round(cssWidth * dpr))
  const height = Math.max(1, Math.round(cssHeight * dpr))
  if (canvas.width !== width) canvas.width = width
  if (canvas.height !== height) canvas.height = height
  const ctx = canvas.getContext('2d')
  if (!ctx) return null
  const img = ctx.createImageData(width, height)
  fill(img)
  ctx.putImageData(img, 0, 0)
  return { width, height }
}

/** The width of an element in CSS pixels, kept up to date (0 before the first layout). */
export function useWidth(ref: RefObject<HTMLElement | null>, deps: readonly unknown[] = []): number {
  const [width, setWidth] = useState(0)
  useLayoutEffect(() => {
    const el = ref.current
    if (!el) return
    const update = (): void => setWidth(Math.floor(el.clientWidth))
    update()
    const ro = new ResizeObserver(update)
    ro.observe(el)
    return () => ro.disconnect()
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps)
  return width
}

/** The theme's canvas colours from the page's CSS custom properties (styles.css). */
export function canvasColors(theme: Theme): CanvasColors {
  const out = { ...CANVAS_DEFAULTS[theme] }
  for (const k of Object.keys(CANVAS_VARS) as Array<keyof CanvasColors>) {
    const c = parseCssColor(cssVar(CANVAS_VARS[k], ''))
    if (c) out[k] = c
  }
  return out
}

/** The size of an element in CSS pixels, kept up to date ({0, 0} before the first layout). */
export function useSize(ref: RefObject<HTMLElement | null>, deps: readonly unknown[] = []): { width: number; height: number } {
  const [size, setSize] = useState({ width: 0, height: 0 })
  useLayoutEffect(() => {
    const el = ref.current
    if (!el) return
    const update = (): void => setSize((s) => {
      const width = Math.floor(el.clientWidth)
      const height = Math.floor(el.clientHeight)
      return s.width === width && s.height === height ? s : { width, height }
    })
    update()
    const ro = new ResizeObserver(update)
    ro.observe(el)
    return () => ro.disconnect()
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps)
  return size
}
