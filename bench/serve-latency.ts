/**
 * Issue 9's remote-latency figures: `qbm serve` behind a TCP proxy that delays every chunk by
 * 25 ms each way (a 50 ms round trip, like an SSH tunnel to a remote host), against the same
 * steps with no proxy. Round trips = (time through the proxy − time without it) / 50 ms, so
 * the engine's own time cancels out. The unit is calibrated: one round trip is what a trivial
 * call (`hostInfo`) costs through the proxy minus without it (50 ms plus the proxy's timer
 * slack, ~1-3 ms). Round trips are whole numbers; the measured fraction is noise, so a target
 * is met when the rounded count is within it (the measured value is printed).
 *
 * (a) Opening an image to its bitmap table shown, in the real page: Debian's Chromium
 *     (Playwright, executablePath from e2e/browser.ts, never a downloaded browser) loads the
 *     printed URL, waits for the host overview, clicks the image's row; the clock runs in the
 *     page from the click to the first bitmap row in the DOM (and, reported beside it, to every
 *     bitmap's dirty count filled in). The socket calls the page made meanwhile are decoded
 *     from its WebSocket frames and listed. Target: ≤ 4 round trips.
 * (b) A zoom or pan step of the heatmap: one `heatmap` call (random windows, 1,024 cells, on a
 *     scanned bitmap) from a Node client speaking the page's protocol. Target: ≤ 1 round trip.
 *
 * Called as `rows.push(...await benchServeLatency({ dir, qbmBin }))`; bench/serve-run.mjs runs
 * it alone.
 */
import type { Row } from './rows.js'
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Page } from '@playwright/test'
import { CHROMIUM, CHROMIUM_ARGS } from '../e2e/browser.js'
import { decodeMessage } from '../src/transport/codec.js'
import { type ServeProcess, connectClient, startServe } from '../src/test-support/serve.js'
import { Prng, log, median, run } from './util.js'

/** A row of the bench table. */
export type LatencyBenchRow = Row

export interface LatencyBenchOptions {
  /** a temp dir the bench owns */
  dir: string
  /** bin/qbm.cjs of the checkout */
  qbmBin: string
  /** page loads per mode (default 5) */
  runs?: number
  /** heatmap steps per mode (default 40) */
  steps?: number
  /** delay each way (default 25 ms) */
  oneWayMs?: number
}

/** A TCP proxy to 127.0.0.1:`port` that holds every chunk `oneWayMs` in each direction, in order. */
export async function delayProxy(port: number, oneWayMs: number): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const pipe = (from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => { setTimeout(() => { if (!to.destroyed) to.write(chunk) }, oneWayMs) })
    from.on('end', () => setTimeout(() => to.end(), oneWayMs))
    from.on('error', () => to.destroy())
    from.on('close', () => setTimeout(() => to.destroy(), oneWayMs + 1))
  }
  const server: Server = createServer((client) => {
    const upstream = netConnect(port, '127.0.0.1')
    for (const s of [client, upstream]) { s.setNoDelay(true); sockets.add(s); s.on('close', () => sockets.delete(s)) }
    pipe(client, upstream)
    pipe(upstream, client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const p = (server.address() as { port: number }).port
  return { port: p, close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }) }
}

