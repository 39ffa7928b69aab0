/**
 * The page's side of the engine, whichever transport carries it (after Squoosh's worker
 * bridge): connects on first use, tags long calls with a job id so progress events find their
 * callback, and turns an AbortSignal into a cancel. When a call ignores the cancel for
 * HARD_STOP_MS and the transport can force a stop (a worker: terminate), it does; when the
 * transport goes away (a stopped worker, a dropped socket), calls in flight are rejected and
 * the next call reconnects and reopens the last image first.
 */
import type {
  ClientEvents, CommitProgressFn, EngineApi, EngineClient, ErrorInfo, OpenSource, ProgressFn,
} from '../session/api.js'
import type { EngineRemote } from './rpc.js'

const HARD_STOP_MS = 500

/** Error thrown by client calls; `info` is the engine's plain error. */
export class EngineCallError extends Error {
  override readonly name = 'EngineCallError'
  constructor(readonly info: ErrorInfo) {
    super(info.message)
  }
}

const ABORTED: ErrorInfo = { code: 'AbortError', message: 'operation cancelled' }

/** Normalize whatever a call rejected with into an EngineCallError. */
export function toCallError(e: unknown): EngineCallError {
  if (e instanceof EngineCallError) return e
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) return new EngineCallError(e as ErrorInfo)
  if (e instanceof Error) return new EngineCallError({ code: e.name, message: e.message })
  return new EngineCallError({ code: 'Error', message: String(e) })
}

/** How the client reaches a session. */
export interface Transport {
  /** Start a connection; `onDown` is called once if it goes away by itself. */
  connect(events: ClientEvents, onDown: (why: ErrorInfo) => void): EngineRemote
  /** Stop a connection for good (also the hard stop, when `canKill`). */
  disconnect(remote: EngineRemote): void
  /** true when disconnect() stops code the session runs (a worker), so a stuck call can be killed */
  readonly canKill: boolean
}

export interface ClientOptions {
  /** Called after the connection was replaced (hard stop, dropped socket): its scan indexes are gone. */
  onRestart?: () => void
}

