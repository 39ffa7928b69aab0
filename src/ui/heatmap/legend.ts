/**
 * The one legend of the strip and the map, as data: the dirty ramp (colour stops and the
 * labelled fractions) and the dirty × allocation classes. Legend.tsx draws it on the page,
 * export-png.ts into a PNG, so both always agree with colors.ts.
 */
import { LEGEND_STOPS, OVERLAY_KINDS, OVERLAY_LABEL, type OverlayKind, type Rgb, type Theme, heatColor, rampPosition } from './colors.js'

/** Colours along the dirty ramp: position 0..1 across the legend bar → colour. */
export function rampStops(theme: Theme, steps = 20): Array<{ pos: number; color: Rgb }> {
  const out: Array<{ pos: number; color: Rgb }> = []
  for (let i = 0; i <= steps; i++) {
    const pos = i / steps
    // rampPosition is the square root of the fraction: the fraction at pos is pos².
    out.push({ pos, color: heatColor(Math.max(1e-9, pos * pos), theme) })
  }
  return out
}

/** The labelled fractions and where they sit on the bar (0..1). */
export function rampLabels(): Array<{ pos: number; label: string }> {
  return LEGEND_STOPS.map((f) => ({ pos: rampPosition(f), label: `${f * 100}%` }))
}

/** The clean colour's words on the dirty legend. */
export const CLEAN_LABEL = 'clean'
/** The clean colour's words on the overlay legend. */
export const OVERLAY_CLEAN_LABEL = 'clean, unallocated or zero'
/** The words after the ramp. */
export const RAMP_CAPTION = 'of each cell dirty'

/** The overlay's classes in legend order, with their words. */
export function overlayKeys(): Array<{ kind: OverlayKind; label: string }> {
  return OVERLAY_KINDS.map((kind) => ({ kind, label: OVERLAY_LABEL[kind] }))
}
