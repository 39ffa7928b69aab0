/**
 * The first page when `qbm serve` served the app: every image under the host's PATHs in one
 * virtualized table (path, size, bitmaps, in-use, largest dirty share, the QEMU process holding
 * it, check status, libvirt checkpoint mismatches), a "needs attention" filter, and a click to
 * open an image in the image view over the socket.
 */
import { useVirtualizer } from '@tanstack/react-virtual'
import { useMemo, useRef, type ReactNode } from 'react'
import type { OverviewRow } from '../../session/api.js'
import { needsAttention } from '../../session/overview.js'
import { exact, humanBytes } from '../format.js'
import { visibleRows } from '../store/host.js'
import { useActions, useAppShallow } from '../store/hooks.js'

const ROW_PX = 34
const MAX_LIST_PX = 640

function checkText(r: OverviewRow, running: boolean): { text: string; cls: string } {
  if (running) return { text: 'checking…', cls: 'muted' }
  const c = r.check
  if (!c) return { text: r.holder ? 'skipped (in use)' : '—', cls: 'muted' }
  switch (c.status) {
    case 'clean': return { text: 'clean', cls: 'ok' }
    case 'leaks': return { text: `${exact(c.leaks)} leaked cluster${c.leaks === 1 ? '' : 's'}`, cls: 'warn' }
    case 'errors': return { text: `${exact(c.corruptions + c.checkErrors)} error${c.corruptions + c.checkErrors === 1 ? '' : 's'}`, cls: 'error' }
    case 'failed': return { text: 'could not check', cls: 'error' }
    case 'skipped': return { text: 'skipped (in use)', cls: 'muted' }
  }
}

/** Why a row needs attention, in a few words each. */
export function attentionReasons(r: OverviewRow): string[] {
  const out: string[] = []
  if (r.error) out.push(`unreadable: ${r.error}`)
  if (r.holderText) out.push(`open in ${r.holderText}`)
  if (r.inUseCount > 0) out.push(`${r.inUseCount} in use`)
  const broken = r.bitmaps.filter((b) => b.status === 'invalid' || b.status === 'untrusted').length
  if (broken > 0) out.push(`${broken} not trusted by QEMU`)
  for (const w of r.warnings) out.push(w)
  if (r.check && (r.check.status === 'errors' || r.check.status === 'failed')) out.push('check failed')
  if (r.checkpointMismatches > 0) out.push(`${r.checkpointMismatches} checkpoint mismatch${r.checkpointMismatches === 1 ? '' : 'es'}`)
  return out
}

