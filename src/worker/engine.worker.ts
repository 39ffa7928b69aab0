/**
 * The engine in a dedicated Web Worker: one EngineSession over the browser's host, served on
 * the worker's message port. Image bytes never reach the page; large fresh results (heatmap
 * cells, overlay arrays, export bytes) are transferred, not copied.
 */
import { EngineSession } from '../session/session.js'
import type { EngineApi } from '../session/api.js'
import { ENGINE_METHODS, serveEngine } from '../transport/rpc.js'
import { browserHost } from './browser-host.js'

/** The worker's global scope, as much of it as this file uses. */
const scope = self as unknown as {
  postMessage(msg: unknown, transfer: Transferable[]): void
  addEventListener(type: 'message', fn: (e: MessageEvent) => void): void
}

/** Results these methods return are made for the call: their buffers can move to the page. */
const FRESH: ReadonlySet<string> = new Set(['heatmap', 'heatmapPreview', 'overlay', 'algebraHeat', 'exportExtents'])

function buffersOf(v: unknown): ArrayBuffer[] {
  const out: ArrayBuffer[] = []
  const add = (x: unknown): void => {
    if (ArrayBuffer.isView(x) && x.buffer instanceof ArrayBuffer && x.byteOffset === 0 && x.byteLength === x.buffer.byteLength && !out.includes(x.buffer)) out.push(x.buffer)
  }
  add(v)
  if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) {
    for (const x of Object.values(v)) {
      add(x)
      if (Array.isArray(x)) x.forEach(add)
    }
  }
  return out
}

const session = new EngineSession(browserHost(), (jobId, done, total, step) => { void page.progress(jobId, done, total, step) })
/** results to transfer: marked when a FRESH method returns */
const fresh = new WeakSet<object>()
const marked = Object.create(null) as EngineApi
for (const m of ENGINE_METHODS) {
  const fn = (session[m] as (...a: unknown[]) => Promise<unknown>).bind(session)
  ;(marked as unknown as Record<string, unknown>)[m] = FRESH.has(m)
    ? async (...a: unknown[]) => { const r = await fn(...a); if (r && typeof r === 'object') fresh.add(r); return r }
    : fn
}
const page = serveEngine(marked, {
  post: (msg) => {
    const r = (msg as { r?: unknown }).r
    scope.postMessage(msg, r && typeof r === 'object' && fresh.has(r) ? buffersOf(r) : [])
  },
  on: (fn) => scope.addEventListener('message', (e) => fn(e.data)),
})
