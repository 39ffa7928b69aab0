/**
 * Issue 9's security rules against a REAL `qbm serve` process (bin/qbm.cjs, URL read from its
 * first stdout line), each with a request that tries to break it: no token, a wrong one, a
 * DNS-rebinding Host, a foreign Origin, an edit while read-only, images outside the set (an
 * unknown id, a path, a symlink out of the served directory, non-host sources), an oversized
 * message, malformed messages, paths out of the app directory, the CSP header, where the token
 * is printed, and the listen address. After every hostile message the same server must still
 * answer. The server logs its connections (QBM_SERVE_LOG=1), which is how "no session was
 * made" is seen; nothing else is hooked.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { entryId } from '../host/catalog.js'
import { encodeMessage } from '../transport/codec.js'
import { TOKEN_PREFIX } from '../transport/socket.js'
import {
  type ServeProcess, callError, connectClient, exchange, httpGet, openSocket, rawHttp, startServe,
} from '../test-support/serve.js'
import { requireTool, run, tempDir } from '../test-support/tools.js'
import { DEFAULT_LISTEN } from '../cli/commands/serve-command.js'
import { parseListen } from '../cli/commands/serve.js'
import { SECURITY_HEADERS } from './security.js'
import { MAX_MESSAGE_BYTES, closeReason } from './server.js'

const tmp = tempDir('qbm-serve-sec-')
const served = join(tmp.path, 'served')
const outside = join(tmp.path, 'outside')
const image = join(served, 'a.qcow2')
const secret = join(outside, 'secret.qcow2')
let server: ServeProcess

const sha256 = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex')
const connectionsLogged = (): number => server.stderr().split('\n').filter((l) => l.includes('qbm serve: connection from')).length

function makeImage(path: string): void {
  run('qemu-img', ['create', '-q', '-f', 'qcow2', path, '64M'])
  run('qemu-img', ['bitmap', '--add', path, 'daily'])
  run('qemu-io', ['-f', 'qcow2', '-c', 'write -q 1M 64k', path])
}

beforeAll(async () => {
  requireTool('qemu-img')
  requireTool('qemu-io')
  mkdirSync(served)
  mkdirSync(outside)
  makeImage(image)
  makeImage(secret)
  writeFileSync(join(served, 'notes.txt'), 'not an image')
  symlinkSync(secret, join(served, 'link.qcow2'))
  symlinkSync(outside, join(served, 'outdir'))
  server = await startServe(['--listen', '127.0.0.1:0', served], { env: { QBM_SERVE_LOG: '1' } })
})

afterAll(async () => {
  await server?.stop()
  tmp.cleanup()
})

/** The server process is up and a fresh connection gets an answer. */
async function stillServing(): Promise<void> {
  expect(server.alive(), `the server died: ${server.stderr()}`).toBe(true)
  const c = await connectClient(server)
  try {
    expect((await c.api.hostInfo())?.writable).toBe(false)
  } finally {
    c.close()
  }
}

describe('the token', () => {
  it('has at least 128 bits and is in the first stdout line only', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=[A-Za-z0-9_-]+$/)
    expect(Buffer.from(server.token, 'base64url').length * 8).toBeGreaterThanOrEqual(128)
  })

  it.each([
    ['no token', { token: undefined }],
    ['a wrong token', { token: 'A'.repeat(43) }],
    ['the token with one character changed', 'flip'],
    ['the token in the query string instead of a subprotocol', 'query'],
  ] as const)('a socket with %s is refused (401) and no session is made', async (_what, how) => {
    const before = connectionsLogged()
    let url = server.socketUrl
    let o: { token?: string | undefined; protocols?: string[] } = typeof how === 'object' ? how : {}
    if (how === 'flip') o = { token: server.token.slice(0, -2) + (server.token.endsWith('AA') ? 'BB' : 'AA') }
    if (how === 'query') { url += `?token=${server.token}`; o = { token: undefined } }
    const e = await openSocket(url, { origin: server.origin, ...o }).then(() => undefined, (x: { status?: number; body?: string }) => x)
    expect(e?.status).toBe(401)
    expect(e?.body).toMatch(/missing or wrong token/)
    expect(connectionsLogged()).toBe(before)
  })

  it('the right token without the qbm.v1 subprotocol is refused (400) and no session is made', async () => {
    const before = connectionsLogged()
    const e = await openSocket(server.socketUrl, { origin: server.origin, protocols: [TOKEN_PREFIX + server.token] }).then(() => undefined, (x: { status?: number }) => x)
    expect(e?.status).toBe(400)
    expect(connectionsLogged()).toBe(before)
  })

  it('with the right token a session is made (the log line the refusals never produce)', async () => {
    const before = connectionsLogged()
    const c = await connectClient(server)
    expect(await c.api.hostInfo()).toMatchObject({ writable: false })
    c.close()
    expect(connectionsLogged()).toBe(before + 1)
  })
})

