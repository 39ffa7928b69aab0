/**
 * Long jobs across the socket of a real `qbm serve`: progress events arrive while a scan runs,
 * `cancel(jobId)` stops it mid-way with AbortError, a dropped connection (closed or cut)
 * cancels its jobs, and SIGTERM stops a server in the middle of one. "The job stopped" is
 * proven from outside, with no hook: the server's CPU time (/proc/PID/stat) is measured while
 * the job runs and after the connection went away, and the job must take most of a core
 * before and next to none after. (Before src/server/paced-device.ts none of this held: the
 * synchronous reads kept the event loop, so the cancel, the close and SIGTERM waited for the
 * end of the job.)
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ServeProcess, type SocketClient, callError, connectClient, startServe } from '../test-support/serve.js'
import { type SlowScanImage, makeSlowScanImage } from '../test-support/slow-scan-image.js'
import { requireTool, tempDir } from '../test-support/tools.js'
import { MAX_IN_FLIGHT } from './server.js'

const tmp = tempDir('qbm-serve-jobs-')
let img: SlowScanImage
let server: ServeProcess
let imageId: string

beforeAll(async () => {
  requireTool('qemu-img')
  const dir = join(tmp.path, 'images')
  mkdirSync(dir)
  img = await makeSlowScanImage(join(dir, 'slow.qcow2'))
  server = await startServe(['--listen', '127.0.0.1:0', dir], { env: { QBM_SERVE_LOG: '1' } })
  const c = await connectClient(server)
  imageId = (await c.api.hostOverview()).rows[0]!.id
  c.close()
})

afterAll(async () => {
  await server?.stop()
  tmp.cleanup()
})

const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

/** CPU seconds the process has used (user + system, all threads). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / TICKS
}

/** Share of one core the process used over the next `ms` milliseconds. */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const c0 = cpuSeconds(pid)
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, ms))
  return (cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000)
}

const firstProgress = (c: SocketClient, jobId: number, timeoutMs = 20_000): Promise<void> => new Promise((resolve, reject) => {
  const t0 = performance.now()
  const poll = setInterval(() => {
    if (c.progress.some((p) => p.jobId === jobId)) { clearInterval(poll); resolve() }
    else if (performance.now() - t0 > timeoutMs) { clearInterval(poll); reject(new Error(`no progress for job ${jobId} in ${timeoutMs} ms`)) }
  }, 1)
})

async function opened(): Promise<SocketClient> {
  const c = await connectClient(server)
  const r = await c.api.open({ kind: 'host', id: imageId })
  expect(r.summary.bitmaps[0]?.name).toBe('fine')
  return c
}

describe('progress and cancel across the socket', () => {
  it('a scan reports progress as it reads, and cancel(jobId) stops it mid-way with AbortError', async () => {
    const c = await opened()
    try {
      const t0 = performance.now()
      const scan = c.api.scan(0, 7)
      await firstProgress(c, 7)
      await c.api.cancel(7)
      const e = await callError(scan)
      const cancelledMs = performance.now() - t0
      expect(e.code).toBe('AbortError')
      const seen = c.progress.filter((p) => p.jobId === 7)
      expect(seen.every((p) => p.total === img.dataBytes)).toBe(true)
      expect(seen.at(-1)!.done).toBeLessThan(img.dataBytes)

      // The same scan, not cancelled: it runs to the end, reports the end, and took longer.
      const t1 = performance.now()
      const full = await c.api.scan(0, 8)
      const fullMs = performance.now() - t1
      expect(full).toEqual({ bitmapIndex: 0, dirtyBytes: img.dirtyBytes, extentCount: img.extentCount })
      const p8 = c.progress.filter((p) => p.jobId === 8)
      expect(p8.length).toBeGreaterThan(2)
      for (let i = 1; i < p8.length; i++) expect(p8[i]!.done).toBeGreaterThanOrEqual(p8[i - 1]!.done)
      expect(p8.at(-1)!.done).toBe(img.dataBytes)
      expect(cancelledMs).toBeLessThan(fullMs)
      console.log(`[serve jobs] scan of ${img.dataBytes} bytes: cancelled after ${cancelledMs.toFixed(0)} ms at ${seen.at(-1)!.done} bytes; a full scan takes ${fullMs.toFixed(0)} ms with ${p8.length} progress events`)
    } finally {
      c.close()
    }
  })

  it('cancel of a sha256 job; the connection goes on serving', async () => {
    const c = await opened()
    try {
      const sha = c.api.sha256(0, 21)
      await firstProgress(c, 21)
      await c.api.cancel(21)
      expect((await callError(sha)).code).toBe('AbortError')
      expect((await c.api.hostInfo())?.writable).toBe(false)
    } finally {
      c.close()
    }
  })
})

