/**
 * Jobs of the app store: every long engine call the page waits for (open, scan, SHA-256, export,
 * plan, commit, analysis, host), with progress and a Cancel that aborts its signal.
 */

/** What a job is doing (the job bar's icon and wording). */
export type JobKind = 'open' | 'scan' | 'sha256' | 'export' | 'plan' | 'commit' | 'analysis' | 'host'

/** A running job, with its progress. */
export interface Job {
  id: number
  kind: JobKind
  label: string
  doneBytes: number
  totalBytes: number
  startedAt: number
  /** what is happening now, when the label alone does not say (commit: 'copying', then each write) */
  step?: string
  /** a commit copies the whole file first: its size, for the ETA */
  fileSize?: number
  /** what doneBytes/totalBytes count when not bytes */
  unit?: 'images'
}

/** The jobs field of the app state. */
export interface JobsState {
  jobs: Job[]
}

/** The jobs action of the page: Cancel. */
export interface JobsActions {
  cancelJob(id: number): void
}

/** What the other slices do with jobs. */
export interface JobControl {
  /** A job in the list, and the signal its Cancel aborts. */
  start(kind: JobKind, label: string): { job: Job; signal: AbortSignal }
  progress(id: number, doneBytes: number, totalBytes: number): void
  /** Change a running job's fields (a commit's step, a host job's unit). */
  patch(id: number, p: Partial<Job>): void
  end(id: number): void
  /** Abort every running job (another image is being opened). */
  abortAll(): void
}

/** No job. */
export const initialJobs = (): JobsState => ({ jobs: [] })

/** Jobs over the store's `jobs` field. */
export function createJobs(get: () => JobsState, set: (p: Partial<JobsState>) => void, now: () => number): { control: JobControl; actions: JobsActions } {
  const controllers = new Map<number, AbortController>()
  let seq = 0
  const patch = (id: number, p: Partial<Job>): void => set({ jobs: get().jobs.map((j) => (j.id === id ? { ...j, ...p } : j)) })
  const control: JobControl = {
    start(kind, label) {
      const id = ++seq
      const c = new AbortController()
      controllers.set(id, c)
      const job: Job = { id, kind, label, doneBytes: 0, totalBytes: 0, startedAt: now() }
      set({ jobs: [...get().jobs, job] })
      return { job, signal: c.signal }
    },
    progress: (id, doneBytes, totalBytes) => patch(id, { doneBytes, totalBytes }),
    patch,
    end(id) {
      controllers.delete(id)
      set({ jobs: get().jobs.filter((j) => j.id !== id) })
    },
    abortAll() {
      for (const c of controllers.values()) c.abort()
    },
  }
  return { control, actions: { cancelJob: (id) => controllers.get(id)?.abort() } }
}