const ms = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`)

/** The image: 100 GiB virtual, three bitmaps (64 KiB, 64 KiB disabled, 4 KiB) with scattered writes. */
function makeImage(path: string): void {
  run('qemu-img', ['create', '-q', '-f', 'qcow2', path, '100G'])
  run('qemu-img', ['bitmap', '--add', path, 'daily'])
  run('qemu-img', ['bitmap', '--add', path, 'weekly'])
  const rng = new Prng(9)
  const writes = Array.from({ length: 300 }, () => `write -q -z ${rng.int(100 * 1024) * 1024 * 1024} 65536`)
  run('qemu-io', ['-f', 'qcow2', ...writes.slice(0, 150).flatMap((w) => ['-c', w]), path])
  run('qemu-img', ['bitmap', '--disable', path, 'weekly'])
  run('qemu-img', ['bitmap', '--add', '-g', '4096', path, 'fine'])
  run('qemu-io', ['-f', 'qcow2', ...writes.slice(150).flatMap((w) => ['-c', w]), path])
}

interface OpenTiming { loadMs: number; tableMs: number; scannedMs: number; calls: string[] }

/** Load the page at `origin`, wait for the overview, click the image's row; in-page times. */
async function openInPage(page: Page, origin: string, token: string, imagePath: string, bitmaps: number): Promise<OpenTiming> {
  const frames: Array<{ at: number; m: string }> = []
  page.on('websocket', (ws) => ws.on('framesent', (f) => {
    try {
      const msg = decodeMessage(typeof f.payload === 'string' ? Buffer.from(f.payload) : f.payload) as { m?: string }
      frames.push({ at: Date.now(), m: msg.m ?? '?' })
    } catch { /* not a request */ }
  }))
  const t0 = Date.now()
  await page.goto(`${origin}/#token=${token}`)
  const row = page.locator(`.host-row[data-path="${imagePath}"]`)
  await row.waitFor({ timeout: 60_000 })
  const loadMs = Date.now() - t0
  await page.evaluate((n) => {
    const t: Record<string, number> = {}
    ;(window as unknown as { __qbmT: Record<string, number> }).__qbmT = t
    document.addEventListener('click', () => { t.click ??= performance.now() }, { capture: true, once: true })
    const seen = (): void => {
      if (t.table === undefined && document.querySelector('tr[data-bitmap]')) t.table = performance.now()
      if (t.scanned === undefined && document.querySelectorAll('td[data-col="dirty-exact"]:not(:empty)').length >= n) t.scanned = performance.now()
    }
    new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, characterData: true })
  }, bitmaps)
  const clickAt = Date.now()
  await row.click()
  await page.waitForFunction(() => { const t = (window as unknown as { __qbmT: Record<string, number> }).__qbmT; return t.table !== undefined && t.scanned !== undefined }, undefined, { timeout: 60_000, polling: 20 })
  const t = await page.evaluate(() => (window as unknown as { __qbmT: Record<string, number> }).__qbmT)
  const shownAt = clickAt + (t.table! - t.click!)
  return { loadMs, tableMs: t.table! - t.click!, scannedMs: t.scanned! - t.click!, calls: frames.filter((f) => f.at >= clickAt - 5 && f.at <= shownAt + 5).map((f) => f.m) }
}

