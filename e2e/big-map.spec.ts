/**
 * The disk map on the largest disks, timed in Chromium (issue 11's performance targets), with
 * the same measurements bench/map2d.ts reports:
 *  - 256 TiB with a 64 KiB-granularity bitmap: 2^32 bits, 512 MiB of bitmap data, written by
 *    qbm's engine at test time (like the bench's image D) and checked by qemu-img check. The
 *    first map appears while the scan runs and fills in as it reads; after the scan, zoom and
 *    scroll steps repaint at once (performance measures `qbm:map-step`, from the input to the
 *    repaint); the page's main thread never runs a task longer than 50 ms of CPU (Chromium's
 *    trace; the Long Tasks API's wall-clock view is reported beside it).
 *  - 2 TiB with a 64 KiB-granularity bitmap: drop to the first whole map, and to its exact cells.
 * Set QBM_MAP_BENCH_OUT to a file path to get the numbers as JSON (bench/map2d.ts does).
 */
import { expect, test, type Page } from '@playwright/test'
import { appendFileSync } from 'node:fs'
import { join } from 'node:path'
import { fillBitmap } from '../bench/write-bitmap.js'
import { qemuBitmaps, realDrop, requireTool, sh, tempDir } from './helpers.js'
import { mainThreadTasks } from '../src/test-support/trace.js'

let dir: ReturnType<typeof tempDir>
test.beforeAll(() => {
  requireTool('qemu-img')
  requireTool('qemu-io')
  dir = tempDir('qbm-e2e-bigmap-')
})
test.afterAll(() => dir?.cleanup())

test.use({ viewport: { width: 1280, height: 800 } })

/** Record a number for bench/map2d.ts (and the test's annotations). */
function metric(name: string, value: unknown): void {
  test.info().annotations.push({ type: name, description: JSON.stringify(value) })
  const out = process.env.QBM_MAP_BENCH_OUT
  if (out) appendFileSync(out, JSON.stringify({ name, value }) + '\n')
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

/**
 * Bitmap bytes with a structure a map shows: per 4 MiB of bitmap (2 TiB of disk), bands of
 * dense random bits, fully dirty runs, sparse single bits and clean stretches. Every table entry
 * still gets a data cluster (fillBitmap), so a scan reads all 512 MiB.
 */
function pattern(seed: number): (off: number, buf: Uint8Array) => void {
  let s = seed >>> 0
  const rnd = (): number => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return s >>> 0 }
  return (off, buf) => {
    const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2)
    for (let i = 0; i < words.length; i++) {
      const at = off + i * 4
      const band = Math.floor(at / (256 * 1024)) % 16 // 256 KiB of bitmap = 128 GiB of disk
      words[i] = band < 3 ? rnd() : band === 5 ? 0xffffffff : band === 9 && (at & 4095) === 0 ? 1 : band === 12 ? rnd() & rnd() & rnd() : 0
    }
  }
}

/** The performance marks of the page, relative to its last drop. */
async function marks(page: Page): Promise<Record<string, number[]>> {
  return page.evaluate(() => {
    const drop = performance.getEntriesByName('qbm:drop').at(-1)?.startTime ?? 0
    const out: Record<string, number[]> = {}
    for (const m of performance.getEntriesByType('mark')) if (m.name.startsWith('qbm:')) (out[m.name] ??= []).push(m.startTime - drop)
    return out
  })
}

async function observeLongTasks(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const w = window as unknown as { __longTasks: number[] }
    w.__longTasks = []
    new PerformanceObserver((list) => { for (const e of list.getEntries()) w.__longTasks.push(Math.round(e.duration)) }).observe({ type: 'longtask', buffered: true })
  })
}