describe('Host and Origin', () => {
  it.each(['evil.example', `evil.example:PORT`, 'localhost.evil.example:PORT', '127.0.0.1.nip.io:PORT', '10.1.2.3:PORT'])('Host %s: the page is refused with 421', async (h) => {
    const r = await httpGet(server.port, '/', { Host: h.replace('PORT', String(server.port)) })
    expect(r.status).toBe(421)
    expect(r.body).not.toMatch(/<html/i)
  })

  it('Host localhost:PORT and 127.0.0.1:PORT get the page', async () => {
    for (const h of [`localhost:${server.port}`, `127.0.0.1:${server.port}`]) expect((await httpGet(server.port, '/', { Host: h })).status).toBe(200)
  })

  it('a socket upgrade with Host evil.example:PORT is refused with 421, right token and all', async () => {
    const before = connectionsLogged()
    const host = `evil.example:${server.port}`
    const e = await openSocket(server.socketUrl, { token: server.token, host, origin: `http://${host}` }).then(() => undefined, (x: { status?: number }) => x)
    expect(e?.status).toBe(421)
    expect(connectionsLogged()).toBe(before)
  })

  it.each(['http://evil.example', 'http://127.0.0.1:1', `https://127.0.0.1:PORT`, `http://localhost:PORT`, 'null'])('Origin %s on the socket is refused with 403', async (origin) => {
    const before = connectionsLogged()
    const e = await openSocket(server.socketUrl, { token: server.token, origin: origin.replace('PORT', String(server.port)) }).then(() => undefined, (x: { status?: number }) => x)
    expect(e?.status).toBe(403)
    expect(connectionsLogged()).toBe(before)
  })
})

describe('a read-only server', () => {
  it('refuses planEdits and commitPlan with an error naming --write, and the file stays byte-identical', async () => {
    const before = sha256(image)
    const c = await connectClient(server)
    try {
      const ov = await c.api.hostOverview()
      const row = ov.rows.find((r) => r.path.endsWith('a.qcow2'))!
      const opened = await c.api.open({ kind: 'host', id: row.id })
      expect(opened.writable).toBe(false)
      expect(opened.readOnlyReason).toMatch(/--write/)
      for (const edits of [[{ op: 'add' as const, name: 'x' }], [{ op: 'remove' as const, name: 'daily' }], [{ op: 'clear-in-use' as const, name: 'daily', mode: 'keep' as const }]]) {
        const e = await callError(c.api.planEdits({ edits }))
        expect(e.code).toBe('ConstraintError')
        expect(e.message).toMatch(/read-only.*--write/)
      }
      expect((await callError(c.api.planEdits({ edits: [], repair: 'drop-all-bitmaps' }))).message).toMatch(/--write/)
      for (const planId of [0, 1, 2]) expect((await callError(c.api.commitPlan(planId))).message).toMatch(/read-only.*--write/)
    } finally {
      c.close()
    }
    expect(sha256(image)).toBe(before)
  })
})

