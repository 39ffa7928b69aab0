/**
 * Heatmap colours: a cell's dirty fraction → RGB. Clean cells take the track colour; any dirty
 * byte is visibly coloured (a backup reads the whole granule), and the ramp follows the square
 * root of the fraction so that lightly dirty regions still stand apart from clean ones.
 */

export type Theme = 'light' | 'dark'
/** An sRGB colour, 0..255 per channel. */
export type Rgb = readonly [number, number, number]

interface Palette {
  clean: Rgb
  ramp: readonly Rgb[]
}

const PALETTES: Record<Theme, Palette> = {
  light: {
    clean: [0xe6, 0xea, 0xef],
    ramp: [[0xff, 0xd8, 0xa8], [0xff, 0xa9, 0x4d], [0xf0, 0x6a, 0x1c], [0xc2, 0x2f, 0x0c], [0x7a, 0x1a, 0x06]],
  },
  dark: {
    clean: [0x23, 0x29, 0x31],
    ramp: [[0x6b, 0x3a, 0x14], [0xa8, 0x51, 0x12], [0xe0, 0x70, 0x1c], [0xff, 0xa8, 0x3a], [0xff, 0xe0, 0x8a]],
  },
}

/** Where on the ramp (0..1) a dirty fraction lands; 0 only for a clean cell. */
export function rampPosition(fraction: number): number {
  if (!(fraction > 0)) return 0
  return Math.min(1, Math.sqrt(fraction))
}

/** Colour of a cell with this dirty fraction. */
export function heatColor(fraction: number, theme: Theme): Rgb {
  const p = PALETTES[theme]
  if (!(fraction > 0)) return p.clean
  const t = rampPosition(fraction) * (p.ramp.length - 1)
  const i = Math.min(p.ramp.length - 2, Math.floor(t))
  const f = t - i
  const a = p.ramp[i]!
  const b = p.ramp[i + 1]!
  return [
    Math.round(a[0] + (b[0] - a[0]) * f),
    Math.round(a[1] + (b[1] - a[1]) * f),
    Math.round(a[2] + (b[2] - a[2]) * f),
  ]
}

/** A colour as CSS text. */
export function cssColor(c: Rgb): string {
  return `rgb(${c[0]} ${c[1]} ${c[2]})`
}

/** Fractions labelled on the legend. */
export const LEGEND_STOPS = [0.01, 0.1, 0.25, 0.5, 1] as const

/** The dirty × allocation overlay's categories, in drawing order (bottom first). */
export type OverlayKind = 'dirtyData' | 'dirtyZero' | 'dirtyUnallocated' | 'cleanData'

/** The overlay's categories in drawing order. */
export const OVERLAY_KINDS: readonly OverlayKind[] = ['dirtyData', 'dirtyZero', 'dirtyUnallocated', 'cleanData']

/** The overlay's categories in words. */
export const OVERLAY_LABEL: Record<OverlayKind, string> = {
  dirtyData: 'dirty and data',
  dirtyZero: 'dirty but reads as zero',
  dirtyUnallocated: 'dirty but unallocated',
  cleanData: 'clean, allocated data',
}

const OVERLAY_PALETTES: Record<Theme, Record<OverlayKind, Rgb>> = {
  light: { dirtyData: [0xc2, 0x41, 0x0c], dirtyZero: [0x1d, 0x5f, 0xd6], dirtyUnallocated: [0x8b, 0x3f, 0xc8], cleanData: [0xc3, 0xcc, 0xd6] },
  dark: { dirtyData: [0xff, 0x8c, 0x42], dirtyZero: [0x5a, 0xa2, 0xff], dirtyUnallocated: [0xc0, 0x8b, 0xff], cleanData: [0x3a, 0x44, 0x50] },
}

/** Colour of an overlay category. */
export function overlayColor(kind: OverlayKind, theme: Theme): Rgb {
  return OVERLAY_PALETTES[theme][kind]
}

/** Colours of the backing-chain layers (depth 0 = the image itself). */
const LAYER_COLORS: Record<Theme, readonly Rgb[]> = {
  light: [[0x0b, 0x5f, 0xc4], [0x15, 0x8a, 0x4a], [0xb8, 0x7a, 0x00], [0x9c, 0x36, 0xb5], [0x5c, 0x67, 0x73]],
  dark: [[0x5a, 0xa2, 0xff], [0x5f, 0xd0, 0x8a], [0xf2, 0xc0, 0x63], [0xd0, 0x8b, 0xf0], [0x9a, 0xa5, 0xb1]],
}

