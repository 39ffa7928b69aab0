/**
 * Dirty extents of the selected bitmap, in view or all: a virtualized list whose rows come from
 * the worker in pages. Clicking an extent zooms the heatmap to it.
 */
import { useVirtualizer } from '@tanstack/react-virtual'
import { useEffect, useRef, type ReactNode } from 'react'
import type { Extent, SplitRow } from '../../session/api.js'
import { download, exportName } from '../download.js'
import { exact, hex, humanBytes } from '../format.js'
import { EXTENT_PAGE } from '../store/app-store.js'
import { useActions, useAppShallow } from '../store/hooks.js'

const ROW_PX = 24
const MAX_LIST_PX = 360
/**
 * Most rows the list scrolls through. A dense bitmap of 2^32 bits has hundreds of millions of
 * extents: a virtualizer over all of them would lay out every row's offset on the page (and
 * no browser scrolls that far). The list shows the first ones of the window and says how to
 * see others: zoom in, so that the window ("in view") is smaller.
 */
export const MAX_LIST_ROWS = 100_000

export function ExtentList(): ReactNode {
  const { image, extents, pages, mode, selected, focus, stats, splits } = useAppShallow((s) => ({
    image: s.image, extents: s.extents, pages: s.extentPages, mode: s.extentMode, selected: s.selected, focus: s.focus, stats: s.stats,
    splits: s.extentSplits,
  }))
  const actions = useActions()
  const scrollRef = useRef<HTMLDivElement>(null)
  const count = extents?.count ?? 0
  const rows = Math.min(count, MAX_LIST_ROWS)
  const virt = useVirtualizer({
    count: rows,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_PX,
    overscan: 12,
  })
  const items = virt.getVirtualItems()
  const firstVisible = items[0]?.index ?? 0
  const lastVisible = items[items.length - 1]?.index ?? -1

  useEffect(() => {
    if (!extents || lastVisible < 0) return
    actions.ensureExtents(extents.first + firstVisible, extents.first + lastVisible)
  }, [actions, extents, firstVisible, lastVisible])

  // A new window (other bitmap, other view) starts at the top. Not on mount: scrolling forces
  // a layout, and a new list is at the top anyway.
  const mounted = useRef(false)
  useEffect(() => {
    if (mounted.current) scrollRef.current?.scrollTo({ top: 0 })
    mounted.current = true
  }, [extents?.bitmapIndex, extents?.first, extents?.mode])

  if (!image) return null
  const b = image.summary.bitmaps.find((x) => x.index === selected)
  const st = selected !== null ? stats[selected]?.scan : undefined
  const total = st?.status === 'done' ? st.extentCount : null

  async function exportAs(format: 'csv' | 'json'): Promise<void> {
    const blob = await actions.exportExtents(format, mode)
    if (blob && b && image) download(blob, exportName(image.name, b.name, `extents${mode === 'view' ? '-view' : ''}.${format}`))
  }

  function rowAt(i: number): Extent | undefined {
    if (!extents) return undefined
    const g = extents.first + i
    return pages[`${extents.bitmapIndex}:${Math.floor(g / EXTENT_PAGE)}`]?.[g % EXTENT_PAGE]
  }

  function splitAt(i: number): SplitRow | undefined {
    if (!extents) return undefined
    const g = extents.first + i
    return splits[`${extents.bitmapIndex}:${Math.floor(g / EXTENT_PAGE)}`]?.[g % EXTENT_PAGE]
  }

  return (
    <section className="panel extents-panel" aria-labelledby="extents-h">
      <div className="panel-head">
        <h2 id="extents-h" className="panel-title">
          Dirty extents {b && <span className="mono">{b.name}</span>}
        </h2>
        <div className="toolbar">
          <span className="small" data-testid="extent-count" aria-live="polite">
            {extents
              ? <><strong>{exact(count)}</strong> {mode === 'view' ? 'in view' : 'extents'}{total !== null && mode === 'view' ? <span className="muted"> of {exact(total)}</span> : null}</>
              : <span className="muted">{st?.status === 'scanning' ? 'reading…' : '—'}</span>}
          </span>
          <fieldset className="segmented">
            <legend className="visually-hidden">Which extents</legend>
            <label className={mode === 'view' ? 'on' : undefined}>
              <input type="radio" name="extent-mode" checked={mode === 'view'} onChange={() => actions.setExtentMode('view')} />
              In view
            </label>
            <label className={mode === 'all' ? 'on' : undefined}>
              <input type="radio" name="extent-mode" checked={mode === 'all'} onChange={() => actions.setExtentMode('all')} />
              All
            </label>
          </fieldset>
          <button type="button" className="btn btn-small" disabled={!extents} onClick={() => void exportAs('csv')}>CSV</button>
          <button type="button" className="btn btn-small" disabled={!extents} onClick={() => void exportAs('json')}>JSON</button>
        </div>
      </div>
      <div className="extent-head small" aria-hidden="true">
        <span>#</span><span>Offset</span><span>End</span><span className="num">Length</span><span className="num">Bytes</span>
        <span title="How the extent's bytes read: allocated data / reads as zero / unallocated">Data · zero · unallocated</span>
      </div>
      <div ref={scrollRef} className="extent-scroll" role="list" aria-label="Dirty extents" data-testid="extent-list" id="extent-list" tabIndex={0}
        style={{ height: Math.min(MAX_LIST_PX, Math.max(2 * ROW_PX, rows * ROW_PX + 2)) }}>
        <div style={{ height: virt.getTotalSize(), position: 'relative' }}>
          {items.map((it) => {
            const x = rowAt(it.index)
            const n = (extents?.first ?? 0) + it.index
            const focused = x && focus && x.offset === focus.offset && x.length === focus.length
            return (
              <div key={it.key} role="listitem" className="extent-row-wrap" style={{ transform: `translateY(${it.start}px)`, height: ROW_PX }}>
                {x ? (
                  <button
                    type="button"
                    className={focused ? 'extent-row focused' : 'extent-row'}
                    data-offset={x.offset}
                    data-length={x.length}
                    onClick={() => actions.zoomToExtent(x)}
                    title="Zoom the heatmap to this extent"
                  >
                    <span className="muted">{n + 1}</span>
                    <span className="mono">{hex(x.offset)}</span>
                    <span className="mono">{hex(x.offset + x.length)}</span>
                    <span className="num">{humanBytes(x.length)}</span>
                    <span className="num mono muted">{exact(x.length)}</span>
                    <SplitCell split={splitAt(it.index)} length={x.length} />
                  </button>
                ) : (
                  <span className="extent-row placeholder muted">{n + 1} …</span>
                )}
              </div>
            )
          })}
        </div>
        {extents && count > rows && (
          <p className="empty-note" data-testid="extent-list-capped">
            The first {exact(rows)} of {exact(count)} extents are listed: zoom the map or the heatmap in (and choose In view) to list the extents of a smaller region.
          </p>
        )}
        {extents && count === 0 && <p className="empty-note">{mode === 'view' ? 'No dirty extents in view.' : 'The bitmap is clean: no dirty extents.'}</p>}
      </div>
    </section>
  )
}

/** An extent's allocation split: a small stacked bar and the bytes in words. */
export function SplitCell({ split, length }: { split: SplitRow | undefined; length: number }): ReactNode {
  if (!split) return <span className="split-cell muted">…</span>
  const pct = (n: number): string => `${(n / Math.max(1, length)) * 100}%`
  const words = [
    split.data > 0 ? `${humanBytes(split.data)} data` : null,
    split.zero > 0 ? `${humanBytes(split.zero)} zero` : null,
    split.unallocated > 0 ? `${humanBytes(split.unallocated)} unallocated` : null,
  ].filter(Boolean).join(' · ')
  return (
    <span className="split-cell" data-data={split.data} data-zero={split.zero} data-unallocated={split.unallocated}>
      <span className="split-bar" aria-hidden="true">
        <span className="split-data" style={{ width: pct(split.data) }} />
        <span className="split-zero" style={{ width: pct(split.zero) }} />
        <span className="split-unalloc" style={{ width: pct(split.unallocated) }} />
      </span>
      <span className="small">{words}</span>
    </span>
  )
}
