/** Progress of the current long job, with Cancel; hidden for jobs shorter than a blink. */
import { useEffect, useRef, useState, type ReactNode } from 'react'
import { duration, humanBytes } from '../format.js'
import { visibleJob } from '../store/selectors.js'
import { useActions, useApp } from '../store/hooks.js'

/** A job shows up once it has run this long. */
const SHOW_AFTER_MS = 150

/**
 * The browser's copy of the file into its swap file reports no progress, so its ETA comes from
 * the copy rate measured on this machine's last write (kept in localStorage), or a cautious
 * 200 MB/s before the first one.
 */
const RATE_KEY = 'qbm.copyBytesPerSecond'
const DEFAULT_COPY_RATE = 200e6
function copyRate(): number {
  try {
    const v = Number(localStorage.getItem(RATE_KEY))
    return Number.isFinite(v) && v > 1e6 ? v : DEFAULT_COPY_RATE
  } catch {
    return DEFAULT_COPY_RATE
  }
}
function rememberCopyRate(bytesPerSecond: number): void {
  try { localStorage.setItem(RATE_KEY, String(Math.round(bytesPerSecond))) } catch { /* private mode */ }
}

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

  // Time the copy phase of a write, to estimate the next one.
  const copyStart = useRef<{ id: number; at: number; size: number } | undefined>(undefined)
  const copyingNow = job?.step === 'copying'
  useEffect(() => {
    if (copyingNow && job && job.fileSize !== undefined) {
      if (copyStart.current?.id !== job.id) copyStart.current = { id: job.id, at: Date.now(), size: job.fileSize }
      return
    }
    const c = copyStart.current
    if (c && job?.id === c.id) {
      const secs = (Date.now() - c.at) / 1000
      if (secs > 0.2) rememberCopyRate(c.size / secs)
    }
    copyStart.current = undefined
  }, [copyingNow, job])

  const now = Date.now()

  if (!job || now - job.startedAt < SHOW_AFTER_MS) return <div className="job-bar job-bar-idle" />
  const copying = job.step === 'copying'
  const elapsed = (now - job.startedAt) / 1000
  const copyEstimate = copying && job.fileSize !== undefined ? job.fileSize / copyRate() : NaN
  const known = job.totalBytes > 0 && !copying
  const frac = known ? job.doneBytes / job.totalBytes : 0
  const eta = known && frac > 0.02 ? elapsed * (1 - frac) / frac : NaN
  const copyLeft = Number.isFinite(copyEstimate) ? Math.max(0, copyEstimate - elapsed) : NaN
  return (
    <div className="job-bar" role="status" aria-live="polite">
      <label className="job-label" htmlFor={`job-${job.id}`}>
        {job.label}
        {copying && job.fileSize !== undefined && (
          <span className="muted">
            {' '}— the browser copies the whole file ({humanBytes(job.fileSize)}) before writing · {duration(elapsed)}
            {Number.isFinite(copyLeft) && (copyLeft > 0 ? ` · about ${duration(copyLeft)} left (estimated at ${humanBytes(copyRate())}/s)` : ' · finishing')}
          </span>
        )}
        {known && (
          <span className="muted">
            {' '}— {job.unit === 'images' ? `${job.doneBytes} of ${job.totalBytes} images` : `${humanBytes(job.doneBytes)} of ${humanBytes(job.totalBytes)}`} ({Math.floor(frac * 100)}%)
            {Number.isFinite(eta) && ` · about ${duration(eta)} left`}
          </span>
        )}
      </label>
      {copying && Number.isFinite(copyEstimate)
        ? <progress id={`job-${job.id}`} max={1} value={Math.min(0.99, elapsed / Math.max(copyEstimate, 0.001))} />
        : <progress id={`job-${job.id}`} max={known ? job.totalBytes : undefined} value={known ? job.doneBytes : undefined} />}
      {(job.kind === 'scan' || job.kind === 'sha256' || job.kind === 'export' || job.kind === 'plan' || job.kind === 'host') && (
        <button type="button" className="btn btn-small" onClick={() => actions.cancelJob(job.id)}>
          Cancel
        </button>
      )}
    </div>
  )
}
