/** The bitmaps: sortable table; the selected row drives the heatmap and extent list. */
import { useMemo, type ReactNode } from 'react'
import type { BitmapSummary } from '../../session/api.js'
import { exact, hex, humanBytes, percent } from '../format.js'
import type { BitmapStats, SortKey } from '../store/app-store.js'
import { useActions, useApp, useAppShallow } from '../store/hooks.js'
import { sortedBitmaps, statusExplanation } from '../store/selectors.js'

/** The columns; `col` names each one for CSS (narrow tables fold the ones marked `fold` into the details). */
const COLUMNS: Array<{ key: SortKey | null; label: string; col: string; className?: string }> = [
  { key: null, label: 'Show', col: 'show' },
  { key: 'index', label: '#', col: 'index', className: 'num' },
  { key: 'name', label: 'Name', col: 'name' },
  { key: 'granularity', label: 'Granularity', col: 'granularity', className: 'num' },
  { key: 'enabled', label: 'Recording', col: 'recording' },
  { key: 'status', label: 'Status', col: 'status' },
  { key: 'dirty', label: 'Dirty', col: 'dirty', className: 'num' },
  { key: null, label: 'Dirty bytes (exact)', col: 'dirty-exact', className: 'num' },
  { key: null, label: '% of disk', col: 'dirty-pct', className: 'num' },
  { key: null, label: 'Extents', col: 'extents', className: 'num' },
  { key: null, label: 'SHA-256', col: 'sha' },
  { key: 'tableSize', label: 'Table', col: 'table', className: 'num' },
]

const STATUS_LABEL: Record<BitmapSummary['status'], string> = { ok: 'ok', 'in-use': 'in use · stale', untrusted: 'untrusted', invalid: 'invalid' }

