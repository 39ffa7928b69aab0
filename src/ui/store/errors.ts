/** The store's errors and notices: the last error with what we were doing, and a one-line notice. */
import type { ErrorInfo } from '../../session/api.js'

/** The last error, with what the page was doing. */
export interface AppError {
  /** what we were doing, e.g. "Opening disk.qcow2" */
  context: string
  info: ErrorInfo
}

/** The error and notice fields of the app state. */
export interface ErrorsState {
  error: AppError | null
  notice: string | null
}

/** The error and notice actions. */
export interface ErrorsActions {
  dismissError(): void
  dismissNotice(): void
  showError(context: string, e: unknown): void
}

/** No error, no notice. */
export const initialErrors = (): ErrorsState => ({ error: null, notice: null })

/** Plain ErrorInfo from anything a client call threw. */
export function errorInfo(e: unknown): ErrorInfo {
  if (e && typeof e === 'object' && 'info' in e && (e as { info: unknown }).info && typeof (e as { info: unknown }).info === 'object') {
    return (e as { info: ErrorInfo }).info
  }
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) return e as ErrorInfo
  if (e instanceof Error) return { code: e.name, message: e.message }
  return { code: 'Error', message: String(e) }
}

/** The call was cancelled (its job's Cancel, or a newer image). */
export function isAbort(e: unknown): boolean {
  return errorInfo(e).code === 'AbortError'
}

/** `fail` (show an error with its context) and the actions. */
export function createErrors(set: (p: Partial<ErrorsState>) => void): { fail: (context: string, e: unknown) => void; actions: ErrorsActions } {
  const fail = (context: string, e: unknown): void => set({ error: { context, info: errorInfo(e) } })
  return {
    fail,
    actions: {
      dismissError: () => set({ error: null }),
      dismissNotice: () => set({ notice: null }),
      showError: fail,
    },
  }
}
