/**
 * A real `qbm serve` for tests and benches: the process (bin/qbm.cjs, optionally under another
 * command such as strace), the URL from its first stdout line, and Node clients that speak the
 * page's wire: a WebSocket at /api/socket with the `qbm.v1` and `qbm-token.TOKEN` subprotocols,
 * birpc messages in MessagePack binary frames (src/transport/rpc.ts, codec.ts). Raw helpers
 * send what no well-behaved page would: any headers, any frame.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { request } from 'node:http'
import { connect as netConnect } from 'node:net'
import WebSocket from 'ws'
import type { ClientEvents, ErrorInfo } from '../session/api.js'
import { decodeMessage, encodeMessage } from '../transport/codec.js'
import { type EngineRemote, connectEngine } from '../transport/rpc.js'
import { PROTOCOL, TOKEN_PREFIX } from '../transport/socket.js'
import { QBM } from './tools.js'

/** A running `qbm serve` process. */
export interface ServeProcess {
  proc: ChildProcess
  /** the first stdout line */
  url: string
  port: number
  token: string
  /** http://127.0.0.1:PORT (the Origin and Host of the served page) */
  origin: string
  /** ws://127.0.0.1:PORT/api/socket */
  socketUrl: string
  /** everything on stdout so far (the URL line included) */
  stdout(): string
  /** everything on stderr so far */
  stderr(): string
  /** resolves when the process has exited */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  alive(): boolean
  /** SIGTERM, then SIGKILL after 5 s; resolves when it has exited */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** How to start the server. */
export interface ServeOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** a command to run the server under (e.g. ['strace', '-f', ..., '--']) */
  wrap?: string[]
  /** give up waiting for the URL line after this many ms (default 30 s) */
  timeoutMs?: number
  /** the CLI to run (default bin/qbm.cjs of this checkout; benches bundled elsewhere pass theirs) */
  qbmBin?: string
}

/**
 * Spawn `qbm serve ARGS` (add `--listen 127.0.0.1:0` yourself when a fixed port would clash)
 * and resolve once its first stdout line (the URL) has arrived. Rejects with the stderr seen
 * when the process exits first.
 */
export function startServe(args: string[], opts: ServeOptions = {}): Promise<ServeProcess> {
  const argv = [...(opts.wrap ?? []), process.execPath, opts.qbmBin ?? QBM, 'serve', ...args]
  // Its own process group: stop() signals the server and whatever it runs under (strace
  // detaches on SIGTERM and would leave the server running).
  const proc = spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let out = ''
  let err = ''
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d })
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d })
  let done = false
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => { done = true; resolve({ code, signal }) })
  })
  return new Promise<ServeProcess>((resolve, reject) => {
    const timer = setTimeout(() => { killGroup(proc.pid!); reject(new Error(`qbm serve printed no URL in ${opts.timeoutMs ?? 30_000} ms; stderr: ${err}`)) }, opts.timeoutMs ?? 30_000)
    const onData = (): void => {
      const nl = out.indexOf('\n')
      if (nl < 0) return
      clearTimeout(timer)
      proc.stdout!.off('data', onData)
      const url = out.slice(0, nl)
      const m = /^http:\/\/([^/]+)\/#token=([A-Za-z0-9_-]+)$/.exec(url)
      if (!m) { killGroup(proc.pid!); reject(new Error(`unexpected first stdout line: ${url}`)); return }
      const port = Number(/:(\d+)$/.exec(m[1]!)![1])
      const origin = `http://127.0.0.1:${port}`
      const stop = async (): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
        await stopGroup(proc.pid!)
        return exited
      }
      resolve({
        proc, url, port, token: m[2]!, origin, socketUrl: `ws://127.0.0.1:${port}/api/socket`,
        stdout: () => out, stderr: () => err, exited, alive: () => !done, stop,
      })
    }
    proc.stdout!.on('data', onData)
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`qbm serve exited (${code ?? signal}) before printing its URL: ${err}`))
    })
  })
}

const killGroup = (pgid: number): void => {
  try { process.kill(-pgid, 'SIGKILL') } catch { /* gone */ }
}

const groupAlive = (pgid: number): boolean => {
  try { process.kill(-pgid, 0); return true } catch { return false }
}

