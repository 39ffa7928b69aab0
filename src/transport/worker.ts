/**
 * The Web Worker transport: the session runs in a dedicated module worker
 * (src/worker/engine.worker.ts); messages are structured clones, so Files, handles and typed
 * arrays cross as they are. A hard stop terminates the worker, the only way to stop code stuck
 * in a loop.
 */
import type { ClientEvents, ErrorInfo } from '../session/api.js'
import type { Transport } from './client.js'
import { type EngineRemote, connectEngine } from './rpc.js'

function defaultWorker(): Worker {
  return new Worker(new URL('../worker/engine.worker.ts', import.meta.url), { type: 'module', name: 'qbm-engine' })
}

/** The engine in a Web Worker; `make` builds the worker (tests pass a MessagePort pair). */
export function workerTransport(make: () => Worker = defaultWorker): Transport {
  const workers = new Map<EngineRemote, Worker>()
  return {
    canKill: true,
    connect(events: ClientEvents, onDown: (why: ErrorInfo) => void): EngineRemote {
      const w = make()
      const r = connectEngine({
        post: (d) => w.postMessage(d),
        on: (fn) => w.addEventListener('message', (e: MessageEvent) => fn(e.data)),
      }, events)
      w.addEventListener('error', (e: ErrorEvent) => onDown({ code: 'WorkerError', message: `the engine stopped: ${e.message}` }))
      workers.set(r, w)
      return r
    },
    disconnect(r) {
      workers.get(r)?.terminate()
      workers.delete(r)
      r.$close()
    },
  }
}