export function BitmapTable(): ReactNode {
  const { image, sort, stats, selected } = useAppShallow((s) => ({ image: s.image, sort: s.sort, stats: s.stats, selected: s.selected }))
  const actions = useActions()
  const rows = useMemo(() => sortedBitmaps({ image, sort, stats }), [image, sort, stats])
  if (!image) return null
  const disk = image.summary.diskLength
  return (
    <section className="panel bitmaps-panel" aria-labelledby="bitmaps-h">
      <div className="panel-head">
        <h2 id="bitmaps-h" className="panel-title">Bitmaps <span className="muted">({rows.length})</span></h2>
        <ScanControls />
      </div>
      {rows.length === 0 ? (
        <p className="empty-note">This image has no persistent dirty bitmaps.</p>
      ) : (
        <div className="table-wrap">
          <table className="grid-table bitmaps" aria-describedby="bitmaps-h">
            <thead>
              <tr>
                {COLUMNS.map((c) => (
                  <th key={c.label} scope="col" className={c.className} data-col={c.col} aria-sort={c.key && sort.key === c.key ? (sort.dir === 1 ? 'ascending' : 'descending') : undefined}>
                    {c.key ? (
                      <button type="button" className="th-sort" onClick={() => actions.setSort(c.key!)}>
                        {c.label}
                        <span aria-hidden="true" className="sort-mark">{sort.key === c.key ? (sort.dir === 1 ? '▲' : '▼') : ''}</span>
                      </button>
                    ) : c.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((b) => (
                <BitmapRow key={b.index} b={b} st={stats[b.index]} disk={disk} selected={selected === b.index} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <BitmapDetails />
    </section>
  )
}

function ScanControls(): ReactNode {
  const paused = useApp((s) => s.scansPaused)
  const actions = useActions()
  if (!paused) return null
  return (
    <button type="button" className="btn btn-small" onClick={actions.resumeScans}>
      Read the remaining bitmaps
    </button>
  )
}

function BitmapRow({ b, st, disk, selected }: { b: BitmapSummary; st: BitmapStats | undefined; disk: number; selected: boolean }): ReactNode {
  const actions = useActions()
  const scan = st?.scan ?? { status: 'idle' as const }
  const done = scan.status === 'done' ? scan : null
  const radioId = `show-${b.index}`
  return (
    <tr className={selected ? 'selected' : undefined} onClick={() => actions.select(b.index)} data-bitmap={b.name}>
      <td data-col="show">
        <input
          type="radio"
          id={radioId}
          name="bitmap-select"
          checked={selected}
          onChange={() => actions.select(b.index)}
          aria-label={`Show bitmap ${b.name}`}
        />
      </td>
      <td className="num" data-col="index">{b.index}</td>
      <td className="mono name-cell" data-col="name"><label htmlFor={radioId}>{b.name}</label></td>
      <td className="num" data-col="granularity" title={`${exact(b.granularity)} bytes`}>{humanBytes(b.granularity)}</td>
      <td data-col="recording">{b.enabled ? <span className="badge badge-ok">enabled</span> : <span className="badge badge-muted">disabled</span>}</td>
      <td data-col="status">
        <span className={`badge badge-${b.status}`} title={statusExplanation(b)}>{STATUS_LABEL[b.status]}</span>
      </td>
      <td className="num" data-col="dirty" title={done ? `${exact(done.dirtyBytes)} bytes, ${percent(done.dirtyBytes, disk)} of the disk` : undefined}>
        {done ? humanBytes(done.dirtyBytes) : <ScanState b={b} scan={scan} />}
      </td>
      <td className="num mono" data-col="dirty-exact">{done ? exact(done.dirtyBytes) : ''}</td>
      <td className="num" data-col="dirty-pct">{done ? percent(done.dirtyBytes, disk) : ''}</td>
      <td className="num" data-col="extents">{done ? exact(done.extentCount) : ''}</td>
      <td className="sha-cell" data-col="sha">
        {st?.sha === 'done' && st.sha256 ? (
          <code className="sha" title={st.sha256}>{st.sha256.slice(0, 16)}…</code>
        ) : (
          <button
            type="button"
            className="btn btn-small"
            disabled={st?.sha === 'running'}
            onClick={(e) => { e.stopPropagation(); void actions.computeSha(b.index) }}
            aria-label={`Compute SHA-256 of ${b.name}`}
          >
            {st?.sha === 'running' ? 'hashing…' : st?.sha === 'error' ? 'retry' : 'compute'}
          </button>
        )}
      </td>
      <td className="num" data-col="table" title={`bitmap table at ${hex(b.tableOffset)}, ${b.tableSize} entries (${b.expectedTableSize} needed)`}>
        {b.tableSize}
        {b.tableSize !== b.expectedTableSize && <span className="warn-mark" title={`the disk needs ${b.expectedTableSize} entries`}> ≠{b.expectedTableSize}</span>}
      </td>
    </tr>
  )
}

function ScanState({ b, scan }: { b: BitmapSummary; scan: BitmapStats['scan'] }): ReactNode {
  const actions = useActions()
  switch (scan.status) {
    case 'scanning':
      return <span className="muted">reading…</span>
    case 'error':
      return <span className="text-error" title={scan.error.message}>unreadable</span>
    case 'cancelled':
      return (
        <button type="button" className="btn btn-small" onClick={(e) => { e.stopPropagation(); void actions.scanBitmap(b.index) }}>
          read
        </button>
      )
    default:
      return <span className="muted">queued</span>
  }
}

function BitmapDetails(): ReactNode {
  const { image, selected, st } = useAppShallow((s) => ({ image: s.image, selected: s.selected, st: s.selected !== null ? s.stats[s.selected] : undefined }))
  const b = image?.summary.bitmaps.find((x) => x.index === selected)
  if (!b) return null
  return (
    <div className="details" aria-label={`Details of bitmap ${b.name}`}>
      <p>
        <span className={`badge badge-${b.status}`}>{STATUS_LABEL[b.status]}</span> {statusExplanation(b)}
      </p>
      {st?.scan.status === 'done' && (
        <p className="small" data-testid="bitmap-dirty-line">
          dirty <strong>{humanBytes(st.scan.dirtyBytes)}</strong> <span className="mono muted">({exact(st.scan.dirtyBytes)} bytes)</span>,
          {' '}{percent(st.scan.dirtyBytes, image!.summary.diskLength)} of the disk, in {exact(st.scan.extentCount)} extent{st.scan.extentCount === 1 ? '' : 's'}
        </p>
      )}
      <p className="muted small mono">
        directory entry at {hex(b.entryOffset)} · flags 0x{b.flagsRaw.toString(16)}{b.flags.length > 0 && ` (${b.flags.join(', ')})`} · type {b.type} ·
        table at {hex(b.tableOffset)}, {b.tableSize} entries · {humanBytes(b.dataBytes)} of bitmap data to read
        {st?.sha === 'done' && st.sha256 && <> · SHA-256 {st.sha256}</>}
      </p>
      {b.problems.length > 0 && (
        <ul className="problems">{b.problems.map((p) => <li key={p} className="text-error">{p}</li>)}</ul>
      )}
      {b.warnings.length > 0 && (
        <ul className="problems">{b.warnings.map((p) => <li key={p}>{p}</li>)}</ul>
      )}
      {st?.scan.status === 'error' && <p className="text-error">Could not read its data: {st.scan.error.message}</p>}
    </div>
  )
}