describe('images outside the set', () => {
  it('the overview lists the served image only; the symlinks out are skipped and said so', async () => {
    const c = await connectClient(server)
    try {
      const ov = await c.api.hostOverview()
      expect(ov.rows.map((r) => r.path)).toEqual([join(served, 'a.qcow2')])
      const skipped = ov.errors.map((e) => e.path).sort()
      expect(skipped).toEqual([join(served, 'link.qcow2'), join(served, 'outdir')])
    } finally {
      c.close()
    }
  })

  it.each([
    ['an id not in the catalog', { kind: 'host', id: '0123456789abcdef' }, /no image '0123456789abcdef'/],
    ['the id the outside image would have', { kind: 'host', id: 'OUTSIDE' }, /no image/],
    ['the id of the symlink path', { kind: 'host', id: 'LINK' }, /no image/],
    ['a path for an id', { kind: 'host', id: 'SECRETPATH' }, /no image/],
    ['a relative path for an id', { kind: 'host', id: '../outside/secret.qcow2' }, /no image/],
    ['a file source', { kind: 'file', file: { name: 'secret.qcow2' } }, /open: /],
    ['a URL source', { kind: 'url', url: 'file:///etc/passwd', name: 'passwd' }, /open: /],
    ['a handle source', { kind: 'handle', handle: {} }, /open: /],
  ])('open with %s is refused', async (_what, source, message) => {
    const ids: Record<string, string> = { OUTSIDE: entryId(realpathSync(secret)), LINK: entryId(join(served, 'link.qcow2')), SECRETPATH: secret }
    const s = { ...source, ...('id' in source && ids[source.id] ? { id: ids[source.id] } : {}) }
    const c = await connectClient(server)
    try {
      const e = await callError(c.api.open(s as never))
      expect(e.message).toMatch(message)
      const e2 = await callError(c.api.openSet([s as never]))
      expect(e2.message).toMatch(/no image|openSet: /)
      if ('id' in s && typeof s.id === 'string' && s.id.length <= 128) expect((await callError(c.api.hostCheck(s.id))).message).toMatch(/no image/)
    } finally {
      c.close()
    }
  })
})

