/**
 * The one PNG export of the strip and the map: a title, caption lines (what a cell covers, the
 * range shown), each picture with its label and its scale (byte offsets along the top of a
 * strip, along the left of a map), and the legend (legend.ts) — all in the theme's colours.
 */
import { type CanvasColors, type Rgb, type Theme, cssColor, heatColor, overlayColor } from './colors.js'
import { CLEAN_LABEL, OVERLAY_CLEAN_LABEL, RAMP_CAPTION, overlayKeys, rampLabels, rampStops } from './legend.js'

/** One picture of the export. */
export interface PngPanel {
  /** the line above the picture */
  label: string
  /** its pixels */
  image: ImageData
  /** offsets along its left edge (a map's rows): y in the picture, text */
  leftLabels?: Array<{ y: number; text: string }>
  /** offsets along its top edge (a strip): x in the picture, text */
  topTicks?: Array<{ x: number; text: string }>
}

/** What to export. */
export interface PngSpec {
  title: string
  /** caption lines under the title: the scale in words */
  lines: string[]
  panels: PngPanel[]
  legend: 'dirty' | 'overlay'
  theme: Theme
  colors: CanvasColors
}

const PAD = 12
const LINE = 16
const FONT = '12px ui-monospace, "DejaVu Sans Mono", monospace'
const TITLE_FONT = '600 14px system-ui, "DejaVu Sans", sans-serif'

/** Pixels left of the pictures for the left labels (0 when no panel has any). */
function leftMargin(ctx: CanvasRenderingContext2D, panels: PngPanel[]): number {
  let w = 0
  for (const p of panels) for (const l of p.leftLabels ?? []) w = Math.max(w, ctx.measureText(l.text).width)
  return w > 0 ? Math.ceil(w) + 8 : 0
}

/** Lay out and paint the export; the canvas it returns holds the PNG's pixels. */
export function renderExport(spec: PngSpec, doc: Document = document): HTMLCanvasElement | null {
  const c = doc.createElement('canvas')
  const ctx = c.getContext('2d')
  if (!ctx) return null
  ctx.font = FONT
  const left = leftMargin(ctx, spec.panels)
  const picW = Math.max(0, ...spec.panels.map((p) => p.image.width))
  const width = Math.max(560, PAD * 2 + left + picW)
  const legendH = spec.legend === 'dirty' ? 40 : 24 * Math.ceil((overlayKeys().length + 1) / 2) + 8
  let height = PAD + 20 + spec.lines.length * LINE + 6
  for (const p of spec.panels) height += LINE + (p.topTicks ? LINE : 0) + p.image.height + 8
  height += legendH + PAD
  c.width = width
  c.height = height
  const col = (rgb: Rgb): string => cssColor(rgb)
  ctx.fillStyle = col(spec.colors.panel)
  ctx.fillRect(0, 0, width, height)
  ctx.textBaseline = 'top'
  let y = PAD
  ctx.font = TITLE_FONT
  ctx.fillStyle = col(spec.colors.text)
  ctx.fillText(spec.title, PAD, y)
  y += 20
  ctx.font = FONT
  ctx.fillStyle = col(spec.colors.muted)
  for (const line of spec.lines) { ctx.fillText(line, PAD, y); y += LINE }
  y += 6
  for (const p of spec.panels) {
    ctx.fillStyle = col(spec.colors.text)
    ctx.fillText(p.label, PAD, y)
    y += LINE
    const x0 = PAD + left
    if (p.topTicks) {
      ctx.fillStyle = col(spec.colors.muted)
      for (const t of p.topTicks) {
        ctx.fillRect(x0 + Math.round(t.x), y + LINE - 5, 1, 5)
        if (t.x < p.image.width - 60) ctx.fillText(t.text, x0 + t.x + 3, y)
      }
      y += LINE
    }
    ctx.putImageData(p.image, x0, y)
    ctx.fillStyle = col(spec.colors.muted)
    for (const l of p.leftLabels ?? []) {
      const w = ctx.measureText(l.text).width
      ctx.fillText(l.text, x0 - 6 - w, y + l.y)
      ctx.fillRect(x0 - 4, y + l.y, 3, 1)
    }
    y += p.image.height + 8
  }
  drawLegend(ctx, spec, PAD, y)
  return c
}

function drawLegend(ctx: CanvasRenderingContext2D, spec: PngSpec, x: number, y: number): void {
  const { theme, colors } = spec
  ctx.font = FONT
  if (spec.legend === 'dirty') {
    ctx.fillStyle = cssColor(heatColor(0, theme))
    ctx.fillRect(x, y + 2, 14, 10)
    ctx.fillStyle = cssColor(colors.muted)
    ctx.fillText(CLEAN_LABEL, x + 18, y + 1)
    const rx = x + 70
    const rw = 300
    const grad = ctx.createLinearGradient(rx, 0, rx + rw, 0)
    for (const s of rampStops(theme)) grad.addColorStop(s.pos, cssColor(s.color))
    ctx.fillStyle = grad
    ctx.fillRect(rx, y + 2, rw, 10)
    ctx.fillStyle = cssColor(colors.muted)
    for (const l of rampLabels()) {
      const lx = rx + l.pos * rw
      const w = ctx.measureText(l.label).width
      ctx.fillText(l.label, Math.min(rx + rw - w, Math.max(rx, lx - w / 2)), y + 16)
    }
    ctx.fillText(RAMP_CAPTION, rx + rw + 10, y + 1)
    return
  }
  const items = [...overlayKeys().map((k) => ({ color: overlayColor(k.kind, theme), label: k.label })), { color: heatColor(0, theme), label: OVERLAY_CLEAN_LABEL }]
  items.forEach((it, i) => {
    const ix = x + (i % 2) * 280
    const iy = y + Math.floor(i / 2) * 24
    ctx.fillStyle = cssColor(it.color)
    ctx.fillRect(ix, iy + 2, 14, 10)
    ctx.fillStyle = cssColor(colors.text)
    ctx.fillText(it.label, ix + 20, iy + 1)
  })
}

/** The export as a PNG file. */
export function exportPng(spec: PngSpec): Promise<Blob | null> {
  const c = renderExport(spec)
  if (!c) return Promise.resolve(null)
  return new Promise((resolve) => c.toBlob(resolve, 'image/png'))
}
