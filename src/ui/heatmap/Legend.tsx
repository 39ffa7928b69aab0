/** The legends under the strip and the map: the dirty ramp, or the dirty × allocation classes with totals. */
import type { ReactNode } from 'react'
import { humanBytes } from '../format.js'
import { type OverlayKind, type Theme, cssColor, heatColor, overlayColor } from './colors.js'
import { CLEAN_LABEL, OVERLAY_CLEAN_LABEL, RAMP_CAPTION, overlayKeys, rampLabels, rampStops } from './legend.js'

/** The dirty ramp: clean, then 1% … 100% of each cell dirty. */
export function DirtyLegend({ theme }: { theme: Theme }): ReactNode {
  const stops = rampStops(theme).map((s) => `${cssColor(s.color)} ${s.pos * 100}%`)
  return (
    <div className="legend small" aria-label="Colour legend: dirty share of each cell">
      <span className="legend-clean" style={{ background: cssColor(heatColor(0, theme)) }} />
      <span className="muted">{CLEAN_LABEL}</span>
      <span className="legend-ramp-wrap">
        <span className="legend-ramp" style={{ background: `linear-gradient(to right, ${stops.join(', ')})` }} />
        {rampLabels().map((l) => <span key={l.label} className="legend-stop" style={{ left: `${l.pos * 100}%` }}>{l.label}</span>)}
      </span>
      <span className="muted">{RAMP_CAPTION}</span>
    </div>
  )
}

/** The overlay's classes, with the bytes of each over what is shown when known. */
export function OverlayLegend({ theme, totals, scope, backingMissing, testId = 'overlay-totals' }: {
  theme: Theme
  totals: Record<OverlayKind, number> | null
  /** what the totals cover: 'whole disk', 'in view', … ; null: still computing */
  scope: string | null
  backingMissing?: string | undefined
  testId?: string
}): ReactNode {
  const data = totals
    ? { 'data-dirty-data': totals.dirtyData, 'data-dirty-zero': totals.dirtyZero, 'data-dirty-unallocated': totals.dirtyUnallocated, 'data-clean-data': totals.cleanData }
    : {}
  return (
    <div className="legend legend-overlay small" data-testid={testId} {...data}>
      {overlayKeys().map(({ kind, label }) => (
        <span key={kind} className="legend-item">
          <span className="swatch" style={{ background: cssColor(overlayColor(kind, theme)) }} />
          {label}{totals && <> <strong>{humanBytes(totals[kind])}</strong></>}
        </span>
      ))}
      <span className="legend-item">
        <span className="swatch" style={{ background: cssColor(heatColor(0, theme)) }} />
        {OVERLAY_CLEAN_LABEL}
      </span>
      <span className="muted">{totals && scope ? scope : 'computing…'}
        {backingMissing !== undefined && <> · backing file <span className="mono">{backingMissing}</span> is not open: what it holds counts as unallocated (drop it together with this image)</>}
      </span>
    </div>
  )
}
