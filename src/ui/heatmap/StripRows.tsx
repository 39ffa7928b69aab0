/**
 * The strip's rows: the ruler, one canvas per bitmap (dirty cells, or the dirty × allocation
 * overlay, striped when the bitmap is in use), the row of backing-chain layers, and the mark
 * around the extent picked in the list.
 */
import { useEffect, useRef, type ReactNode } from 'react'
import type { BitmapSummary } from '../../session/api.js'
import { hex } from '../format.js'
import type { OverlayData } from '../store/analysis.js'
import type { HeatData, HeatSlot } from '../store/app-store.js'
import { canvasColors, paintCanvas } from './canvas.js'
import { type Theme, cssColor, heatColor, layerColor } from './colors.js'
import { dominantLayer, hatch, paint, paintOverlay } from './draw.js'
import { type View, offsetToX, rulerTicks } from './geometry.js'

/** Height of a bitmap's row, CSS pixels. */
export const ROW_HEIGHT = 56
/** Height of a row's label line plus its margins. */
export const ROW_LABEL = 18
const LAYER_HEIGHT = 18

/** Byte offsets along the top, power-of-two steps. */
export function Ruler({ view, width }: { view: View; width: number }): ReactNode {
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

/** Paint one bitmap's row into an RGBA buffer (the page and the PNG export share it). */
export function paintStripRow(px: Uint8ClampedArray, w: number, h: number, b: BitmapSummary, heat: HeatData | null, view: View, disk: number, theme: Theme,
  overlay: OverlayData | 'pending' | null = null): void {
  const colors = canvasColors(theme)
  const usable = heat && heat.bitmapIndex === b.index ? heat : null
  if (overlay) paintOverlay(px, w, h, overlay === 'pending' ? null : overlay, view, disk, theme, colors.missing)
  else paint(px, w, h, usable, view, disk, theme, colors.missing, colors.panel)
  if (b.status === 'in-use') hatch(px, w, h, colors.stripe, 0.55)
}

/** One bitmap's row: label and canvas. */
export function HeatRow({ slot, b, heat, view, disk, width, theme, scanning, overlay = null }: {
  slot: HeatSlot; b: BitmapSummary; heat: HeatData | null; view: View; disk: number; width: number; theme: Theme; scanning: string | undefined
  /** draw the dirty × allocation overlay instead ('pending': not computed yet) */
  overlay?: OverlayData | 'pending' | null
}): ReactNode {
  const canvasRef = useRef<HTMLCanvasElement>(null)
  const usable = heat && heat.bitmapIndex === b.index ? heat : null
  const stale = b.status === 'in-use'
  useEffect(() => {
    paintCanvas(canvasRef.current, width, ROW_HEIGHT, (img) => paintStripRow(img.data, img.width, img.height, b, usable, view, disk, theme, overlay))
  }, [b, usable, view, disk, width, theme, overlay])

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

/** Under the overlay: which layer of the backing chain each column's allocation comes from. */
export function LayerRow({ overlay, view, disk, width, theme }: { overlay: OverlayData; view: View; disk: number; width: number; theme: Theme }): ReactNode {
  const canvasRef = useRef<HTMLCanvasElement>(null)
  useEffect(() => {
    paintCanvas(canvasRef.current, width, LAYER_HEIGHT, (img) => {
      const w = img.width
      const best = dominantLayer(overlay, view, w, disk)
      const none = heatColor(0, theme)
      for (let x = 0; x < w; x++) {
        const col = best[x]! < 0 ? none : layerColor(best[x]!, theme)
        for (let y = 0; y < img.height; y++) {
          const i = (y * w + x) * 4
          img.data[i] = col[0]; img.data[i + 1] = col[1]; img.data[i + 2] = col[2]; img.data[i + 3] = 255
        }
      }
    })
  }, [overlay, view, disk, width, theme])
  return (
    <div className="heat-row" data-slot="layers">
      <div className="heat-row-label small">
        <span className="muted">allocation from:</span>
        {overlay.layerNames.map((n, d) => (
          <span key={n} className="layer-key"><span className="swatch" style={{ background: cssColor(layerColor(d, theme)) }} /><span className="mono">{n}</span></span>
        ))}
      </div>
      <canvas ref={canvasRef} className="heat-canvas" style={{ height: LAYER_HEIGHT }} role="img" data-testid="heat-canvas-layers"
        aria-label={`Which layer of the backing chain (${overlay.layerNames.join(' → ')}) allocates each region`} />
    </div>
  )
}

/** The frame around the extent picked in the list. */
export function FocusMark({ offset, length, view, width, rows }: { offset: number; length: number; view: View; width: number; rows: number }): ReactNode {
  const x0 = Math.max(-2, offsetToX(offset, view, width))
  const x1 = Math.min(width + 2, offsetToX(offset + length, view, width))
  if (x1 < 0 || x0 > width) return null
  return <div className="focus-mark" style={{ left: x0 - 1, width: Math.max(3, x1 - x0 + 2), height: rows * (ROW_HEIGHT + ROW_LABEL) }} aria-hidden="true" />
}