export function createEngineClient(transport: Transport, opts: ClientOptions = {}): EngineClient {
  let remote: EngineRemote | undefined
  /** what to reopen after a restart: one image, or a set and the current one in it */
  let lastOpen: { kind: 'one'; source: OpenSource } | { kind: 'set'; sources: OpenSource[]; active: number } | undefined
  let reopening: Promise<void> | undefined
  let needsReopen = false
  let jobSeq = 0
  /** commits in flight: the connection is never killed under one */
  let committing = 0
  /** rejecters of calls in flight, so a lost connection never leaves a promise hanging */
  const inFlight = new Set<(e: EngineCallError) => void>()
  /** progress callbacks of calls in flight, by job id */
  const progress = new Map<number, (d: number, t: number, step?: string) => void>()
  const events: ClientEvents = {
    progress(jobId, d, t, step) {
      try { progress.get(jobId)?.(d, t, step) } catch { /* a callback's error is not the engine's */ }
    },
  }

  function lost(r: EngineRemote, why: ErrorInfo): void {
    if (remote !== r) return
    remote = undefined
    reopening = undefined
    needsReopen = lastOpen !== undefined
    const err = new EngineCallError(why)
    for (const reject of [...inFlight]) reject(err)
    inFlight.clear()
    opts.onRestart?.()
  }

  function start(): EngineRemote {
    if (!remote) {
      const r: EngineRemote = transport.connect(events, (why) => lost(r, why))
      remote = r
    }
    return remote
  }

  async function ready(): Promise<EngineRemote> {
    const r = start()
    if (needsReopen && lastOpen) {
      needsReopen = false
      const src = lastOpen
      reopening = (src.kind === 'one'
        ? r.open(src.source).then(() => undefined)
        : r.openSet(src.sources).then(() => r.activate(src.active)).then(() => undefined)
      ).catch(() => undefined)
    }
    if (reopening) await reopening
    return r
  }

  function hardStop(r: EngineRemote): void {
    transport.disconnect(r)
    lost(r, { code: 'AbortError', message: 'cancelled: the engine was restarted' })
  }

  /** Run one call with a job id, an optional signal and progress, converting its errors. */
  async function call<T>(
    fn: (api: EngineRemote, jobId: number) => Promise<T>, signal?: AbortSignal, onProgress?: (d: number, t: number, step?: string) => void,
  ): Promise<T> {
    if (signal?.aborted) throw new EngineCallError(ABORTED)
    const api = await ready()
    const jobId = ++jobSeq
    if (onProgress) progress.set(jobId, onProgress)
    const pending = fn(api, jobId)
    return new Promise<T>((resolve, reject) => {
      let settled = false
      let finished = false
      const cleanup = (): void => {
        inFlight.delete(fail)
        progress.delete(jobId)
        signal?.removeEventListener('abort', onAbort)
      }
      function fail(e: EngineCallError): void {
        if (settled) return
        settled = true
        cleanup()
        reject(e)
      }
      function onAbort(): void {
        fail(new EngineCallError(ABORTED))
        void api.cancel(jobId).catch(() => undefined)
        if (!transport.canKill) return
        const timer = setTimeout(() => {
          if (!finished && remote === api && committing === 0) hardStop(api)
        }, HARD_STOP_MS)
        void pending.finally(() => clearTimeout(timer)).catch(() => undefined)
      }
      inFlight.add(fail)
      signal?.addEventListener('abort', onAbort, { once: true })
      pending.then(
        (v) => {
          finished = true
          if (settled) return
          settled = true
          cleanup()
          resolve(v)
        },
        (e: unknown) => {
          finished = true
          fail(toCallError(e))
        },
      )
    })
  }

  const blob = (type: string) => (bytes: Uint8Array) => new Blob([bytes as Uint8Array<ArrayBuffer>], { type })

  return {
    async open(source, signal) {
      const r = await call((api, id) => api.open(source, id), signal)
      lastOpen = { kind: 'one', source }
      needsReopen = false
      return r
    },
    async openSet(sources, signal) {
      const r = await call((api, id) => api.openSet(sources, id), signal)
      lastOpen = { kind: 'set', sources, active: r.activeId }
      needsReopen = false
      return r
    },
    async activate(imageId) {
      const r = await call((api) => api.activate(imageId))
      if (lastOpen?.kind === 'set') lastOpen = { ...lastOpen, active: imageId }
      return r
    },
    scan: (i, onProgress?: ProgressFn, signal?) => call((api, id) => api.scan(i, id), signal, onProgress),
    heatmap: (i, start, end, cells, signal) => call((api, id) => api.heatmap(i, start, end, cells, id), signal),
    heatmapPreview: (i, start, end, cells) => call((api) => api.heatmapPreview(i, start, end, cells)),
    extentPage: (i, first, count) => call((api) => api.extentPage(i, first, count)),
    extentIndex: (i, offset) => call((api) => api.extentIndex(i, offset)),
    extentWindow: (i, from, to) => call((api) => api.extentWindow(i, from, to)),
    extentsInRange: (i, from, to, limit) => call((api) => api.extentsInRange(i, from, to, limit)),
    exportExtents: (i, format, from, to, signal) =>
      call((api, id) => api.exportExtents(i, format, from, to, id), signal).then(blob(format === 'csv' ? 'text/csv' : 'application/json')),
    sha256: (i, onProgress, signal) => call((api, id) => api.sha256(i, id), signal, onProgress),
    overlay: (i, start, end, cells, signal) => call((api, id) => api.overlay(i, start, end, cells, id), signal),
    extentSplits: (i, first, count) => call((api) => api.extentSplits(i, first, count)),
    estimate: (i, signal) => call((api, id) => api.estimate(i, id), signal),
    algebra: (a, b, op, signal) => call((api, id) => api.algebra(a, b, op, id), signal),
    algebraHeat: (r, start, end, cells) => call((api) => api.algebraHeat(r, start, end, cells)),
    algebraPage: (r, first, count) => call((api) => api.algebraPage(r, first, count)),
    algebraWindow: (r, from, to) => call((api) => api.algebraWindow(r, from, to)),
    dropAlgebra: (r) => call((api) => api.dropAlgebra(r)),
    checkpoints: (files) => call((api) => api.checkpoints(files)),
    planEdits: (request, signal) => call((api, id) => api.planEdits(request, id), signal),
    // A commit is never cancelled: no signal, and its connection is never killed half-way.
    async commitPlan(planId, onProgress?: CommitProgressFn) {
      committing++
      try {
        return await call((api, id) => api.commitPlan(planId, id), undefined, onProgress ? (d, t, step) => onProgress(d, t, step ?? '') : undefined)
      } finally {
        committing--
      }
    },
    editedCopy: (planId) => call((api) => api.editedCopy(planId)),
    dropPlan: (planId) => call((api) => api.dropPlan(planId)),
    async close() {
      lastOpen = undefined
      needsReopen = false
      if (remote) await remote.close()
    },
    hostInfo: () => call((api) => api.hostInfo()),
    hostOverview: (onProgress, signal, ids) => call((api, id) => api.hostOverview(id, ids), signal, onProgress),
    hostCheck: (imageId, signal) => call((api, id) => api.hostCheck(imageId, id), signal),
    dispose() {
      lastOpen = undefined
      if (remote) transport.disconnect(remote)
      remote = undefined
    },
  }
}

