/** Progress of the current long job, with Cancel; hidden for jobs shorter than a blink. */
import { useEffect, useState, type ReactNode } from 'react'
import { duration, humanBytes } from '../format.js'
import { visibleJob } from '../store/selectors.js'
import { useActions, useApp } from '../store/hooks.js'

/** A job shows up once it has run this long. */
const SHOW_AFTER_MS = 150

export function JobBar(): ReactNode {
  const job = useApp(visibleJob)
  const actions = useActions()
  const [, tick] = useState(0)
  const jobId = job?.id

  // Re-render on a clock while a job runs: to show it once it outlives a blink, and to move
  // the ETA. Keyed on the job's id: progress updates (every 50 ms) must not restart the clock.
  useEffect(() => {
    if (jobId === undefined) return
    const t = setInterval(() => tick((n) => n + 1), 100)
    return () => clearInterval(t)
  }, [jobId])

  const now = Date.now()

  if (!job || now - job.startedAt < SHOW_AFTER_MS) return <div className="job-bar job-bar-idle" />
  const copying = job.step === 'copying'
  const known = job.totalBytes > 0 && !copying
  const frac = known ? job.doneBytes / job.totalBytes : 0
  const elapsed = (now - job.startedAt) / 1000
  const eta = known && frac > 0.02 ? elapsed * (1 - frac) / frac : NaN
  return (
    <div className="job-bar" role="status" aria-live="polite">
      <label className="job-label" htmlFor={`job-${job.id}`}>
        {job.label}
        {copying && job.fileSize !== undefined && (
          <span className="muted"> — Chromium is copying the file ({humanBytes(job.fileSize)}) before writing · {duration(elapsed)}</span>
        )}
        {known && (
          <span className="muted">
            {' '}— {humanBytes(job.doneBytes)} of {humanBytes(job.totalBytes)} ({Math.floor(frac * 100)}%)
            {Number.isFinite(eta) && ` · about ${duration(eta)} left`}
          </span>
        )}
      </label>
      <progress id={`job-${job.id}`} max={known ? job.totalBytes : undefined} value={known ? job.doneBytes : undefined} />
      {(job.kind === 'scan' || job.kind === 'sha256' || job.kind === 'export') && (
        <button type="button" className="btn btn-small" onClick={() => actions.cancelJob(job.id)}>
          Cancel
        </button>
      )}
    </div>
  )
}
