/**
 * libvirt checkpoints against the bitmaps: the user picks or drops `virsh checkpoint-dumpxml`
 * files; per disk, each checkpoint's bitmap is healthy, in use, broken or missing, and bitmaps
 * no checkpoint refers to are orphans. Each case offers its fix: stage a removal, stage clearing
 * in_use, or say that the next backup must be full.
 */
import type { ReactNode } from 'react'
import type { CheckpointFile, CheckpointState } from '../../session/api.js'
import { useActions, useAppShallow } from '../store/hooks.js'
import { FileDropZone } from './FileDropZone.js'

/** Read the XML files as text on the page (they are small and not image bytes). */
export async function readCheckpointFiles(files: Iterable<File>): Promise<CheckpointFile[]> {
  return Promise.all([...files].map(async (f) => ({ name: f.name, text: await f.text() })))
}

const STATE_LABEL: Record<CheckpointState | 'orphan', string> = {
  healthy: 'healthy', 'in-use': 'in use', broken: 'broken', missing: 'missing', untrusted: 'untrusted', orphan: 'orphan',
}
const STATE_BADGE: Record<CheckpointState | 'orphan', string> = {
  healthy: 'badge-ok', 'in-use': 'badge-in-use', broken: 'badge-invalid', missing: 'badge-invalid', untrusted: 'badge-untrusted', orphan: 'badge-muted',
}

export function CheckpointPanel(): ReactNode {
  const { image, cps, active, images, pending } = useAppShallow((s) => ({
    image: s.image, cps: s.checkpoints, active: s.activeImageId, images: s.images, pending: s.pending,
  }))
  const actions = useActions()
  if (!image) return null
  const activeId = active ?? 1
  const staged = (kind: string, name: string): boolean => pending.some((p) => p.op === kind && 'name' in p && p.name === name)
  return (
    <section className="panel" aria-labelledby="cp-h">
      <div className="panel-head">
        <h2 id="cp-h" className="panel-title">Checkpoints</h2>
        {cps && <button type="button" className="btn-icon" aria-label="Close the checkpoint check" onClick={actions.closeCheckpoints}>×</button>}
      </div>
      <FileDropZone
        label={<>Check libvirt&apos;s checkpoints against these bitmaps: drop <code>virsh checkpoint-dumpxml</code> files here, or</>}
        button="Load checkpoint XML…" accept=".xml,text/xml,application/xml" testId="checkpoint-input"
        onFiles={(files) => void readCheckpointFiles(files).then((f) => actions.loadCheckpoints(f))} />
      {cps?.status === 'checking' && <p className="small muted">Checking…</p>}
      {cps?.error && <p className="small text-error">{cps.error.message}</p>}
      {cps?.view && (
        <div className="checkpoints" data-testid="checkpoints">
          <p className="small muted">{cps.view.checkpoints.length} checkpoint{cps.view.checkpoints.length === 1 ? '' : 's'} from {cps.files.length} file{cps.files.length === 1 ? '' : 's'}.</p>
          {cps.view.errors.map((er) => <p key={er.file} className="small text-error"><span className="mono">{er.file}</span>: {er.message}</p>)}
          {cps.view.disks.length === 0 && cps.view.checkpoints.length > 0 && <p className="small muted">No disk in these checkpoints has a bitmap.</p>}
          {cps.view.disks.map((d) => {
            const here = d.imageId === activeId
            const other = d.imageId !== null && !here ? images.find((i) => i.id === d.imageId) : undefined
            return (
              <div key={d.disk} className="cp-disk" data-disk={d.disk}>
                <h3 className="small">
                  Disk <span className="mono">{d.disk}</span>
                  {d.imageName
                    ? <> → <span className="mono">{d.imageName}</span> <span className="muted">({d.matchedBy === 'source' ? 'its source file name' : 'the only disk with bitmaps'})</span></>
                    : <span className="muted"> · no open image is this disk{d.source ? <> (<span className="mono">{d.source}</span>)</> : null}</span>}
                </h3>
                {other && <button type="button" className="btn btn-small" onClick={() => void actions.activateImage(other.id)}>Show {other.result.name} to fix</button>}
                <div className="table-wrap">
                <table className="grid-table cp-table">
                  <caption className="visually-hidden">Checkpoints of disk {d.disk}</caption>
                  <thead><tr><th scope="col">Checkpoint</th><th scope="col">Bitmap</th><th scope="col">State</th><th scope="col">What to do</th></tr></thead>
                  <tbody>
                    {d.findings.map((f) => (
                      <tr key={`${f.checkpoint}/${f.bitmap}`} data-checkpoint={f.checkpoint} data-bitmap={f.bitmap} data-state={f.state}>
                        <td className="mono">{f.checkpoint}</td>
                        <td className="mono">{f.bitmap}</td>
                        <td><span className={`badge ${STATE_BADGE[f.state]}`}>{STATE_LABEL[f.state]}</span></td>
                        <td className="small">
                          {f.state === 'missing' && <strong>Next backup must be full. </strong>}
                          {f.fix}
                          {f.state === 'in-use' && here && (
                            <button type="button" className="btn btn-small" disabled={staged('clear-in-use', f.bitmap)}
                              onClick={() => actions.addPending({ op: 'clear-in-use', name: f.bitmap, mode: 'dirty' })}>
                              {staged('clear-in-use', f.bitmap) ? 'staged' : 'Stage clear in_use (mark all dirty)'}
                            </button>
                          )}
                          {f.state === 'broken' && here && (
                            <button type="button" className="btn btn-small" disabled={staged('remove', f.bitmap)}
                              onClick={() => actions.addPending({ op: 'remove', name: f.bitmap })}>
                              {staged('remove', f.bitmap) ? 'staged' : 'Stage removal'}
                            </button>
                          )}
                        </td>
                      </tr>
                    ))}
                    {d.orphans.map((o) => (
                      <tr key={`orphan/${o.bitmap}`} data-checkpoint="" data-bitmap={o.bitmap} data-state="orphan">
                        <td className="muted">(none)</td>
                        <td className="mono">{o.bitmap}</td>
                        <td><span className={`badge ${STATE_BADGE.orphan}`}>{STATE_LABEL.orphan}</span></td>
                        <td className="small">
                          {o.fix}
                          {here && (
                            <button type="button" className="btn btn-small" disabled={staged('remove', o.bitmap)}
                              onClick={() => actions.addPending({ op: 'remove', name: o.bitmap })}>
                              {staged('remove', o.bitmap) ? 'staged' : 'Stage removal'}
                            </button>
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                </div>
              </div>
            )
          })}
        </div>
      )}
    </section>
  )
}
