/**
 * Painting the map: map cells → pixels of one pane (a Uint32Array over an ImageData). Each cell
 * is a square of cellPx device pixels at its place in the grid (cellOrigins); granule cells
 * drawn 6 px or larger keep a 1-pixel gap so single granules stand apart. Colours: the dirty
 * ramp (colors.ts), or per cell the dominant dirty × allocation class, stronger the dirtier.
 */
import {
  type CanvasColors, type OverlayKind, type Rgb, type Theme, HEAT_LUT_SIZE, heatLut, heatLutIndex, mix, overlayColor, packRgb, rampPosition,
} from '../colors.js'
import type { MapGrid } from './layout.js'

/** Cells this many device pixels wide or more are drawn with a gap. */
export const GAP_FROM_PX = 6

/** Packed colours for one paint. */
export interface MapPalette {
  lut: Uint32Array
  /** behind the grid, past the disk's end, and in the gaps */
  panel: number
  /** a cell whose counts are not known yet */
  missing: number
  /** overlay: [kind][level] packed, level 0..OVERLAY_LEVELS-1 */
  overlay: Uint32Array
  clean: number
}

/** Intensity levels per overlay class. */
export const OVERLAY_LEVELS = 64
const OVERLAY_ORDER: OverlayKind[] = ['dirtyData', 'dirtyZero', 'dirtyUnallocated', 'cleanData']

/** The packed colours of `theme` with the page's canvas colours. */
export function mapPalette(theme: Theme, colors: CanvasColors): MapPalette {
  const lut = heatLut(theme)
  const cleanRgb: Rgb = [lut[0]! & 255, (lut[0]! >>> 8) & 255, (lut[0]! >>> 16) & 255]
  const overlay = new Uint32Array(OVERLAY_ORDER.length * OVERLAY_LEVELS)
  OVERLAY_ORDER.forEach((kind, k) => {
    for (let l = 0; l < OVERLAY_LEVELS; l++) {
      // A dirty class shows from a third of its colour up; clean data stays faint.
      const t = kind === 'cleanData' ? 0.25 + 0.45 * (l / (OVERLAY_LEVELS - 1)) : 0.35 + 0.65 * (l / (OVERLAY_LEVELS - 1))
      overlay[k * OVERLAY_LEVELS + l] = packRgb(mix(cleanRgb, overlayColor(kind, theme), t))
    }
  })
  return { lut, panel: packRgb(colors.panel), missing: packRgb(colors.missing), overlay, clean: lut[0]! }
}

function fillCell(px: Uint32Array, width: number, origin: number, s: number, color: number, gap: number, withGap: boolean): void {
  if (s === 1) { px[origin] = color; return }
  const inner = withGap ? s - 1 : s
  for (let y = 0; y < s; y++) {
    const row = origin + y * width
    if (withGap && y === s - 1) { px.fill(gap, row, row + s); continue }
    px.fill(color, row, row + inner)
    if (withGap) px[row + s - 1] = gap
  }
}

/** Pick the packed colour of each cell; `colorOf(i)` answers for cells 0..count-1. */
function paintCells(px: Uint32Array, width: number, g: MapGrid, origins: Uint32Array, pal: MapPalette, colorOf: (i: number) => number): void {
  px.fill(pal.panel)
  const s = g.cellPx
  if (s === 1) {
    for (let i = 0; i < g.count; i++) px[origins[i]!] = colorOf(i)
    return
  }
  const withGap = s >= GAP_FROM_PX
  for (let i = 0; i < g.count; i++) fillCell(px, width, origins[i]!, s, colorOf(i), pal.panel, withGap)
}

/** The dirty map: each cell in the ramp colour of its dirty share (NaN: not known yet). */
export function paintDirty(px: Uint32Array, width: number, g: MapGrid, origins: Uint32Array, shares: Float32Array | null, pal: MapPalette): void {
  if (shares && g.cellPx === 1) {
    // One pixel per cell (the whole-disk view of a big disk): the hot loop, kept flat.
    const { lut, missing } = pal
    const top = HEAT_LUT_SIZE - 1
    px.fill(pal.panel)
    for (let i = 0; i < g.count; i++) {
      const f = shares[i]!
      px[origins[i]!] = f !== f ? missing : f > 0 ? lut[Math.max(1, Math.min(top, Math.ceil(Math.sqrt(f) * top)))]! : lut[0]!
    }
    return
  }
  paintCells(px, width, g, origins, pal, shares
    ? (i) => { const f = shares[i]!; return Number.isNaN(f) ? pal.missing : pal.lut[heatLutIndex(f)]! }
    : () => pal.missing)
}

/** Which overlay colour a cell takes, from its shares of dirty data, zero, unallocated and clean data. */
export function overlayLevel(dd: number, dz: number, du: number, cd: number): { kind: OverlayKind | null; level: number } {
  const dirty = dd + dz + du
  if (dirty > 0) {
    const kind: OverlayKind = dd >= dz && dd >= du ? 'dirtyData' : dz >= du ? 'dirtyZero' : 'dirtyUnallocated'
    return { kind, level: Math.round(rampPosition(Math.min(1, dirty)) * (OVERLAY_LEVELS - 1)) }
  }
  if (cd > 0) return { kind: 'cleanData', level: Math.round(Math.min(1, cd) * (OVERLAY_LEVELS - 1)) }
  return { kind: null, level: 0 }
}

/** The overlay map: shares = [dirtyData, dirtyZero, dirtyUnallocated, cleanData]. */
export function paintOverlayMap(px: Uint32Array, width: number, g: MapGrid, origins: Uint32Array, shares: Float32Array[] | null, pal: MapPalette): void {
  if (!shares) { paintCells(px, width, g, origins, pal, () => pal.missing); return }
  const [dd, dz, du, cd] = shares as [Float32Array, Float32Array, Float32Array, Float32Array]
  paintCells(px, width, g, origins, pal, (i) => {
    if (Number.isNaN(dd[i]!)) return pal.missing
    const { kind, level } = overlayLevel(dd[i]!, dz[i]!, du[i]!, cd[i]!)
    return kind === null ? pal.clean : pal.overlay[OVERLAY_ORDER.indexOf(kind) * OVERLAY_LEVELS + level]!
  })
}