describe('a dropped connection cancels its jobs', () => {
  for (const how of ['closed by the page', 'cut (TCP reset, no close frame)'] as const) {
    it(`${how}: the job stops (the server's CPU goes idle) and the server serves on`, async () => {
      const c = await opened()
      const logBefore = server.stderr().split('\n').filter((l) => l.includes('connection closed')).length
      const sha = c.api.sha256(0, 31).catch(() => 'rejected')
      await firstProgress(c, 31)
      const busy = await cpuShare(server.proc.pid!, 1000)
      if (how === 'closed by the page') c.ws.close(1000)
      else c.ws.terminate()
      expect(await sha).toBe('rejected')
      await c.closed
      await new Promise((r) => setTimeout(r, 200))
      const after = await cpuShare(server.proc.pid!, 1500)
      console.log(`[serve jobs] sha256 job ${how}: server CPU ${(busy * 100).toFixed(0)}% of a core while it ran, ${(after * 100).toFixed(0)}% after the drop`)
      expect(busy).toBeGreaterThan(0.2)
      expect(after).toBeLessThan(Math.min(0.1, busy / 4))
      expect(server.stderr().split('\n').filter((l) => l.includes('connection closed: its jobs were cancelled')).length).toBeGreaterThanOrEqual(logBefore + 1)
      expect(server.alive()).toBe(true)
      const d = await connectClient(server)
      const t0 = performance.now()
      expect((await d.api.hostInfo())?.writable).toBe(false)
      expect(performance.now() - t0).toBeLessThan(1000)
      d.close()
    })
  }

  it('another connection is answered while a long job runs', async () => {
    const c = await opened()
    const d = await connectClient(server)
    try {
      const sha = c.api.sha256(0, 41).catch((e: { code: string }) => e.code)
      await firstProgress(c, 41)
      const t0 = performance.now()
      for (let i = 0; i < 5; i++) await d.api.hostInfo()
      const ms = (performance.now() - t0) / 5
      expect(ms).toBeLessThan(200)
      await c.api.cancel(41)
      expect(await sha).toBe('AbortError')
    } finally {
      c.close()
      d.close()
    }
  })
})

describe('the in-flight limit', () => {
  it(`calls beyond MAX_IN_FLIGHT (${MAX_IN_FLIGHT}) on one connection are refused with Busy; the ones in flight run and cancel`, async () => {
    const c = await opened()
    try {
      const n = MAX_IN_FLIGHT + 6
      const calls = Array.from({ length: n }, (_, i) => c.api.sha256(0, 100 + i).then(() => 'done', (e: { code: string }) => e.code))
      const busy = await Promise.race([Promise.all(calls.slice(MAX_IN_FLIGHT)), new Promise((r) => setTimeout(() => r('timeout'), 10_000))])
      expect(busy).toEqual(new Array(n - MAX_IN_FLIGHT).fill('Busy'))
      // cancel is never refused: it is what frees the slots
      for (let i = 0; i < MAX_IN_FLIGHT; i++) await c.api.cancel(100 + i)
      expect(new Set(await Promise.all(calls.slice(0, MAX_IN_FLIGHT)))).toEqual(new Set(['AbortError']))
      expect((await c.api.hostInfo())?.writable).toBe(false)
    } finally {
      c.close()
    }
  })
})

describe('SIGTERM', () => {
  it('stops the server in the middle of a long job, promptly and cleanly', async () => {
    const s = await startServe(['--listen', '127.0.0.1:0', join(tmp.path, 'images')])
    const c = await connectClient(s)
    await c.api.open({ kind: 'host', id: imageId })
    const sha = c.api.sha256(0, 51).catch(() => 'rejected')
    await firstProgress(c, 51)
    const t0 = performance.now()
    const r = await s.stop()
    expect(performance.now() - t0).toBeLessThan(2000)
    expect(r).toEqual({ code: 0, signal: null })
    expect(await sha).toBe('rejected')
  })
})
