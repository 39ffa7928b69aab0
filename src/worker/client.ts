/**
 * The page's side of the engine worker (after Squoosh's worker bridge): starts the worker on
 * first use, passes progress callbacks with Comlink.proxy, and turns an AbortSignal into a
 * cancel. Cancelling first asks the worker to stop at its next check (reads are async, so the
 * worker sees the message between chunks and keeps its caches); if the call has not settled
 * after HARD_STOP_MS the worker is terminated, the only way to stop code stuck in a loop, and
 * the next call starts a fresh worker that reopens the last image.
 */
import * as Comlink from 'comlink'
import type { EngineApi, EngineClient, ErrorInfo, OpenSource, ProgressFn } from './api.js'

const HARD_STOP_MS = 500

/** Error thrown by client calls; `info` is the engine's plain error. */
export class EngineCallError extends Error {
  override readonly name = 'EngineCallError'
  constructor(readonly info: ErrorInfo) {
    super(info.message)
  }
}

const ABORTED: ErrorInfo = { code: 'AbortError', message: 'operation cancelled' }

/** Normalize whatever a Comlink call rejected with into an EngineCallError. */
export function toCallError(e: unknown): EngineCallError {
  if (e instanceof EngineCallError) return e
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) return new EngineCallError(e as ErrorInfo)
  if (e instanceof Error) return new EngineCallError({ code: e.name, message: e.message })
  return new EngineCallError({ code: 'Error', message: String(e) })
}

export interface ClientOptions {
  /** Makes the worker; tests and other bundlers may replace it. */
  createWorker?: () => Worker
  /** Called after a hard stop replaced the worker (its scan indexes are gone). */
  onRestart?: () => void
}

function defaultWorker(): Worker {
  return new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'qbm-engine' })
}

export function createEngineClient(opts: ClientOptions = {}): EngineClient {
  const make = opts.createWorker ?? defaultWorker
  let worker: Worker | undefined
  let remote: Comlink.Remote<EngineApi> | undefined
  /** what to reopen after a hard stop: one image, or a set and the current one in it */
  let lastOpen: { kind: 'one'; source: OpenSource } | { kind: 'set'; sources: OpenSource[]; active: number } | undefined
  /** A hard stop happened: the next call must reopen `lastOpen` first. */
  let reopening: Promise<void> | undefined
  let needsReopen = false
  let jobSeq = 0
  /** commits in flight: the worker is never terminated under one */
  let committing = 0
  /** rejecters of calls in flight, so a hard stop never leaves a promise hanging */
  const inFlight = new Set<(e: EngineCallError) => void>()

  function start(): Comlink.Remote<EngineApi> {
    if (!remote) {
      worker = make()
      remote = Comlink.wrap<EngineApi>(worker)
    }
    return remote
  }

  async function ready(): Promise<Comlink.Remote<EngineApi>> {
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

  function hardStop(): void {
    worker?.terminate()
    worker = undefined
    remote = undefined
    reopening = undefined
    needsReopen = lastOpen !== undefined
    const err = new EngineCallError({ code: 'AbortError', message: 'cancelled: the engine was restarted' })
    for (const reject of [...inFlight]) reject(err)
    inFlight.clear()
    opts.onRestart?.()
  }

  /** Run one call with a job id, an optional signal and conversion of its errors. */
  async function call<T>(fn: (api: Comlink.Remote<EngineApi>, jobId: number) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw new EngineCallError(ABORTED)
    const api = await ready()
    const jobId = ++jobSeq
    const pending = fn(api, jobId)
    return new Promise<T>((resolve, reject) => {
      let settled = false
      let finished = false
      const cleanup = (): void => {
        inFlight.delete(fail)
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
        const timer = setTimeout(() => {
          if (!finished && remote === api && committing === 0) hardStop()
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

  function progressProxy(onProgress?: ProgressFn): ProgressFn | undefined {
    return onProgress ? Comlink.proxy(onProgress) : undefined
  }

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
    scan: (i, onProgress, signal) => call((api, id) => api.scan(i, progressProxy(onProgress), id), signal),
    heatmap: (i, start, end, cells, signal) => call((api, id) => api.heatmap(i, start, end, cells, id), signal),
    extentPage: (i, first, count) => call((api) => api.extentPage(i, first, count)),
    extentIndex: (i, offset) => call((api) => api.extentIndex(i, offset)),
    extentWindow: (i, from, to) => call((api) => api.extentWindow(i, from, to)),
    extentsInRange: (i, from, to, limit) => call((api) => api.extentsInRange(i, from, to, limit)),
    exportExtents: (i, format, from, to, signal) => call((api, id) => api.exportExtents(i, format, from, to, id), signal),
    sha256: (i, onProgress, signal) => call((api, id) => api.sha256(i, progressProxy(onProgress), id), signal),
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
    // A commit is never cancelled: no signal, and it must not be hard-stopped half-way.
    async commitPlan(planId, onProgress) {
      committing++
      try {
        return await call((api) => api.commitPlan(planId, onProgress ? Comlink.proxy(onProgress) : undefined))
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
    dispose() {
      lastOpen = undefined
      worker?.terminate()
      worker = undefined
      remote = undefined
    },
  }
}
