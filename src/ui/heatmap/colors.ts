/**
 * Heatmap colours: a cell's dirty fraction → RGB. Clean cells take the track colour; any dirty
 * byte is visibly coloured (a backup reads the whole granule), and the ramp follows the square
 * root of the fraction so that lightly dirty regions still stand apart from clean ones.
 */

export type Theme = 'light' | 'dark'
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

export function cssColor(c: Rgb): string {
  return `rgb(${c[0]} ${c[1]} ${c[2]})`
}

/** Fractions labelled on the legend. */
export const LEGEND_STOPS = [0.01, 0.1, 0.25, 0.5, 1] as const

/** The dirty × allocation overlay's categories, in drawing order (bottom first). */
export type OverlayKind = 'dirtyData' | 'dirtyZero' | 'dirtyUnallocated' | 'cleanData'

export const OVERLAY_KINDS: readonly OverlayKind[] = ['dirtyData', 'dirtyZero', 'dirtyUnallocated', 'cleanData']

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

export function overlayColor(kind: OverlayKind, theme: Theme): Rgb {
  return OVERLAY_PALETTES[theme][kind]
}

/** Colours of the backing-chain layers (depth 0 = the image itself). */
const LAYER_COLORS: Record<Theme, readonly Rgb[]> = {
  light: [[0x0b, 0x5f, 0xc4], [0x15, 0x8a, 0x4a], [0xb8, 0x7a, 0x00], [0x9c, 0x36, 0xb5], [0x5c, 0x67, 0x73]],
  dark: [[0x5a, 0xa2, 0xff], [0x5f, 0xd0, 0x8a], [0xf2, 0xc0, 0x63], [0xd0, 0x8b, 0xf0], [0x9a, 0xa5, 0xb1]],
}

export function layerColor(depth: number, theme: Theme): Rgb {
  const l = LAYER_COLORS[theme]
  return l[Math.min(depth, l.length - 1)]!
}