/** Build the image, serve it, measure (a) and (b) with and without the proxy; return the rows. */
export async function benchServeLatency(opts: LatencyBenchOptions): Promise<LatencyBenchRow[]> {
  const runs = opts.runs ?? 7
  const steps = opts.steps ?? 40
  const oneWay = opts.oneWayMs ?? 25
  const rtt = 2 * oneWay
  const dir = join(opts.dir, 'latency')
  mkdirSync(dir, { recursive: true })
  const image = join(dir, 'remote.qcow2')
  makeImage(image)
  let server: ServeProcess | undefined
  let proxy: Awaited<ReturnType<typeof delayProxy>> | undefined
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
  try {
    server = await startServe(['--listen', '127.0.0.1:0', dir], { qbmBin: opts.qbmBin })
    proxy = await delayProxy(server.port, oneWay)
    const origins = { direct: server.origin, proxy: `http://127.0.0.1:${proxy.port}` }

    // (a) the page
    const open: Record<'direct' | 'proxy', OpenTiming[]> = { direct: [], proxy: [] }
    for (let i = 0; i < runs + 1; i++) {
      for (const mode of ['direct', 'proxy'] as const) {
        const ctx = await browser.newContext({ serviceWorkers: 'block', viewport: { width: 1440, height: 1000 } })
        const page = await ctx.newPage()
        const t = await openInPage(page, origins[mode], server.token, image, 3)
        await ctx.close()
        if (i > 0) open[mode].push(t) // the first round warms the page cache and the server
      }
      log(`latency (a): round ${i}: table ${ms(open.direct.at(-1)?.tableMs ?? NaN)} direct, ${ms(open.proxy.at(-1)?.tableMs ?? NaN)} through the proxy`)
    }
    const med = (m: 'direct' | 'proxy', k: 'loadMs' | 'tableMs' | 'scannedMs'): number => median(open[m].map((x) => x[k]))
    const calls = open.proxy[0]!.calls

    // (b) heatmap steps from a Node client; the unit: a trivial call, the same way
    const heat: Record<'direct' | 'proxy', number[]> = { direct: [], proxy: [] }
    const ping: Record<'direct' | 'proxy', number[]> = { direct: [], proxy: [] }
    let id = ''
    for (const mode of ['direct', 'proxy'] as const) {
      const c = await connectClient({ socketUrl: `${origins[mode].replace('http', 'ws')}/api/socket`, token: server.token, origin: origins[mode] })
      try {
        for (let i = 0; i < steps + 3; i++) {
          const t = performance.now()
          await c.api.hostInfo()
          if (i >= 3) ping[mode].push(performance.now() - t)
        }
        id ||= (await c.api.hostOverview()).rows[0]!.id
        const o = await c.api.open({ kind: 'host', id })
        const L = o.summary.virtualSize
        await c.api.scan(0)
        const rng = new Prng(17)
        for (let i = 0; i < steps + 3; i++) {
          const width = Math.max(1 << 20, Math.floor(L / 2 ** rng.int(16)))
          const start = rng.int(L - width + 1)
          const t = performance.now()
          const cells = await c.api.heatmap(0, start, start + width, 1024)
          if (cells.length !== 1024) throw new Error(`heatmap returned ${cells.length} cells`)
          if (i >= 3) heat[mode].push(performance.now() - t)
        }
      } finally {
        c.close()
      }
    }
    const unit = median(ping.proxy) - median(ping.direct)
    const heatRts = (median(heat.proxy) - median(heat.direct)) / unit
    const rts = (k: 'loadMs' | 'tableMs' | 'scannedMs'): number => (med('proxy', k) - med('direct', k)) / unit
    log(`latency: one round trip through the proxy costs ${ms(unit)} (hostInfo ${ms(median(ping.proxy))} vs ${ms(median(ping.direct))}); heatmap step ${ms(median(heat.direct))} direct, ${ms(median(heat.proxy))} through the proxy`)

    return [
      {
        figure: `serve, ${rtt} ms RTT proxy (one round trip measured: ${ms(unit)}): open an image to its bitmap table shown (Chromium, click → first bitmap row; median of ${runs})`,
        qbm: `${rts('tableMs').toFixed(2)} round trips (${ms(med('proxy', 'tableMs'))} via proxy)`, baseline: `${ms(med('direct', 'tableMs'))} without the proxy (engine + page)`,
        ratio: '', target: '≤ 4 round trips', met: Math.round(rts('tableMs')) <= 4,
        data: { open, calls, rtt, unit, ping },
      },
      {
        // The scans' own time varies more than a round trip here: times only, no round-trip count.
        figure: '  (… to every bitmap\'s dirty count filled in: the scans run on the host, one call each)', qbm: ms(med('proxy', 'scannedMs')),
        baseline: `${ms(med('direct', 'scannedMs'))} without`, ratio: '', target: '', met: null,
      },
      {
        figure: `  (socket calls from the click to the table: ${calls.join(', ')})`, qbm: '', baseline: '', ratio: '', target: '', met: null,
      },
      {
        figure: '  (page load to the host overview shown, for reference)', qbm: `${rts('loadMs').toFixed(2)} round trips (${ms(med('proxy', 'loadMs'))})`,
        baseline: `${ms(med('direct', 'loadMs'))} without`, ratio: '', target: '', met: null,
      },
      {
        figure: `serve, ${rtt} ms RTT proxy: a heatmap zoom/pan step (1,024 cells, random windows on a 100 GiB image; median of ${steps})`,
        qbm: `${heatRts.toFixed(2)} round trips (${ms(median(heat.proxy))} via proxy)`, baseline: `${ms(median(heat.direct))} without the proxy`,
        ratio: '', target: '≤ 1 round trip', met: Math.round(heatRts) <= 1, data: { heat },
      },
    ]
  } finally {
    await browser.close()
    await proxy?.close()
    await server?.stop()
  }
}
