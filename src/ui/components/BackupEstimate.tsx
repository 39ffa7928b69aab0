/**
 * The incremental-backup estimate of the selected bitmap: its dirty bytes, and of those how
 * many are allocated data (what a zero-aware backup copies), read as zero (e.g. discarded by
 * fstrim after the checkpoint) or are unallocated. Same numbers as `qbm estimate`.
 */
import type { ReactNode } from 'react'
import { exact, humanBytes, percent } from '../format.js'
import { useActions, useAppShallow } from '../store/hooks.js'

export function BackupEstimate(): ReactNode {
  const { image, selected, est, scan } = useAppShallow((s) => ({
    image: s.image, selected: s.selected, est: s.selected !== null ? s.estimates[s.selected] : undefined,
    scan: s.selected !== null ? s.stats[s.selected]?.scan.status : undefined,
  }))
  const actions = useActions()
  if (!image) return null
  const b = image.summary.bitmaps.find((x) => x.index === selected)
  if (!b) return null
  const e = est?.status === 'done' ? est.estimate : null
  const full = est?.status === 'done' ? est.fullBytes : undefined
  if (b.status === 'in-use') {
    return <FullBackup name={b.name} full={full} dirty={e?.dirtyBytes} waiting={est?.status === 'running'} error={est?.status === 'error' ? est.error.message : null}
      onSize={est === undefined && scan === 'done' ? () => void actions.computeEstimate(b.index) : null} />
  }
  const rows = e
    ? ([
      ['data', 'Allocated data', e.dataBytes, 'what a zero-aware incremental backup copies'],
      ['zero', 'Reads as zero', e.zeroBytes, 'dirty, but allocated as zeros (discarded by fstrim, or written as zeros): a zero-aware backup skips them'],
      ['unalloc', 'Unallocated', e.unallocatedBytes, 'dirty, but no layer of the chain holds data there: reads as zeros'],
    ] as const)
    : []
  return (
    <section className="panel" aria-labelledby="estimate-h">
      <h2 id="estimate-h" className="panel-title">Incremental backup <span className="mono">{b.name}</span></h2>
      {!e && (
        <p className="small muted">
          {est?.status === 'running' ? 'Estimating…'
            : est?.status === 'error' ? <span className="text-error">Could not estimate: {est.error.message}</span>
              : scan === 'done' ? null : 'Waiting for its data to be read…'}
          {' '}
          {(est === undefined || est.status === 'error') && scan === 'done' && (
            <button type="button" className="btn btn-small" onClick={() => void actions.computeEstimate(b.index)}>Estimate</button>
          )}
        </p>
      )}
      {e && (
        <div data-testid="estimate" data-dirty={e.dirtyBytes} data-data={e.dataBytes} data-zero={e.zeroBytes} data-unallocated={e.unallocatedBytes}>
          <p className="small">
            <strong>{humanBytes(e.dirtyBytes)}</strong> dirty <span className="mono muted">({exact(e.dirtyBytes)} bytes)</span>
          </p>
          <div className="split-bar split-bar-big" aria-hidden="true">
            {rows.map(([k, , n]) => <span key={k} className={`split-${k}`} style={{ width: `${(n / Math.max(1, e.dirtyBytes)) * 100}%` }} />)}
          </div>
          <dl className="facts estimate-facts">
            {rows.map(([k, label, n, why]) => (
              <div key={k} className="estimate-row" title={why}>
                <dt><span className={`swatch split-${k}`} /> {label}</dt>
                <dd><strong>{humanBytes(n)}</strong> <span className="mono muted">({exact(n)})</span> · {percent(n, e.dirtyBytes)}</dd>
              </div>
            ))}
          </dl>
          <p className="small muted">
            A backup that skips zeros copies about <strong>{humanBytes(e.dataBytes)}</strong>; one that copies every dirty
            granule copies {humanBytes(e.dirtyBytes)}.
            {e.layerNames.length > 1 && <> Allocation read through {e.layerNames.join(' → ')}.</>}
            {e.backingMissing !== undefined && <> The backing file <span className="mono">{e.backingMissing}</span> is not open: what it holds counts as unallocated.</>}
          </p>
        </div>
      )}
    </section>
  )
}

/**
 * An in-use bitmap: QEMU will not export it, so no backup tool can use it. The next backup from
 * its checkpoint is a full one, and copies the disk's allocated data (from the allocation map).
 */
function FullBackup({ name, full, dirty, waiting, error, onSize }: {
  name: string; full: number | undefined; dirty: number | undefined; waiting: boolean; error: string | null
  /** size it now (it was not started by itself: a bitmap of very many extents) */
  onSize: (() => void) | null
}): ReactNode {
  return (
    <section className="panel" aria-labelledby="estimate-h">
      <h2 id="estimate-h" className="panel-title">Next backup <span className="mono">{name}</span></h2>
      <div className="callout callout-warn" data-testid="estimate-full" data-full={full}>
        <p className="small"><strong>Full, not incremental.</strong> <span className="mono">{name}</span> is marked in use: QEMU will not export it, so a
          {' '}backup tool cannot use it, and the next backup from this checkpoint copies the whole disk.</p>
        {full !== undefined
          ? <p className="small">It copies the disk&apos;s allocated data: <strong>{humanBytes(full)}</strong> <span className="mono muted">({exact(full)} bytes)</span>.</p>
          : <p className="small muted">{error ? <span className="text-error">Could not size it: {error}</span> : waiting ? 'Sizing the allocated data…' : null}
            {onSize && <button type="button" className="btn btn-small" onClick={onSize}>Size the full backup</button>}</p>}
      </div>
      {dirty !== undefined && (
        <p className="small muted">Its stored bits (stale, from its last clean save) mark {humanBytes(dirty)} dirty; writes made since are not in them.
          {' '}Clear in_use (Changes) with &ldquo;mark all dirty&rdquo; to make that explicit in the file.</p>
      )}
    </section>
  )
}