describe('nothing outside the PATHs is opened (every open syscall traced)', () => {
  it('through ids, paths, the symlinks out, the overview and the checks', async () => {
    requireTool('strace')
    const log = join(tmp.path, 'open.trace')
    const s = await startServe(['--listen', '127.0.0.1:0', served], { wrap: ['strace', '-f', '-qq', '-e', 'trace=open,openat,openat2,creat', '-o', log, '--'] })
    try {
      const c = await connectClient(s)
      const ov = await c.api.hostOverview()
      const mine = ov.rows[0]!.id
      for (const id of [entryId(realpathSync(secret)), entryId(join(served, 'link.qcow2')), entryId(join(served, 'outdir', 'secret.qcow2')), secret, join(served, 'link.qcow2'), '../outside/secret.qcow2']) {
        await callError(c.api.open({ kind: 'host', id }))
        await callError(c.api.openSet([{ kind: 'host', id: mine }, { kind: 'host', id }]))
        await callError(c.api.hostCheck(id))
      }
      await c.api.open({ kind: 'host', id: mine })
      expect((await c.api.hostCheck(mine)).status).toBe('clean')
      c.close()
    } finally {
      await s.stop()
    }
    const opens = readFileSync(log, 'utf8').split('\n').filter((l) => /\bopen(at2?)?\(|creat\(/.test(l))
    expect(opens.some((l) => l.includes(image)), 'the trace sees the served image opened').toBe(true)
    expect(opens.filter((l) => l.includes(outside) || l.includes('link.qcow2') || l.includes('outdir'))).toEqual([])
  })
})

describe('message limits and malformed messages', () => {
  it('a close reason is cut to 123 bytes at a character', () => {
    expect(closeReason('x'.repeat(200))).toBe('x'.repeat(123))
    const r = closeReason('✖ '.repeat(100))
    expect(Buffer.byteLength(r)).toBeLessThanOrEqual(123)
    expect(r).toBe('✖ '.repeat(30) + '✖')
    expect(closeReason('😀'.repeat(40))).toBe('😀'.repeat(30))
  })

  it(`a message over MAX_MESSAGE_BYTES (${MAX_MESSAGE_BYTES} bytes) closes that socket with 1009; other connections go on`, async () => {
    const other = await connectClient(server)
    try {
      const ws = await openSocket(server.socketUrl, { token: server.token, origin: server.origin })
      const big = encodeMessage({ t: 'q', i: 'big', m: 'checkpoints', a: [[{ name: 'a', text: 'x'.repeat(MAX_MESSAGE_BYTES) }]] })
      expect(big.length).toBeGreaterThan(MAX_MESSAGE_BYTES)
      const r = await exchange(ws, big)
      expect(r.close?.code).toBe(1009)
      expect((await other.api.hostInfo())?.writable).toBe(false)
      await stillServing()
    } finally {
      other.close()
    }
  })

  const q = (m: string, a: unknown[], i = 'r1'): Uint8Array => encodeMessage({ t: 'q', i, m, a })
  // msgpackr's error extension (fixext 1, type 0x65, then [name, message, cause]) naming a
  // property of a plain object that is not an Error class: the decoder calls errors[name](...)
  const errorExt = (name: string): Buffer => Buffer.concat([Buffer.from([0xd4, 0x65, 0x00]), encodeMessage([name, 'process.exit(7)', undefined])])
  /** A request map written key by key, so any key (even __proto__) and any raw value can go in. */
  const rawRequest = (entries: Array<[string, Uint8Array]>): Uint8Array =>
    Buffer.concat([Buffer.from([0x80 | entries.length]), ...entries.flatMap(([k, v]) => [encodeMessage(k), v])])
  const base = (args: Uint8Array = encodeMessage([])): Array<[string, Uint8Array]> => [['t', encodeMessage('q')], ['i', encodeMessage('r1')], ['m', encodeMessage('hostInfo')], ['a', args]]
  it.each<[string, Uint8Array | string, { close?: number; error?: RegExp }]>([
    ['bytes that are not MessagePack (0xc1)', Buffer.from([0xc1]), { close: 1008 }],
    ['truncated MessagePack', Buffer.from([0x82, 0xa1, 0x74]), { close: 1007 }],
    ['an array claiming 2^32-1 elements', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), { close: 1007 }],
    ['a string claiming 4 GiB', Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x41]), { close: 1007 }],
    ['arrays nested a million deep', Buffer.alloc(1_000_000, 0x91), { close: 1007 }],
    ['an error extension naming toString', rawRequest(base(Buffer.concat([Buffer.from([0x91]), errorExt('toString')]))), { error: /at most 0 arguments/ }],
    ['an error extension naming constructor (Object)', rawRequest(base(Buffer.concat([Buffer.from([0x91]), errorExt('constructor')]))), { error: /at most 0 arguments/ }],
    ['an error extension naming __proto__', rawRequest(base(Buffer.concat([Buffer.from([0x91]), errorExt('__proto__')]))), { close: 1007 }],
    ['a text frame', JSON.stringify({ t: 'q', i: 'r1', m: 'hostInfo', a: [] }), { close: 1003 }],
    ['a response instead of a request', encodeMessage({ t: 's', i: 'r1', r: 1 }), { error: /malformed request/ }],
    ['a request without an id', encodeMessage({ t: 'q', m: 'hostInfo', a: [] }), { close: 1008 }],
    ['an unknown method', q('readFile', ['/etc/passwd']), { error: /unknown method 'readFile'/ }],
    ['__proto__ as the method', q('__proto__', []), { error: /unknown method '__proto__'/ }],
    ['constructor as the method', q('constructor', ['return process.exit(1)']), { error: /unknown method 'constructor'/ }],
    ['a __proto__ key in the request', rawRequest([['__proto__', encodeMessage({ polluted: true })], ...base()]), { error: /malformed request/ }],
    ['a __proto__ key in an argument', rawRequest([['t', encodeMessage('q')], ['i', encodeMessage('r1')], ['m', encodeMessage('open')], ['a', Buffer.concat([Buffer.from([0x91]), rawRequest([['__proto__', encodeMessage({ kind: 'host', id: 'x' })]])])]]), { error: /^open: / }],
    ['a string for a bitmap index', q('scan', ['0']), { error: /^scan: / }],
    ['an object for a heatmap range', q('heatmap', [0, { valueOf: 1 }, 10, 4]), { error: /^heatmap: / }],
    ['a typed array for a job id', q('scan', [0, new Float64Array(4)]), { error: /^scan: / }],
    ['a RegExp for a name', q('planEdits', [{ edits: [{ op: 'remove', name: /x/ }] }]), { error: /^planEdits: / }],
    ['too many arguments', q('hostInfo', [1, 2]), { error: /at most 0 arguments/ }],
  ])('%s: an error or a close, and the server answers afterwards', async (_what, frame, want) => {
    const ws = await openSocket(server.socketUrl, { token: server.token, origin: server.origin })
    const r = await exchange(ws, frame)
    if (want.close !== undefined) {
      expect(r.close?.code, JSON.stringify(r)).toBe(want.close)
    } else {
      const reply = r.reply as { t: string; i: string; e?: { code: string; message: string } }
      expect(reply.t).toBe('s')
      expect(reply.i).toBe('r1')
      expect(reply.e?.code).toBe('BadRequest')
      expect(reply.e?.message).toMatch(want.error!)
      ws.close()
    }
    await stillServing()
  })

  it('the page\'s own calls still work on a connection that had a refused call', async () => {
    const ws = await openSocket(server.socketUrl, { token: server.token, origin: server.origin })
    expect((await exchange(ws, q('nope', []))).reply).toMatchObject({ e: { code: 'BadRequest' } })
    expect((await exchange(ws, q('hostInfo', [], 'r2'))).reply).toMatchObject({ t: 's', i: 'r2', r: { writable: false } })
    ws.close()
  })
})

