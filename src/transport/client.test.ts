import { describe, expect, it } from 'vitest'
import type { ClientEvents, EngineApi, ErrorInfo, OpenResult, OpenSource } from '../session/api.js'
import { EngineCallError, type Transport, createEngineClient } from './client.js'
import { type EngineRemote, type PageRemote, connectEngine, serveEngine } from './rpc.js'

const demo: OpenSource = { kind: 'url', url: 'http://127.0.0.1/demo.qcow2', name: 'demo.qcow2' }
const openResult = { name: 'demo.qcow2', writable: false, writeMode: 'copy', summary: { bitmaps: [] } } as unknown as OpenResult

type ScanMode = 'cooperative' | 'stuck' | 'fail'

/** A session whose scan either checks for cancel, never returns, or throws a FormatError. */
function fakeSession(log: string[], mode: () => ScanMode, page: () => PageRemote): EngineApi {
  const cancelled = new Set<number>()
  const api: Partial<EngineApi> = {
    async open(source) {
      log.push(`open ${source.kind}`)
      return openResult
    },
    async scan(i: number, jobId?: number) {
      log.push(`scan ${i}`)
      if (jobId !== undefined) void page().progress(jobId, 1, 2)
      const m = mode()
      if (m === 'fail') throw { code: 'FormatError', message: "bitmap table of 'b0' at 0x50000: entry 3 is not cluster-aligned", structure: "bitmap table of 'b0'", field: 'bitmap_table_entry', offset: 0x50018 }
      if (m === 'stuck') await new Promise(() => undefined) // a loop that never looks at cancel
      for (;;) {
        await new Promise((r) => setTimeout(r, 5))
        if (jobId !== undefined && cancelled.has(jobId)) throw { code: 'AbortError', message: 'operation cancelled' }
      }
    },
    async heatmap(i, start, end, cells) {
      log.push(`heatmap ${i} ${start} ${end} ${cells}`)
      return new Float64Array(cells)
    },
    async cancel(jobId) {
      log.push(`cancel ${jobId}`)
      cancelled.add(jobId)
    },
    async close() {},
  }
  return new Proxy(api, { get: (t, k) => (t as Record<string | symbol, unknown>)[k] ?? (() => Promise.reject(new Error(`${String(k)} is not in this fake`))) }) as EngineApi
}