test('256 TiB, 512 MiB of bitmap: the map fills in during the scan, steps repaint within a frame, the page never blocks', async ({ page, browser }) => {
  test.setTimeout(600_000)
  const p = join(dir.path, 'disk-256t.qcow2')
  sh(`qemu-img create -q -f qcow2 ${p} 256T && qemu-img bitmap --add ${p} big`)
  const written = await fillBitmap(p, 'big', pattern(0x256))
  expect(written.dataBytes).toBe(512 * 1024 * 1024)
  sh(`qemu-img check -q ${p}`)
  expect(qemuBitmaps(p)).toEqual([{ name: 'big', granularity: 65536, flags: ['auto'] }])

  await observeLongTasks(page)
  const tracePath = join(dir.path, 'trace.json')
  await page.goto('./')
  await browser.startTracing(page, { path: tracePath, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'blink.user_timing'] })
  await realDrop(page, p)
  await expect.poll(() => page.evaluate(() => performance.getEntriesByName('qbm:first-map-exact').length), { timeout: 300_000 }).toBeGreaterThan(0)
  const m = await marks(page)
  const scanStart = m['qbm:scan-start']![0]!
  const scanEnd = m['qbm:scan-end']![0]!
  const previews = (m['qbm:map-preview'] ?? []).filter((t) => t < scanEnd)
  // What share of the map each preview paint knew: growing as the scan reads.
  const filled = await page.evaluate(() => performance.getEntriesByName('qbm:map-preview').map((e) => {
    const d = (e as PerformanceMark).detail as { known: number; cells: number }
    return d.known / d.cells
  }))
  metric('bigmap.previewFilled', filled.map((x) => Math.round(x * 1000) / 1000))
  metric('bigmap.scanMs', scanEnd - scanStart)
  metric('bigmap.firstPreviewMs', previews[0] ?? null)
  metric('bigmap.previewPaints', previews.length)
  metric('bigmap.firstMapMs', m['qbm:first-map']?.[0] ?? null)
  metric('bigmap.firstExactMs', m['qbm:first-map-exact']?.[0] ?? null)
  console.log(`256 TiB: scan ${(scanEnd - scanStart).toFixed(0)} ms; first preview ${previews[0]?.toFixed(0)} ms after the drop, ${previews.length} preview paints during the scan; whole map ${m['qbm:first-map']?.[0]?.toFixed(0)} ms, exact ${m['qbm:first-map-exact']?.[0]?.toFixed(0)} ms`)
  // Progressive: the map showed data, more than once, before the scan had read all 512 MiB.
  // (soft: the steps below are measured either way)
  expect.soft(previews.length).toBeGreaterThan(1)
  expect.soft(previews[0] ?? Infinity).toBeLessThan(scanEnd)
  expect.soft(filled.length).toBeGreaterThan(1)
  expect.soft(filled[0] ?? 1).toBeLessThan(1) // the first preview knew only part of the disk
  expect.soft(filled.at(-1) ?? 0).toBeGreaterThan(filled[0] ?? 1) // and it filled in
  const caption = page.getByTestId('map-caption')
  expect(Number(await caption.getAttribute('data-cells'))).toBeGreaterThanOrEqual(250_000)

  // Steps after the scan, at a user's pace: first a few under the trace (the main thread's
  // tasks), then the timed ones without it (tracing slows the page it watches).
  const area = page.getByRole('group', { name: /Disk map/ })
  await area.focus()
  const press = async (keys: string[]): Promise<void> => {
    for (const k of keys) {
      await page.keyboard.press(k)
      await page.waitForTimeout(120)
    }
  }
  await press(['+', '+', '+', 'ArrowDown', 'ArrowDown', 'PageDown', '-', '-', '-', '0'])
  await page.waitForTimeout(1000)
  await page.evaluate(() => performance.mark('qbm:steps-end'))
  await browser.stopTracing()
  await page.evaluate(() => performance.clearMeasures())
  await press([...Array(8).fill('+'), ...Array(6).fill('ArrowDown'), 'PageDown', 'PageDown', ...Array(4).fill('ArrowUp'), ...Array(8).fill('-'), ...Array(6).fill('+'), ...Array(6).fill('ArrowDown')])
  const box = (await page.getByTestId('map-canvas-primary').boundingBox())!
  for (let i = 0; i < 10; i++) {
    await page.mouse.move(box.x + box.width * (0.2 + 0.06 * i), box.y + box.height * (0.3 + 0.04 * i))
    await page.mouse.wheel(0, i < 5 ? -100 : 100)
    await page.waitForTimeout(120)
  }
  await page.waitForTimeout(1500)
  const steps = await page.evaluate(() => performance.getEntriesByName('qbm:map-step').map((e) => e.duration))
  const exact = await page.evaluate(() => performance.getEntriesByName('qbm:map-exact').map((e) => e.duration))
  const tasks = mainThreadTasks(tracePath, 'qbm:scan-start', 'qbm:steps-end')
  const longTasks = await page.evaluate(() => (window as unknown as { __longTasks: number[] }).__longTasks)
  metric('bigmap.steps', steps.length)
  metric('bigmap.stepP50', percentile(steps, 50))
  metric('bigmap.stepP95', percentile(steps, 95))
  metric('bigmap.stepMax', Math.max(...steps))
  metric('bigmap.exactP50', percentile(exact, 50))
  metric('bigmap.exactP95', percentile(exact, 95))
  metric('bigmap.maxTaskCpuMs', tasks.maxCpuMs)
  metric('bigmap.maxTaskWallMs', tasks.maxWallMs)
  metric('bigmap.longTasks', longTasks)
  console.log(`256 TiB steps: ${steps.length} repaints, p50 ${percentile(steps, 50).toFixed(1)} ms, p95 ${percentile(steps, 95).toFixed(1)} ms, max ${Math.max(...steps).toFixed(1)} ms; exact cells p50 ${percentile(exact, 50).toFixed(0)} ms, p95 ${percentile(exact, 95).toFixed(0)} ms; main thread: longest task ${tasks.maxCpuMs.toFixed(1)} ms CPU, ${tasks.maxWallMs.toFixed(1)} ms wall; Long Tasks API: ${JSON.stringify(longTasks)}`)
  expect(steps.length).toBeGreaterThan(40)
  // The frame budget is the bench's target; here a regression guard on a shared 2-core machine.
  expect(percentile(steps, 95)).toBeLessThan(50)
  expect(tasks.list.filter((t) => t.cpuMs > 50)).toEqual([])
})