describe('the app', () => {
  it.each(['/../package.json', '/%2e%2e/package.json', '/%2e%2e%2fpackage.json', '/..%2fpackage.json', '/assets/..%2f..%2fpackage.json', '/%252e%252e/package.json', '/../../../../etc/passwd', '/..%5cpackage.json'])('%s is 404', async (path) => {
    const r = await rawHttp(server.port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: close\r\n\r\n`)
    expect(r.status).toBe(404)
    expect(r.response).not.toMatch(/"name": "qbm"|root:/)
  })

  it('the page, and every file of it, carries the CSP and the other security headers', async () => {
    const page = await httpGet(server.port, '/')
    expect(page.status).toBe(200)
    expect(page.body).toMatch(/<html/i)
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(page.headers[k.toLowerCase()], k).toBe(v)
    const script = /<script[^>]+src="([^"]+)"/.exec(page.body)?.[1]
    expect(script).toBeDefined()
    const js = await httpGet(server.port, new URL(script!, 'http://x/').pathname)
    expect(js.status).toBe(200)
    expect(js.headers['content-security-policy']).toBe(SECURITY_HEADERS['Content-Security-Policy'])
    expect((await httpGet(server.port, '/nope')).headers['content-security-policy']).toBe(SECURITY_HEADERS['Content-Security-Policy'])
  })

  it('only GET and HEAD', async () => {
    expect((await httpGet(server.port, '/', {}, 'POST')).status).toBe(405)
    expect((await httpGet(server.port, '/', {}, 'PUT')).status).toBe(405)
    expect((await httpGet(server.port, '/', {}, 'HEAD')).status).toBe(200)
  })
})

describe('the listen address', () => {
  const lanAddress = (): string | undefined => Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address
  const reachable = (host: string, port: number): Promise<boolean> => new Promise((resolve) => {
    const s = netConnect(port, host, () => { s.destroy(); resolve(true) })
    s.on('error', () => resolve(false))
  })

  it('defaults to 127.0.0.1 (also with an empty host), with no warning', async () => {
    expect(DEFAULT_LISTEN).toBe('127.0.0.1:8421')
    expect(parseListen(':0')).toEqual({ host: '127.0.0.1', port: 0 })
    const s = await startServe(['--listen', ':0', served])
    try {
      expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//)
      expect(await reachable('127.0.0.1', s.port)).toBe(true)
      const lan = lanAddress()
      expect(lan, 'this test needs a non-loopback IPv4 address').toBeDefined()
      expect(await reachable(lan!, s.port)).toBe(false)
      expect(s.stderr()).not.toMatch(/warning/)
    } finally {
      await s.stop()
    }
  })

  it('another address prints a warning line on stderr; its Host rules still refuse DNS names', async () => {
    const s = await startServe(['--listen', '0.0.0.0:0', served])
    try {
      await new Promise((r) => setTimeout(r, 200))
      const warnings = s.stderr().split('\n').filter((l) => /warning/.test(l))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(/^qbm serve: warning: listening on every interface, not loopback/)
      const lan = lanAddress()!
      expect((await httpGet(s.port, '/', { Host: `${lan}:${s.port}` })).status).toBe(200)
      expect((await httpGet(s.port, '/', { Host: `evil.example:${s.port}` })).status).toBe(421)
      expect(s.token).not.toBe(server.token)
    } finally {
      await s.stop()
    }
  })
})

describe('at the end', () => {
  it('the token was printed exactly once: the first stdout line, never on stderr', async () => {
    await stillServing()
    const r = await server.stop()
    expect(r.code).toBe(0)
    const out = server.stdout()
    expect(out).toBe(`${server.url}\n`)
    expect(out.split(server.token)).toHaveLength(2)
    expect(server.stderr()).not.toContain(server.token)
    expect(server.stderr()).not.toContain(server.token.slice(0, 12))
    expect(connectionsLogged()).toBeGreaterThan(10)
  })
})
