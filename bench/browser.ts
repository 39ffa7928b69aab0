/**
 * The browser rows of `npm run bench`, measured in Debian's Chromium (e2e/browser.ts: never a
 * downloaded browser) driven by Playwright, on the production build of the app (dist/, built by
 * scripts/bench.mjs) and a bench-only page (bench/browser/, built into bench-out/browser/),
 * both served from 127.0.0.1 by a small static server in this process:
 *  - drop → first heatmap on A: a real drop (CDP, as e2e/helpers.ts realDrop) on a fresh page,
 *    from the app's `qbm:drop` mark to its `qbm:first-heatmap` mark;
 *  - the scan of D's 512 MiB in a worker as a ratio to a plain `File.slice().arrayBuffer()` read
 *    of the same bytes in the same worker (bench/browser/scan.worker.ts);
 *  - the longest main-thread task while the app scans D: Chromium's trace between the app's
 *    `qbm:scan-start` and `qbm:scan-end` marks, as e2e/quality.spec.ts reads it.
 */
import { createReadStream, existsSync, rmSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize, sep } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from '@playwright/test'
import { CHROMIUM, CHROMIUM_ARGS } from '../e2e/browser.js'
import { realDrop } from '../e2e/helpers.js'
import { mainThreadTasks } from '../src/test-support/trace.js'
import type { ScanResult } from './browser/scan.worker.js'
import { log, median } from './util.js'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.json': 'application/json', '.webmanifest': 'application/manifest+json', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.ico': 'image/x-icon', '.wasm': 'application/wasm', '.map': 'application/json',
  '.qcow2': 'application/octet-stream', '.txt': 'text/plain',
}

/** Serve `routes` (URL prefix → directory) on 127.0.0.1; GET only, no directory listings. */
async function serve(routes: Array<[string, string]>): Promise<{ server: Server; base: string }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    const route = routes.find(([prefix]) => path.startsWith(prefix))
    if (!route) { res.writeHead(404).end(); return }
    let file = normalize(join(route[1], path.slice(route[0].length)))
    if (!file.startsWith(route[1] + sep) && file !== route[1]) { res.writeHead(403).end(); return }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html')
    if (!existsSync(file)) { res.writeHead(404).end(); return }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' })
    createReadStream(file).pipe(res)
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

/** What the browser rows print. */
export interface BrowserFigures {
  chromium: string
  dropToHeatmapMs: number[]
  scan: ScanResult & { readBaseMs: number; ratio: number }
  /** the app's scan of D: main-thread tasks between its scan marks */
  appScan: { scanMs: number; tasks: number; maxCpuMs: number; maxWallMs: number }
}

/** Measure the browser figures on images A and D (bitmap `bitmapD` of D). */
export async function browserFigures(root: string, A: string, D: string, bitmapD: string, runs: number, tmp: string): Promise<BrowserFigures> {
  const dist = join(root, 'dist')
  const page = join(root, 'bench-out', 'browser')
  if (!existsSync(join(dist, 'index.html')) || !existsSync(join(page, 'index.html'))) throw new Error('run the bench through `npm run bench` (it builds dist/ and bench-out/browser/)')
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH); the bench never downloads a browser`)
  const { server, base } = await serve([['/bench/', page], ['/', dist]])
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
  try {
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 1000 }, serviceWorkers: 'block' })
    log(`browser: drop → first heatmap on A (${runs} runs after a warm-up)`)
    const dropToHeatmapMs: number[] = []
    for (let i = 0; i <= runs; i++) {
      const ms = await dropToFirstHeatmap(ctx, `${base}/`, A)
      if (i > 0) dropToHeatmapMs.push(ms)
    }
    log('browser: scan of D vs a plain File read, in one worker')
    const scan = await scanVsRead(ctx, `${base}/bench/`, D, bitmapD, Math.max(3, Math.min(runs, 5)))
    log('browser: the app scanning D, main-thread tasks from the trace')
    const appScan = await appScanTasks(browser, ctx, `${base}/`, D, join(tmp, 'trace.json'))
    await ctx.close()
    return { chromium: browser.version(), dropToHeatmapMs, scan, appScan }
  } finally {
    await browser.close()
    server.close()
  }
}

async function dropToFirstHeatmap(ctx: BrowserContext, url: string, image: string): Promise<number> {
  const page = await ctx.newPage()
  try {
    await page.goto(url)
    await page.getByRole('button', { name: 'Open demo image' }).waitFor()
    await realDrop(page, image)
    await waitForMark(page, 'qbm:first-heatmap', 60_000)
    return await page.evaluate(() => {
      const drop = performance.getEntriesByName('qbm:drop').at(-1)!
      return performance.getEntriesByName('qbm:first-heatmap').at(-1)!.startTime - drop.startTime
    })
  } finally {
    await page.close()
  }
}

async function waitForMark(page: Page, name: string, timeoutMs: number): Promise<void> {
  await page.waitForFunction((n) => performance.getEntriesByName(n).length > 0, name, { timeout: timeoutMs, polling: 20 })
}

async function scanVsRead(ctx: BrowserContext, url: string, image: string, bitmap: string, runs: number): Promise<BrowserFigures['scan']> {
  const page = await ctx.newPage()
  try {
    await page.goto(url)
    const input = page.locator('input[type=file]')
    await input.evaluate((el, a) => { el.dataset.bitmap = a.bitmap; el.dataset.runs = String(a.runs) }, { bitmap, runs })
    await input.setInputFiles(image)
    await page.waitForFunction(() => window.__scan !== undefined, undefined, { timeout: 300_000, polling: 100 })
    const got = await page.evaluate(() => window.__scan!)
    if (got.error || !got.result) throw new Error(`bench page: ${got.error ?? 'no result'}`)
    const r = got.result
    // The baseline is the faster plain read (with or without reading ahead): the strict ratio.
    const readBaseMs = Math.min(median(r.readMs), median(r.readAheadMs))
    return { ...r, readBaseMs, ratio: readBaseMs / median(r.scanMs) }
  } finally {
    await page.close()
  }
}


async function appScanTasks(browser: Browser, ctx: BrowserContext, url: string, image: string, tracePath: string): Promise<BrowserFigures['appScan']> {
  const page = await ctx.newPage()
  try {
    await page.goto(url)
    await page.getByRole('button', { name: 'Open demo image' }).waitFor()
    await browser.startTracing(page, { path: tracePath, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'blink.user_timing'] })
    await realDrop(page, image)
    await waitForMark(page, 'qbm:scan-end', 300_000)
    await browser.stopTracing()
    const t = mainThreadTasks(tracePath, 'qbm:scan-start', 'qbm:scan-end')
    return { scanMs: t.scanMs, tasks: t.list.length, maxCpuMs: t.maxCpuMs, maxWallMs: t.maxWallMs }
  } finally {
    await page.close()
    rmSync(tracePath, { force: true })
  }
}

