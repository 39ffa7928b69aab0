/**
 * The one hover tooltip of the strip and the map: the cell's exact byte range (hex, and in
 * human units), then its dirty bytes, or its dirty × allocation split. The numbers are also on
 * data attributes, for tests and tools.
 */
import type { ReactNode } from 'react'
import { exact, hex, humanBytes, percent, preciseBytes } from '../format.js'
import { OVERLAY_KINDS, OVERLAY_LABEL, type OverlayKind, type Theme, cssColor, overlayColor } from './colors.js'

/** What a tooltip says about one cell. */
export interface CellTip {
  offset: number
  length: number
  /** dirty bytes in the cell; null while they are being counted */
  dirty?: number | null
  /** bytes of each dirty × allocation class */
  split?: Record<OverlayKind, number> | null
  /** which layers of the backing chain allocate the cell, in words */
  layers?: string | null
  /** a line in small print under the numbers */
  note?: string
}

/** Where: x, y inside an area `areaWidth` pixels wide; the box stays inside it. */
export function CellTooltip({ tip, x, y, areaWidth, testId, theme }: {
  tip: CellTip; x: number; y: number; areaWidth: number; testId: string; theme: Theme
}): ReactNode {
  const boxWidth = tip.split ? 320 : 300
  const split = tip.split
  const attrs = split
    ? { 'data-dirty-data': split.dirtyData, 'data-dirty-zero': split.dirtyZero, 'data-dirty-unallocated': split.dirtyUnallocated, 'data-clean-data': split.cleanData }
    : tip.dirty !== undefined && tip.dirty !== null ? { 'data-dirty': tip.dirty } : {}
  return (
    <div
      className="heat-tooltip"
      role="tooltip"
      data-testid={testId}
      data-offset={tip.offset}
      data-length={tip.length}
      {...attrs}
      style={{ left: Math.min(Math.max(0, x + 12), Math.max(0, areaWidth - boxWidth)), top: y }}
    >
      <div className="mono">{hex(tip.offset)} – {hex(tip.offset + tip.length - 1)}</div>
      <div className="muted">{preciseBytes(tip.offset)} – {preciseBytes(tip.offset + tip.length)} · {humanBytes(tip.length)}</div>
      {split
        ? OVERLAY_KINDS.map((k) => (
          <div key={k} className="split-line">
            <span className="swatch" style={{ background: cssColor(overlayColor(k, theme)) }} />
            {OVERLAY_LABEL[k]} <strong>{humanBytes(split[k])}</strong> <span className="mono muted">({exact(split[k])})</span>
          </div>
        ))
        : tip.dirty === null
          ? <div className="muted">counting…</div>
          : tip.dirty !== undefined && (
            <div>
              dirty <strong>{humanBytes(tip.dirty)}</strong> <span className="mono muted">({exact(tip.dirty)} bytes)</span> · {percent(tip.dirty, tip.length)}
            </div>
          )}
      {tip.layers && <div className="muted">allocated by: {tip.layers}</div>}
      {tip.note && <div className="muted small">{tip.note}</div>}
    </div>
  )
}