test('2 TiB, 64 KiB granules: drop to the first map', async ({ page }) => {
  test.setTimeout(180_000)
  const p = join(dir.path, 'disk-2t.qcow2')
  // 5,000 random 4 KiB writes, like the bench's image A.
  sh(`qemu-img create -q -f qcow2 ${p} 2T && qemu-img bitmap --add ${p} daily
      python3 -c "import random
random.seed(10)
for i in range(5000): print('write -q -P 0x5a %d 4096' % (random.randrange(2**41 // 4096) * 4096))" | qemu-io -t unsafe -f qcow2 ${p} >/dev/null`)
  const first: number[] = []
  const exact: number[] = []
  for (let run = 0; run < Number(process.env.QBM_MAP_BENCH_RUNS ?? 3); run++) {
    await page.goto('./')
    await page.waitForTimeout(300)
    await realDrop(page, p)
    await expect.poll(() => page.evaluate(() => performance.getEntriesByName('qbm:first-map-exact').length), { timeout: 60_000 }).toBeGreaterThan(0)
    const m = await marks(page)
    first.push(m['qbm:first-map']![0]!)
    exact.push(m['qbm:first-map-exact']![0]!)
  }
  const med = (xs: number[]): number => percentile(xs, 50)
  metric('map2t.firstMapMs', first)
  metric('map2t.firstExactMs', exact)
  console.log(`2 TiB: drop to the first whole map ${first.map((x) => x.toFixed(0)).join(', ')} ms (median ${med(first).toFixed(0)}); to its exact cells ${exact.map((x) => x.toFixed(0)).join(', ')} ms`)
  expect(Number(await page.getByTestId('map-caption').getAttribute('data-cells'))).toBeGreaterThanOrEqual(250_000)
  expect(med(first)).toBeLessThan(2000) // a guard; the 300 ms target is the bench's
})
