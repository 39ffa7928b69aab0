/**
 * Which transport this page uses: the WebSocket of the `qbm serve` that served it when the page
 * was opened with its access token (`#token=…`, kept for this tab in sessionStorage and taken
 * out of the address bar), else the Web Worker. The UI gets an EngineClient either way.
 */
import type { Transport } from './client.js'
import { socketTransport } from './socket.js'
import { workerTransport } from './worker.js'

const KEY = 'qbm-host-token'

/** The host's token from the URL fragment or this tab's storage, or null in plain browser mode. */
export function hostToken(loc: Location = location, store: Storage | undefined = globalThis.sessionStorage): string | null {
  const m = /(?:^#|&)token=([A-Za-z0-9_-]{22,})(?:&|$)/.exec(loc.hash)
  if (m) {
    store?.setItem(KEY, m[1]!)
    history.replaceState(null, '', loc.pathname + loc.search)
    return m[1]!
  }
  return store?.getItem(KEY) ?? null
}

/** The transport for this page. */
export function pickTransport(): { transport: Transport; host: boolean } {
  const token = hostToken()
  if (!token) return { transport: workerTransport(), host: false }
  const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/socket`
  return { transport: socketTransport(url, token), host: true }
}
