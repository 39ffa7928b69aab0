import { describe, expect, it } from 'vitest'
import * as Comlink from 'comlink'
import type { EngineApi, OpenResult, OpenSource, ProgressFn } from './api.js'
import { EngineCallError, createEngineClient } from './client.js'

const demo: OpenSource = { kind: 'url', url: 'http://127.0.0.1/demo.qcow2', name: 'demo.qcow2' }
const openResult = { name: 'demo.qcow2', writable: false, summary: { bitmaps: [] } } as unknown as OpenResult

type ScanMode = 'cooperative' | 'stuck' | 'fail'

/** An EngineApi whose scan either checks for cancel, never returns, or throws a FormatError. */
function fakeApi(log: string[], mode: () => ScanMode): EngineApi {
  const cancelled = new Set<number>()
  const fail = (): never => { throw new Error('not in this fake') }
  return {
    async open(source) {
      log.push(`open ${source.kind}`)
      return openResult
    },
    async scan(i: number, onProgress?: ProgressFn, jobId?: number) {
      log.push(`scan ${i}`)
      await onProgress?.(1, 2)
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
      const out = new Float64Array(cells)
      return Comlink.transfer(out, [out.buffer])
    },
    async cancel(jobId) {
      log.push(`cancel ${jobId}`)
      cancelled.add(jobId)
    },
    async close() {},
    extentPage: fail, extentIndex: fail, extentWindow: fail, extentsInRange: fail, exportExtents: fail, sha256: fail,
    planEdits: fail, commitPlan: fail, editedCopy: fail, dropPlan: fail,
    openSet: fail, activate: fail, overlay: fail, extentSplits: fail, estimate: fail, algebra: fail, algebraHeat: fail,
    algebraPage: fail, algebraWindow: fail, dropAlgebra: fail, checkpoints: fail,
  }
}

/** A "worker" on a MessageChannel in this thread; terminate() closes it like Worker.terminate. */
function harness(mode: () => ScanMode = () => 'cooperative') {
  const workers: Array<{ log: string[]; terminated: boolean }> = []
  let restarts = 0
  const client = createEngineClient({
    createWorker: () => {
      const { port1, port2 } = new MessageChannel()
      const w = { log: [] as string[], terminated: false }
      workers.push(w)
      Comlink.expose(fakeApi(w.log, mode), port1)
      return Object.assign(port2, {
        terminate: () => { w.terminated = true; port1.close(); port2.close() },
      }) as unknown as Worker
    },
    onRestart: () => { restarts++ },
  })
  return { client, workers, restarts: () => restarts }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('engine client', () => {
  it('starts the worker only on the first call', async () => {
    const h = harness()
    expect(h.workers).toHaveLength(0)
    await h.client.open(demo)
    expect(h.workers).toHaveLength(1)
    expect(h.workers[0]!.log).toEqual(['open url'])
    h.client.dispose()
  })

  it('passes progress through and cancels cooperatively, keeping the worker', async () => {
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
    expect(h.workers[0]!.log).toContain('cancel 2')
    expect(h.workers[0]!.terminated).toBe(false)
    expect(h.restarts()).toBe(0)
    h.client.dispose()
  })

  it('terminates a worker that ignores cancel, then reopens the image in a fresh one', async () => {
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
    expect(h.workers[0]!.terminated).toBe(true)
    expect(h.restarts()).toBe(1)
    mode = 'cooperative'
    const cells = await h.client.heatmap(0, 0, 100, 4)
    expect(cells).toBeInstanceOf(Float64Array)
    expect(h.workers).toHaveLength(2)
    expect(h.workers[1]!.log).toEqual(['open url', 'heatmap 0 0 100 4'])
    h.client.dispose()
  })

  it('rejects calls still in flight on a terminated worker instead of leaving them hanging', async () => {
    const h = harness(() => 'stuck')
    await h.client.open(demo)
    const ac = new AbortController()
    const a = h.client.scan(0, undefined, ac.signal)
    const b = h.client.scan(1) // no signal: would hang forever on a dead worker
    await sleep(20)
    ac.abort()
    await expect(a).rejects.toMatchObject({ info: { code: 'AbortError' } })
    await expect(b).rejects.toMatchObject({ info: { code: 'AbortError', message: 'cancelled: the engine was restarted' } })
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
    expect(h.workers).toHaveLength(0)
  })
})