/** Colour of a layer of the backing chain. */
export function layerColor(depth: number, theme: Theme): Rgb {
  const l = LAYER_COLORS[theme]
  return l[Math.min(depth, l.length - 1)]!
}

/**
 * The page colours a canvas needs (the theme's CSS custom properties, read by theme.ts's
 * canvasColors): background, text, the "no data yet" colour, the stale stripes and the outline.
 * These values mirror styles.css and are used only where the document has no styles (tests).
 */
export interface CanvasColors {
  /** --panel: behind the cells, and the gaps between granule cells */
  panel: Rgb
  /** --text */
  text: Rgb
  /** --muted: ruler and legend labels */
  muted: Rgb
  /** --heat-missing: cells whose counts have not arrived */
  missing: Rgb
  /** --stale-stripe: the stripes over an in-use bitmap's stale bits */
  stripe: Rgb
  /** --accent: the strip's view outlined on the map */
  accent: Rgb
}

/** The CSS custom property behind each canvas colour. */
export const CANVAS_VARS: Record<keyof CanvasColors, string> = {
  panel: '--panel', text: '--text', muted: '--muted', missing: '--heat-missing', stripe: '--stale-stripe', accent: '--accent',
}

/** styles.css's values, for a document without styles. */
export const CANVAS_DEFAULTS: Record<Theme, CanvasColors> = {
  light: { panel: [0xff, 0xff, 0xff], text: [0x1d, 0x23, 0x2b], muted: [0x5a, 0x64, 0x70], missing: [0xf1, 0xf3, 0xf5], stripe: [0xff, 0xff, 0xff], accent: [0x0b, 0x5f, 0xc4] },
  dark: { panel: [0x16, 0x1a, 0x20], text: [0xdd, 0xe3, 0xea], muted: [0x9a, 0xa5, 0xb1], missing: [0x1a, 0x1e, 0x24], stripe: [0x0e, 0x11, 0x15], accent: [0x5a, 0xa2, 0xff] },
}

/** '#rgb', '#rrggbb' or 'rgb(r g b)' / 'rgb(r, g, b)' → Rgb; null for anything else. */
export function parseCssColor(css: string): Rgb | null {
  const t = css.trim()
  let m = /^#([0-9a-f]{6})$/i.exec(t)
  if (m) {
    const n = parseInt(m[1]!, 16)
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255]
  }
  m = /^#([0-9a-f]{3})$/i.exec(t)
  if (m) {
    const [r, g, b] = [...m[1]!].map((c) => parseInt(c + c, 16))
    return [r!, g!, b!]
  }
  const f = /^rgba?\(\s*(\d+)[\s,]+(\d+)[\s,]+(\d+)/i.exec(t)
  return f ? [Number(f[1]), Number(f[2]), Number(f[3])] : null
}

/** An RGB colour as one opaque RGBA pixel in a Uint32Array over ImageData (little-endian). */
export function packRgb(c: Rgb): number {
  return ((255 << 24) | (c[2] << 16) | (c[1] << 8) | c[0]) >>> 0
}

/** Entries of the dirty-fraction lookup table (index 0: clean). */
export const HEAT_LUT_SIZE = 1024

/** The dirty ramp as packed pixels: index 0 clean, index k > 0 ramp position k/(size-1). */
export function heatLut(theme: Theme): Uint32Array {
  const lut = new Uint32Array(HEAT_LUT_SIZE)
  lut[0] = packRgb(heatColor(0, theme))
  for (let k = 1; k < HEAT_LUT_SIZE; k++) {
    const pos = k / (HEAT_LUT_SIZE - 1)
    lut[k] = packRgb(heatColor(Math.max(1e-12, pos * pos), theme))
  }
  return lut
}

/** Index into heatLut for a dirty fraction: 0 only for a clean cell, ≥ 1 for any dirty byte. */
export function heatLutIndex(fraction: number): number {
  if (!(fraction > 0)) return 0
  return Math.max(1, Math.min(HEAT_LUT_SIZE - 1, Math.ceil(rampPosition(fraction) * (HEAT_LUT_SIZE - 1))))
}

/** `a` moved towards `b` by t (0..1). */
export function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [Math.round(a[0] + (b[0] - a[0]) * t), Math.round(a[1] + (b[1] - a[1]) * t), Math.round(a[2] + (b[2] - a[2]) * t)]
}
