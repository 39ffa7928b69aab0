/**
 * The WebSocket transport: the session runs in `qbm serve` on the host, next to the images.
 * The access token travels as a WebSocket subprotocol (`qbm-token.TOKEN`), never in a URL the
 * browser would keep; messages are MessagePack in binary frames. A dropped socket rejects the
 * calls in flight (the server cancels their jobs) and the client reconnects on its next call.
 */
import type { ClientEvents, ErrorInfo } from '../session/api.js'
import type { Transport } from './client.js'
import { decodeMessage, encodeMessage } from './codec.js'
import { type EngineRemote, connectEngine } from './rpc.js'

/** The subprotocol every qbm socket speaks; the token rides in a second one. */
export const PROTOCOL = 'qbm.v1'
export const TOKEN_PREFIX = 'qbm-token.'

/** The socket of the server that served this page (`url`: ws://host/api/socket). */
export function socketTransport(url: string, token: string): Transport {
  const sockets = new Map<EngineRemote, WebSocket>()
  return {
    canKill: false,
    connect(events: ClientEvents, onDown: (why: ErrorInfo) => void): EngineRemote {
      const ws = new WebSocket(url, [PROTOCOL, TOKEN_PREFIX + token])
      ws.binaryType = 'arraybuffer'
      const opened = new Promise<void>((resolve, reject) => {
        ws.addEventListener('open', () => resolve(), { once: true })
        ws.addEventListener('close', (e) => reject(new Error(`could not connect to the host (${e.code}${e.reason ? ': ' + e.reason : ''})`)), { once: true })
      })
      opened.catch(() => undefined)
      ws.addEventListener('close', (e) => {
        onDown({ code: 'Disconnected', message: `the connection to the host closed (${e.code}${e.reason ? ': ' + e.reason : ''}); reconnecting on the next action` })
      })
      const r = connectEngine({
        post: (d) => ws.send(d as Uint8Array<ArrayBuffer>),
        on: async (fn) => {
          ws.addEventListener('message', (e: MessageEvent) => fn(e.data))
          await opened
        },
        serialize: (m) => encodeMessage(m),
        deserialize: (d) => decodeMessage(new Uint8Array(d as ArrayBuffer)),
      }, events)
      sockets.set(r, ws)
      return r
    },
    disconnect(r) {
      sockets.get(r)?.close(1000, 'closed by the page')
      sockets.delete(r)
      r.$close()
    },
  }
}
