/**
 * One pane of the map: its label, the canvas (painted by painter.ts straight from the store),
 * and over it the strip's view outlined and the rectangle being dragged.
 */
import { memo, useEffect, useMemo, useRef, type ReactNode } from 'react'
import { useAppShallow, useStoreApi } from '../../store/hooks.js'
import { currentMapGrid, type MapSlot } from '../../store/map.js'
import { canvasColors } from '../canvas.js'
import type { Theme } from '../colors.js'
import { rangeOutline, usedHeightPx } from './layout.js'
import { createPanePainter } from './painter.js'
import type { MapDrag } from './useMapGestures.js'

/** One pane: label, canvas, outline; re-rendered only when its props change. */
export const MapPane = memo(function MapPane({ slot, tag, name, stale, cssWidth, cssHeight, theme, drag, label, exact }: {
  slot: MapSlot
  /** 'A', 'B' or 'A ∖ B' */
  tag: string
  name: string
  stale: boolean
  cssWidth: number
  cssHeight: number
  theme: Theme
  drag: MapDrag | null
  /** what the canvas shows, for screen readers */
  label: string
  /** the pane shows the exact counts of its grid (not resampled, not a preview) */
  exact: boolean
}): ReactNode {
  const canvasRef = useRef<HTMLCanvasElement>(null)
  const storeApi = useStoreApi()

  useEffect(() => {
    const canvas = canvasRef.current
    if (!canvas) return
    const painter = createPanePainter(canvas, slot, theme, canvasColors(theme), stale)
    // The first change of a task paints at once (before React renders anything); later changes
    // in the same task paint once more, at its end.
    let painted = false
    let queued = false
    const paintSoon = (): void => {
      if (!painted) {
        painted = true
        painter.paint(storeApi.getState())
        queueMicrotask(() => { painted = false })
        return
      }
      if (queued) return
      queued = true
      queueMicrotask(() => { queued = false; painter.paint(storeApi.getState()) })
    }
    paintSoon()
    return storeApi.subscribe((s, prev) => {
      if (s.mapView !== prev.mapView || s.mapCanvas !== prev.mapCanvas || s.mapOrder !== prev.mapOrder || s.mapCells[slot] !== prev.mapCells[slot] || s.image !== prev.image) paintSoon()
    })
  }, [storeApi, slot, theme, stale, cssWidth, cssHeight])

  const { view, mapView, mapCanvas, mapOrder, image } = useAppShallow((s) => ({ view: s.view, mapView: s.mapView, mapCanvas: s.mapCanvas, mapOrder: s.mapOrder, image: s.image }))
  const grid = useMemo(() => currentMapGrid({ mapView, mapCanvas, mapOrder, image }), [mapView, mapCanvas, mapOrder, image])
  const outline = useMemo(() => {
    if (!grid || !view) return ''
    const s = grid.cellPx
    return rangeOutline(grid, view.start, view.end).map(([x1, y1, x2, y2]) => `M${x1 * s} ${y1 * s}L${x2 * s} ${y2 * s}`).join('')
  }, [grid, view])
  const w = mapCanvas?.width ?? 1
  // The canvas stops at the grid's last row (painter.ts does the same for its pixels).
  const h = grid && mapCanvas ? Math.min(mapCanvas.height, usedHeightPx(grid)) : mapCanvas?.height ?? 1
  const shownHeight = mapCanvas ? (cssHeight * h) / mapCanvas.height : cssHeight

  return (
    <div className="map-pane" data-pane={slot} data-stale={stale ? 'true' : undefined}>
      <div className="heat-row-label small">
        <span className={slot === 'compare' ? 'slot-tag slot-tag-compare' : 'slot-tag'}>{tag}</span>
        <span className="mono">{name}</span>
        {stale && <span className="badge badge-in-use" title="in_use is set: these are the bits stored at its last clean save">stale</span>}
      </div>
      <div className="map-canvas-wrap" style={{ width: cssWidth, height: shownHeight }}>
        <canvas ref={canvasRef} className="map-canvas" style={{ width: cssWidth, height: shownHeight }} role="img" aria-label={label} data-testid={`map-canvas-${slot}`} data-exact={exact ? 'true' : 'false'} />
        <svg className="map-overlay" viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" aria-hidden="true" data-testid={`map-outline-${slot}`}>
          {outline && <path className="map-outline-under" d={outline} vectorEffect="non-scaling-stroke" />}
          {outline && <path className="map-outline" d={outline} vectorEffect="non-scaling-stroke" />}
          {drag && drag.slot === slot && (
            <rect className="map-drag" x={Math.min(drag.x0, drag.x1)} y={Math.min(drag.y0, drag.y1)} width={Math.abs(drag.x1 - drag.x0)} height={Math.abs(drag.y1 - drag.y0)} vectorEffect="non-scaling-stroke" />
          )}
        </svg>
      </div>
    </div>
  )
})