export function HostOverview(): ReactNode {
  const s = useAppShallow((x) => ({ host: x.host, overview: x.overview, loading: x.overviewLoading, attentionOnly: x.attentionOnly, checking: x.checking }))
  const rows = useMemo(() => visibleRows(s), [s])
  const actions = useActions()
  const scrollRef = useRef<HTMLDivElement>(null)
  const virt = useVirtualizer({ count: rows.length, getScrollElement: () => scrollRef.current, estimateSize: () => ROW_PX, overscan: 12 })
  if (!s.host) return null
  const all = s.overview?.rows ?? []
  const attention = all.filter(needsAttention).length
  const mismatches = all.reduce((n, r) => n + r.checkpointMismatches, 0)

  return (
    <section className="panel host-overview" aria-labelledby="host-h">
      <div className="panel-head">
        <h2 id="host-h" className="panel-title">
          Images on <span className="mono">{s.host.hostname}</span>
        </h2>
        <div className="toolbar">
          <span className="small" data-testid="host-count" aria-live="polite">
            {s.overview ? <><strong>{exact(all.length)}</strong> image{all.length === 1 ? '' : 's'}, <strong>{exact(attention)}</strong> need{attention === 1 ? 's' : ''} attention</> : s.loading ? 'scanning…' : '—'}
          </span>
          <label className="check small">
            <input type="checkbox" checked={s.attentionOnly} onChange={(e) => actions.setAttentionOnly(e.target.checked)} />
            Needs attention only
          </label>
          <button type="button" className="btn btn-small" disabled={s.loading} onClick={() => void actions.refreshOverview()}>Rescan</button>
        </div>
      </div>
      <p className="small muted">
        {s.host.writable ? 'Edits are written in place (the server runs with --write), never while QEMU holds an image.' : 'Read-only: start qbm serve with --write to edit.'}{' '}
        Serving {s.host.paths.map((p) => <span key={p} className="mono">{p} </span>)}
        {s.overview?.libvirt && <>· libvirt checkpoints from <span className="mono">{s.overview.libvirt.dir}</span> ({exact(s.overview.libvirt.checkpoints)}{mismatches > 0 ? `, ${exact(mismatches)} mismatched` : ''})</>}
      </p>
      {(s.overview?.errors.length ?? 0) > 0 && (
        <details className="small">
          <summary>{s.overview!.errors.length} path{s.overview!.errors.length === 1 ? '' : 's'} not scanned</summary>
          <ul>{s.overview!.errors.map((e) => <li key={e.path}><span className="mono">{e.path}</span>: {e.message}</li>)}</ul>
        </details>
      )}
      <div className="host-head small" aria-hidden="true">
        <span>Path</span><span className="num">Virtual size</span><span className="num">Bitmaps</span><span className="num">In use</span>
        <span className="num">Max dirty</span><span>Held by</span><span>Check</span><span>Checkpoints</span>
      </div>
      <div ref={scrollRef} className="host-scroll" role="list" aria-label="Images on the host" data-testid="host-list"
        style={{ height: Math.min(MAX_LIST_PX, Math.max(2 * ROW_PX, rows.length * ROW_PX + 2)) }}>
        <div style={{ height: virt.getTotalSize(), position: 'relative' }}>
          {virt.getVirtualItems().map((it) => {
            const r = rows[it.index]!
            const chk = checkText(r, s.checking.includes(r.id))
            const why = attentionReasons(r)
            return (
              <div key={r.id} role="listitem" className="host-row-wrap" style={{ transform: `translateY(${it.start}px)`, height: ROW_PX }}>
                <button type="button" className={needsAttention(r) ? 'host-row attention' : 'host-row'} data-id={r.id} data-path={r.path}
                  onClick={() => void actions.openHostImage(r.id)} title={why.length ? `Needs attention: ${why.join('; ')}` : 'Open this image'} disabled={r.error !== null}>
                  <span className="mono host-path">{needsAttention(r) && <span className="attention-mark" aria-label="needs attention">!</span>}{r.path}{r.kind === 'block' && <span className="badge badge-muted">block</span>}</span>
                  <span className="num" title={r.virtualSize === null ? undefined : `${exact(r.virtualSize)} bytes`}>{r.virtualSize === null ? '—' : humanBytes(r.virtualSize)}</span>
                  <span className="num">{r.error ? '—' : r.bitmapCount}</span>
                  <span className={r.inUseCount > 0 ? 'num warn' : 'num'}>{r.error ? '—' : r.inUseCount}</span>
                  <span className="num">{r.maxDirtyPercent === null ? '—' : `${r.maxDirtyPercent.toFixed(2)}%`}</span>
                  <span className={r.holderText ? 'warn' : 'muted'} data-testid="holder">{r.holderText ?? '—'}</span>
                  <span className={chk.cls}>{chk.text}</span>
                  {(() => {
                    const text = r.checkpoints.length === 0 ? '—' : r.checkpointMismatches > 0
                      ? r.checkpoints.flatMap((c) => c.mismatches).map((m) => `${m.bitmap}: ${m.symptom ?? m.state}`).join('; ')
                      : `ok (${r.checkpoints.reduce((n, c) => n + c.checkpoints, 0)})`
                    return <span className={r.checkpointMismatches > 0 ? 'error' : 'muted'} data-testid="checkpoints" title={text}>{text}</span>
                  })()}
                </button>
              </div>
            )
          })}
        </div>
        {s.overview && rows.length === 0 && <p className="empty-note">{s.attentionOnly ? 'No image needs attention.' : 'No qcow2 image under these paths.'}</p>}
      </div>
    </section>
  )
}
