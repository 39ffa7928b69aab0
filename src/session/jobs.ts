/**
 * Jobs of a session: the caller tags a long call with a job id; `cancel(id)` flags it and the
 * engine stops at its next check (reads are async, so a cancel is seen between chunks). Errors
 * leave as plain ErrorInfo, the form every transport carries.
 */
import { type AbortSignalLike, AbortError, toErrorInfo } from '../engine/index.js'

/** At most one progress event per this many milliseconds per job, and always the last. */
export const PROGRESS_INTERVAL_MS = 50

export type ProgressSink = (jobId: number, doneBytes: number, totalBytes: number, step?: string) => void

interface JobState { aborted: boolean }

export class JobRegistry {
  private readonly jobs = new Map<number, JobState>()
  private disposed = false

  constructor(private readonly sink: ProgressSink, private readonly now: () => number = () => Date.now()) {}

  /** Run `fn` under job `jobId` (when given); errors become plain ErrorInfo. */
  async run<T>(jobId: number | undefined, fn: (signal: AbortSignalLike | undefined) => Promise<T>): Promise<T> {
    let signal: JobState | undefined
    if (jobId !== undefined) {
      signal = this.jobs.get(jobId) ?? { aborted: this.disposed }
      this.jobs.set(jobId, signal)
    }
    try {
      return await fn(signal)
    } catch (e) {
      // A cancelled job ends as cancelled, whatever its last read hit (a closed device, say).
      throw signal?.aborted ? toErrorInfo(new AbortError()) : toErrorInfo(e)
    } finally {
      if (jobId !== undefined) this.jobs.delete(jobId)
    }
  }

  /** A progress callback for `jobId`, throttled; undefined without a job. */
  progress(jobId: number | undefined): ((done: number, total: number, step?: string) => void) | undefined {
    if (jobId === undefined) return undefined
    let last = -Infinity
    return (done, total, step) => {
      const t = this.now()
      if (done >= total || t - last >= PROGRESS_INTERVAL_MS || step !== undefined) {
        last = t
        try { this.sink(jobId, done, total, step) } catch { /* a gone page misses progress, nothing else */ }
      }
    }
  }

  cancel(jobId: number): void {
    const j = this.jobs.get(jobId)
    if (j) j.aborted = true
  }

  /** Cancel every job (a dropped connection, a closed session); later jobs start cancelled. */
  cancelAll(): void {
    this.disposed = true
    for (const j of this.jobs.values()) j.aborted = true
  }

  get active(): number {
    return this.jobs.size
  }
}
