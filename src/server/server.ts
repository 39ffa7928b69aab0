/**
 * `qbm serve`: the built app and the engine API from one origin. Each WebSocket connection gets
 * its own EngineSession over the host's images; a dropped connection cancels its jobs and
 * closes its images. Every request passes the rules of security.ts first; every socket message
 * is decoded, size-limited and checked (validate.ts) before birpc hands it to the session.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { EngineSession } from '../session/session.js'
import type { SessionHost } from '../session/host.js'
import { decodeMessage, encodeMessage } from '../transport/codec.js'
import { serveEngine } from '../transport/rpc.js'
import { PROTOCOL, TOKEN_PREFIX } from '../transport/socket.js'
import { SECURITY_HEADERS, hostAllowed, isWildcard, newToken, originAllowed, tokenMatches } from './security.js'
import { serveStatic } from './static.js'
import { checkRequest } from './validate.js'

/** The largest socket message accepted (checkpoint XML files are the big ones). */
export const MAX_MESSAGE_BYTES = 8 << 20
/** Calls one connection may have in flight (cancel is not counted against it). */
export const MAX_IN_FLIGHT = 64
/** Open sockets at once (every tab of every user with the token). */
export const MAX_CONNECTIONS = 32
/** Bytes queued for a page that does not read: past this, its socket is closed. */
export const MAX_QUEUED_BYTES = 128 << 20
const SOCKET_PATH = '/api/socket'
const PING_MS = 30_000

export interface ServeOptions {
  host: SessionHost
  /** the built app (dist/) */
  appDir: string
  listenHost: string
  /** 0: any free port */
  port: number
  /** for tests; a fresh random one otherwise */
  token?: string
  log?: (line: string) => void
}

export interface RunningServer {
  url: string
  port: number
  token: string
  /** open sockets */
  connections(): number
  close(): Promise<void>
}

/**
 * A close reason that fits the frame: at most 123 bytes of UTF-8 (RFC 6455 §5.5: a control
 * frame carries 125 bytes, 2 of them the code), cut at a character. ws throws on a longer one,
 * which once let a malformed message whose refusal text held '✖' (3 bytes) crash the server.
 */
export function closeReason(text: string): string {
  let out = ''
  let bytes = 0
  for (const ch of text) {
    const n = Buffer.byteLength(ch)
    if (bytes + n > 123) break
    out += ch
    bytes += n
  }
  return out
}

function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n\r\n${text}\n`)
}

/** Start listening; resolves once the port is bound. */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const token = opts.token ?? newToken()
  const log = opts.log ?? (() => undefined)
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE_BYTES,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
  })

  const server: Server = createServer((req, res) => {
    if (!hostAllowed(req.headers.host, opts.listenHost)) {
      res.writeHead(421, { ...SECURITY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' }).end('this server answers to its own address and localhost names only\n')
      return
    }
    serveStatic(opts.appDir, req, res, SECURITY_HEADERS)
  })

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined)
    if (!hostAllowed(req.headers.host, opts.listenHost)) return refuse(socket, 421, 'Misdirected Request')
    if ((req.url ?? '').split('?')[0] !== SOCKET_PATH) return refuse(socket, 404, 'Not Found')
    if (!originAllowed(req.headers.origin, req.headers.host)) return refuse(socket, 403, 'Forbidden (foreign origin)')
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim())
    const given = offered.find((p) => p.startsWith(TOKEN_PREFIX))?.slice(TOKEN_PREFIX.length)
    if (!tokenMatches(token, given)) return refuse(socket, 401, 'Unauthorized (missing or wrong token)')
    if (!offered.includes(PROTOCOL)) return refuse(socket, 400, 'Bad Request (subprotocol)')
    if (wss.clients.size >= MAX_CONNECTIONS) return refuse(socket, 503, `Service Unavailable (${MAX_CONNECTIONS} connections open)`)
    wss.handleUpgrade(req, socket, head, (ws) => connect(ws, req))
  })

  function connect(ws: WebSocket, req: IncomingMessage): void {
    log(`connection from ${req.socket.remoteAddress ?? '?'}`)
    let alive = true
    ws.on('pong', () => { alive = true })
    const ping = setInterval(() => {
      if (!alive) { ws.terminate(); return }
      alive = false
      ws.ping()
    }, PING_MS)
    let inFlight = 0
    let listener: ((m: unknown) => void) | undefined
    const send = (m: unknown): void => {
      if (ws.readyState !== ws.OPEN) return
      // A page that stops reading does not make the server hold its answers without bound.
      if (ws.bufferedAmount > MAX_QUEUED_BYTES) { ws.terminate(); return }
      ws.send(encodeMessage(m))
    }
    // Progress after the socket closed is dropped: a call on a closed birpc rejects, and an
    // unhandled rejection would end the process.
    const session = new EngineSession(opts.host, (jobId, d, t, step) => { if (!page.$closed) page.progress(jobId, d, t, step).catch(() => undefined) })
    const page = serveEngine(session, {
      post: (data) => {
        if ((data as { t?: string }).t === 's') inFlight--
        send(data)
      },
      on: (fn) => { listener = fn },
    }, (e) => log(`socket: ${(e as Error).message ?? String(e)}`))
    ws.on('message', (data, isBinary) => {
      try {
        onMessage(data, isBinary)
      } catch (e) {
        // Whatever a message does, it ends at most its own connection.
        log(`socket: ${(e as Error).message ?? String(e)}`)
        ws.close(1011, 'internal error')
      }
    })
    const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
      if (!isBinary) { ws.close(1003, 'binary MessagePack frames only'); return }
      let msg: unknown
      try {
        msg = decodeMessage(Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]))
      } catch {
        ws.close(1007, 'malformed message')
        return
      }
      const c = checkRequest(msg)
      if (!c.ok) {
        if (c.id) send({ t: 's', i: c.id, e: { code: 'BadRequest', message: c.message } })
        else ws.close(1008, closeReason(c.message))
        return
      }
      // cancel holds nothing and is what frees the slots: never refused.
      if (inFlight >= MAX_IN_FLIGHT && c.msg.m !== 'cancel') {
        send({ t: 's', i: c.msg.i, e: { code: 'Busy', message: `more than ${MAX_IN_FLIGHT} calls in flight on one connection` } })
        return
      }
      inFlight++
      listener?.(c.msg)
    }
    ws.on('close', () => {
      clearInterval(ping)
      session.dispose()
      page.$close()
      log('connection closed: its jobs were cancelled')
    })
    ws.on('error', () => undefined)
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.listenHost, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  const shown = isWildcard(opts.listenHost) ? '127.0.0.1' : opts.listenHost.includes(':') ? `[${opts.listenHost}]` : opts.listenHost
  return {
    url: `http://${shown}:${port}/#token=${token}`,
    port,
    token,
    connections: () => wss.clients.size,
    close: () => new Promise<void>((resolve) => {
      for (const c of wss.clients) c.terminate()
      wss.close()
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