/** A transport over MessageChannels in this thread; `drop()` breaks the connection from the session's side. */
function harness(mode: () => ScanMode = () => 'cooperative', canKill = true) {
  const conns: Array<{ log: string[]; killed: boolean; drop: () => void }> = []
  let restarts = 0
  const ports = new Map<EngineRemote, { close: () => void }>()
  const transport: Transport = {
    canKill,
    connect(events: ClientEvents, onDown: (why: ErrorInfo) => void): EngineRemote {
      const { port1, port2 } = new MessageChannel()
      const c = { log: [] as string[], killed: false, drop: () => { port1.close(); port2.close(); onDown({ code: 'Disconnected', message: 'the connection closed' }) } }
      conns.push(c)
      let page: PageRemote | undefined
      page = serveEngine(fakeSession(c.log, mode, () => page!), {
        post: (d) => port1.postMessage(d), on: (fn) => { port1.onmessage = (e) => fn(e.data) },
      })
      const r = connectEngine({ post: (d) => port2.postMessage(d), on: (fn) => { port2.onmessage = (e) => fn(e.data) } }, events)
      ports.set(r, { close: () => { c.killed = true; port1.close(); port2.close() } })
      return r
    },
    disconnect(r) {
      ports.get(r)?.close()
      r.$close()
    },
  }
  const client = createEngineClient(transport, { onRestart: () => { restarts++ } })
  return { client, conns, restarts: () => restarts }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('engine client', () => {
  it('connects only on the first call', async () => {
    const h = harness()
    expect(h.conns).toHaveLength(0)
    await h.client.open(demo)
    expect(h.conns).toHaveLength(1)
    expect(h.conns[0]!.log).toEqual(['open url'])
    h.client.dispose()
  })

  it('routes progress events to the call that asked, and cancels cooperatively, keeping the connection', async () => {
    const h = harness()
    await h.client.open(demo)
    const progress: Array<[number, number]> = []
    const ac = new AbortController()
    const p = h.client.scan(0, (d, t) => { progress.push([d, t]) }, ac.signal)
    await sleep(30)
    ac.abort()
    await expect(p).rejects.toMatchObject({ info: { code: 'AbortError' } })
    await sleep(650)
    expect(progress).toEqual([[1, 2]])
    expect(h.conns[0]!.log).toContain('cancel 2')
    expect(h.conns[0]!.killed).toBe(false)
    expect(h.restarts()).toBe(0)
    h.client.dispose()
  })

  it('kills a connection whose call ignores cancel (a worker), then reopens the image on a fresh one', async () => {
    let mode: ScanMode = 'stuck'
    const h = harness(() => mode)
    await h.client.open(demo)
    const ac = new AbortController()
    const p = h.client.scan(0, undefined, ac.signal)
    await sleep(20)
    const t0 = Date.now()
    ac.abort()
    await expect(p).rejects.toBeInstanceOf(EngineCallError)
    expect(Date.now() - t0).toBeLessThan(100) // the caller does not wait for the hard stop
    await sleep(650)
    expect(h.conns[0]!.killed).toBe(true)
    expect(h.restarts()).toBe(1)
    mode = 'cooperative'
    const cells = await h.client.heatmap(0, 0, 100, 4)
    expect(cells).toBeInstanceOf(Float64Array)
    expect(cells).toHaveLength(4)
    expect(h.conns).toHaveLength(2)
    expect(h.conns[1]!.log).toEqual(['open url', 'heatmap 0 0 100 4'])
    h.client.dispose()
  })

  it('never kills a connection that cannot stop the session (a socket): the cancel is all it sends', async () => {
    const h = harness(() => 'stuck', false)
    await h.client.open(demo)
    const ac = new AbortController()
    const p = h.client.scan(0, undefined, ac.signal)
    await sleep(20)
    ac.abort()
    await expect(p).rejects.toMatchObject({ info: { code: 'AbortError' } })
    await sleep(650)
    expect(h.conns[0]!.killed).toBe(false)
    expect(h.conns[0]!.log).toContain('cancel 2')
    expect(h.restarts()).toBe(0)
    h.client.dispose()
  })

  it('rejects calls still in flight on a killed connection instead of leaving them hanging', async () => {
    const h = harness(() => 'stuck')
    await h.client.open(demo)
    const ac = new AbortController()
    const a = h.client.scan(0, undefined, ac.signal)
    const b = h.client.scan(1) // no signal: would hang forever on a dead connection
    await sleep(20)
    ac.abort()
    await expect(a).rejects.toMatchObject({ info: { code: 'AbortError' } })
    await expect(b).rejects.toMatchObject({ info: { code: 'AbortError', message: 'cancelled: the engine was restarted' } })
    h.client.dispose()
  })

  it('a dropped connection rejects the calls in flight, and the next call reconnects and reopens first', async () => {
    let mode: ScanMode = 'stuck'
    const h = harness(() => mode, false)
    await h.client.open(demo)
    const a = h.client.scan(0)
    await sleep(20)
    h.conns[0]!.drop()
    await expect(a).rejects.toMatchObject({ info: { code: 'Disconnected' } })
    expect(h.restarts()).toBe(1)
    mode = 'cooperative'
    await h.client.heatmap(0, 0, 10, 2)
    expect(h.conns).toHaveLength(2)
    expect(h.conns[1]!.log).toEqual(['open url', 'heatmap 0 0 10 2'])
    h.client.dispose()
  })

  it('turns engine errors into EngineCallError with structure, field and offset', async () => {
    const h = harness(() => 'fail')
    await h.client.open(demo)
    const e = await h.client.scan(0).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(EngineCallError)
    expect((e as EngineCallError).info).toEqual({
      code: 'FormatError', message: "bitmap table of 'b0' at 0x50000: entry 3 is not cluster-aligned",
      structure: "bitmap table of 'b0'", field: 'bitmap_table_entry', offset: 0x50018,
    })
    h.client.dispose()
  })

  it('rejects at once when the signal is already aborted', async () => {
    const h = harness()
    const ac = new AbortController()
    ac.abort()
    await expect(h.client.open(demo, ac.signal)).rejects.toMatchObject({ info: { code: 'AbortError' } })
    expect(h.conns).toHaveLength(0)
  })
})
