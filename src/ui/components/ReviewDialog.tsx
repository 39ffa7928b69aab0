/**
 * The engine's plan for the pending changes, for review before anything is written: what each
 * change does, the bitmaps afterwards, what the commit writes, and what saving costs (Chromium
 * copies the whole file). Then "Write to file" or "Download edited copy".
 */
import { useEffect, useRef, useState, type ReactNode } from 'react'
import { download } from '../download.js'
import { ensurePermission } from '../fs-access.js'
import { duration, exact, hex, humanBytes } from '../format.js'
import { useActions, useAppShallow } from '../store/hooks.js'

/** Chromium's swap-file copy, measured at 1 GiB in 12-15 s (browser-platform.md). */
const COPY_BYTES_PER_S = 75e6

export function ReviewDialog(): ReactNode {
  const { review, image } = useAppShallow((s) => ({ review: s.review, image: s.image }))
  const actions = useActions()
  const ref = useRef<HTMLDialogElement>(null)
  const [noVm, setNoVm] = useState(false)

  useEffect(() => {
    const d = ref.current
    if (d && !d.open) d.showModal()
    return () => d?.close()
  }, [])

  if (!review || !image) return null
  const saving = review.status === 'saving'
  const copyName = `${image.name.replace(/\.qcow2?$/i, '')}-edited.qcow2`

  async function downloadCopy(): Promise<void> {
    const blob = await actions.editedCopy()
    if (blob) download(blob, copyName)
  }

  return (
    <dialog
      ref={ref}
      className="review"
      aria-labelledby="review-h"
      onCancel={(e) => { e.preventDefault(); if (!saving) actions.closeReview() }}
    >
      <h2 id="review-h">Review changes to <span className="mono">{image.name}</span></h2>
      {review.status === 'planning' && <p className="muted">Planning…</p>}

      {review.status === 'refused' && (
        <>
          <div className="callout callout-error" role="alert">
            <strong>The engine refuses these changes; nothing was written.</strong>
            <p>{review.error.message}</p>
            {(review.error.field || review.error.offset !== undefined) && (
              <p className="mono small">
                {review.error.structure && <>{review.error.structure} · </>}
                {review.error.field && <>field: {review.error.field}</>}
                {review.error.offset !== undefined && <> · offset {hex(review.error.offset)}</>}
              </p>
            )}
          </div>
          {review.needsForce && (
            <div className="force">
              <label className="check">
                <input type="checkbox" checked={noVm} onChange={(e) => setNoVm(e.target.checked)} />
                No VM or other program has this image open: its in-use bitmaps are left over from a writer that is gone.
              </label>
              <button type="button" className="btn btn-small" disabled={!noVm} onClick={() => void actions.reviewChanges(true)}>Plan again</button>
            </div>
          )}
        </>
      )}

      {(review.status === 'ready' || review.status === 'saving') && (
        <>
          <ol className="plan-summary">
            {review.plan.summary.map((s, i) => <li key={i}>{s}</li>)}
          </ol>
          {review.plan.warnings.length > 0 && (
            <div className="callout callout-warn"><ul>{review.plan.warnings.map((w) => <li key={w}>{w}</li>)}</ul></div>
          )}
          <table className="grid-table result-table">
            <caption className="small muted">Bitmaps after saving</caption>
            <thead><tr><th scope="col">Name</th><th scope="col" className="num">Granularity</th><th scope="col">Flags</th></tr></thead>
            <tbody>
              {review.plan.result.length === 0 && <tr><td colSpan={3} className="muted">no bitmaps</td></tr>}
              {review.plan.result.map((b) => (
                <tr key={b.name}><td className="mono">{b.name}</td><td className="num">{humanBytes(b.granularity)}</td><td>{b.flags.join(', ') || '—'}</td></tr>
              ))}
            </tbody>
          </table>
          <p className="small muted">
            The commit allocates {review.plan.allocatedClusters} cluster{review.plan.allocatedClusters === 1 ? '' : 's'} and frees {review.plan.freedClusters},
            in {review.plan.writeCount} writes ({exact(review.plan.writeBytes)} bytes): new clusters first, then the header switches over in one write, then the old clusters are freed.
          </p>
          {image.writable && image.writeMode === 'in-place' ? (
            <p className="small">
              The host writes these {review.plan.writeCount} writes in place, in this order, with a flush between the steps — the same path as <span className="mono">qbm bitmap</span>.
              Just before the first write it checks again that the file is the one these changes were planned on and that no QEMU process has opened it.
            </p>
          ) : image.writable ? (
            <p className="small">
              Saving copies the whole file ({humanBytes(review.plan.fileSize)}) into <span className="mono">{image.name}.crswap</span>, applies the writes there,
              and replaces the original in one step{review.plan.fileSize > 200e6 && <> — about {duration(review.plan.fileSize / COPY_BYTES_PER_S)}, and as much free disk space</>}.
              If anything fails, the original stays as it was.
            </p>
          ) : (
            <p className="small">Opened read-only: save the result as a new file. The original stays as it is.</p>
          )}
        </>
      )}

      <div className="form-buttons dialog-buttons">
        {image.writable && (
          <button type="button" className="btn btn-primary" disabled={review.status !== 'ready'}
            // The permission request must run inside this click: no await before it.
            onClick={() => void actions.writeToFile((h) => ensurePermission(h, 'readwrite'))}>
            {saving ? 'Writing…' : 'Write to file'}
          </button>
        )}
        {image.writeMode === 'copy' && (
          <button type="button" className={image.writable ? 'btn' : 'btn btn-primary'} disabled={review.status !== 'ready'} onClick={() => void downloadCopy()}>
            Download edited copy
          </button>
        )}
        <button type="button" className="btn" disabled={saving} onClick={actions.closeReview}>Close</button>
      </div>
    </dialog>
  )
}