/** SIGTERM to the process group, SIGKILL after 5 s; resolves when no process of it is left. */
async function stopGroup(pgid: number): Promise<void> {
  const signal = (s: NodeJS.Signals): void => { try { process.kill(-pgid, s) } catch { /* gone */ } }
  signal('SIGTERM')
  const t0 = performance.now()
  while (groupAlive(pgid)) {
    if (performance.now() - t0 > 5000) signal('SIGKILL')
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Headers and subprotocols of a socket opened by a test. */
export interface SocketOptions {
  /** the token to offer (undefined: offer none) */
  token?: string | undefined
  /** extra subprotocols, or replace the default list entirely with `protocols` */
  protocols?: string[]
  origin?: string
  host?: string
}

function protocolsOf(o: SocketOptions): string[] {
  return o.protocols ?? [PROTOCOL, ...(o.token !== undefined ? [TOKEN_PREFIX + o.token] : [])]
}

/** Open a raw socket; resolves once open, rejects with the HTTP status when the upgrade is refused. */
export function openSocket(url: string, o: SocketOptions): Promise<WebSocket> {
  const headers: Record<string, string> = {}
  if (o.host !== undefined) headers.Host = o.host
  const ws = new WebSocket(url, protocolsOf(o), { headers, ...(o.origin !== undefined ? { origin: o.origin } : {}), perMessageDeflate: false })
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws))
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => { body += d }).on('end', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode} ${body.trim()}`), { status: res.statusCode, body })))
    })
    ws.once('error', reject)
  })
}

/** Resolves with the close code and reason of a socket. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: -1, reason: 'already closed' })
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
}

/** A test's session over the socket: birpc as the page has it, and every progress event seen. */
export interface SocketClient {
  ws: WebSocket
  api: EngineRemote
  progress: Array<{ jobId: number; done: number; total: number; step?: string; at: number }>
  closed: Promise<{ code: number; reason: string }>
  close(): void
}

/** Connect a session the way the page does (src/transport/socket.ts), from Node. */
export async function connectClient(server: Pick<ServeProcess, 'socketUrl' | 'token' | 'origin'>, o: Partial<SocketOptions> = {}): Promise<SocketClient> {
  const ws = await openSocket(server.socketUrl, { token: server.token, origin: server.origin, ...o })
  const progress: SocketClient['progress'] = []
  const events: ClientEvents = { progress: (jobId, done, total, step) => { progress.push({ jobId, done, total, ...(step !== undefined ? { step } : {}), at: performance.now() }) } }
  const down = closed(ws)
  const api = connectEngine({
    post: (d) => ws.send(d as Uint8Array),
    on: (fn) => { ws.on('message', (data: Buffer) => fn(data)) },
    serialize: (m) => encodeMessage(m),
    deserialize: (d) => decodeMessage(d as Uint8Array),
  }, events)
  // As the page's transport does: a closed socket rejects the calls in flight.
  void down.then(({ code, reason }) => api.$close(Object.assign(new Error(`socket closed (${code} ${reason})`), { code: 'Disconnected' })))
  return { ws, api, progress, closed: down, close: () => { ws.close(1000); api.$close() } }
}

/** Send one decoded-form message over a raw socket and wait for the first reply (decoded) or the close. */
export function exchange(ws: WebSocket, frame: Uint8Array | string, timeoutMs = 10_000): Promise<{ reply?: unknown; close?: { code: number; reason: string } }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply and no close in ${timeoutMs} ms`)), timeoutMs)
    const onMsg = (d: Buffer): void => { done(); resolve({ reply: decodeMessage(d) }) }
    const onClose = (code: number, reason: Buffer): void => { done(); resolve({ close: { code, reason: reason.toString() } }) }
    const done = (): void => { clearTimeout(timer); ws.off('message', onMsg); ws.off('close', onClose) }
    ws.on('message', onMsg)
    ws.on('close', onClose)
    ws.send(frame, { binary: typeof frame !== 'string' })
  })
}

/** The error a call rejected with, as the engine's plain ErrorInfo. */
export async function callError(p: Promise<unknown>): Promise<ErrorInfo> {
  try {
    await p
  } catch (e) {
    return e as ErrorInfo
  }
  throw new Error('the call succeeded; an error was expected')
}

/** A plain HTTP request with any headers (Host included); resolves with status, headers and body. */
export function httpGet(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { Host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => { body += d }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * The request line and headers written verbatim on a TCP socket (no client-side path
 * normalisation); resolves with the status code of the response.
 */
export function rawHttp(port: number, text: string): Promise<{ status: number; response: string }> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1', () => s.write(text))
    let got = ''
    s.setEncoding('utf8')
    s.on('data', (d: string) => { got += d })
    s.on('error', reject)
    s.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got)
      resolve({ status: m ? Number(m[1]) : 0, response: got })
    })
    s.setTimeout(10_000, () => s.destroy())
  })
}
