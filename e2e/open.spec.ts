/**
 * Opening an image through the real paths (synthetic drop, real CDP drop, picker, file input)
 * and checking what the app shows against QEMU's own tools on the same file.
 */
import { chromium, expect, test, type Page } from '@playwright/test'
import { BASE_URL, CHROMIUM, CHROMIUM_ARGS } from './browser.js'
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import {
  KiB, MiB, foreignRequests, makeImage, nbdDirty, qemuBitmaps, realDrop, recordRequests, syntheticDrop,
  tableRows, tempDir, waitForScans,
} from './helpers.js'

let dir: ReturnType<typeof tempDir>
let image: string

test.beforeAll(() => {
  dir = tempDir()
  image = makeImage(dir.path, 'vm-disk.qcow2', {
    size: '64M',
    bitmaps: [{ name: 'alpha' }, { name: 'fine', granularity: 4096 }, { name: 'frozen', granularity: 1 * MiB }],
    writes: [[1 * MiB, 64 * KiB], [10 * MiB, 3 * MiB], [40 * MiB, 4 * KiB], [63 * MiB, 1 * MiB]],
    disable: ['frozen'],
    writesAfter: [[20 * MiB, 512 * KiB], [50 * MiB + 100 * KiB, 8 * KiB]],
  })
})

test.afterAll(() => dir?.cleanup())

/** The table equals `qemu-img info`, and the dirty totals equal nbdinfo's, for `path`. */
async function expectMatchesQemu(page: Page, path: string): Promise<void> {
  const want = qemuBitmaps(path)
  await waitForScans(page, want.length)
  const rows = await tableRows(page)
  expect(rows.map((r) => r.name)).toEqual(want.map((b) => b.name))
  expect(rows.map((r) => Number(r.granularity.replace(/\D/g, '')))).toEqual(want.map((b) => b.granularity))
  expect(rows.map((r) => r.recording)).toEqual(want.map((b) => (b.flags.includes('auto') ? 'enabled' : 'disabled')))
  expect(rows.map((r) => r.status.startsWith('in use'))).toEqual(want.map((b) => b.flags.includes('in-use')))
  for (const b of want) {
    if (b.flags.includes('in-use')) continue // qemu-nbd refuses in-use bitmaps
    const total = nbdDirty(path, b.name).reduce((n, x) => n + x.length, 0)
    expect([b.name, rows.find((r) => r.name === b.name)!.dirtyExact]).toEqual([b.name, total])
  }
}

test('a synthetic drop opens the File read-only and matches qemu-img and nbdinfo', async ({ page }) => {
  const urls = recordRequests(page)
  await page.goto('./')
  await syntheticDrop(page, image)
  await expect(page.getByTestId('current-file')).toContainText('vm-disk.qcow2')
  await expect(page.getByTestId('current-file')).toContainText('read-only')
  await expectMatchesQemu(page, image)
  expect(foreignRequests(urls)).toEqual([])
})

test('a real drop over CDP gives a writable handle, matches QEMU, and is timed to the first heatmap', async ({ page }) => {
  const urls = recordRequests(page)
  await page.goto('./')
  await realDrop(page, image)
  await expect(page.getByTestId('current-file')).toContainText('writable')
  await expectMatchesQemu(page, image)
  const ms = await firstHeatmapMs(page)
  console.log(`drop-to-first-heatmap (64 MiB image, real drop): ${ms.toFixed(1)} ms`)
  test.info().annotations.push({ type: 'drop-to-first-heatmap-ms', description: ms.toFixed(1) })
  expect(foreignRequests(urls)).toEqual([])
})

test('the picker path opens a handle (an OPFS file standing in for the picker)', async ({ page }) => {
  await page.goto('./')
  const b64 = readFileSync(image).toString('base64')
  await page.evaluate(async ({ b64, name }) => {
    const bin = atob(b64)
    const bytes = new Uint8Array(bin.length)
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i)
    const root = await navigator.storage.getDirectory()
    const h = await root.getFileHandle(name, { create: true })
    const w = await h.createWritable()
    await w.write(bytes)
    await w.close()
    ;(window as unknown as { showOpenFilePicker: () => Promise<FileSystemFileHandle[]> }).showOpenFilePicker = async () => [h]
  }, { b64, name: basename(image) })
  await page.getByRole('button', { name: 'Open image…' }).click()
  await expect(page.getByTestId('current-file')).toContainText('writable')
  await expectMatchesQemu(page, image)
})

test('without showOpenFilePicker a visible file input opens the image read-only', async ({ page }) => {
  await page.addInitScript(() => { delete (window as unknown as { showOpenFilePicker?: unknown }).showOpenFilePicker })
  await page.goto('./')
  const input = page.getByLabel('Open image…')
  await expect(input).toBeVisible()
  await input.setInputFiles(image)
  await expect(page.getByTestId('current-file')).toContainText('read-only')
  await expectMatchesQemu(page, image)
})

test('a dropped handle is kept in Recent across restarts; reopening asks for permission again', async () => {
  // A persistent profile, as a user has: an ephemeral test context keeps permissions across
  // reloads, a real profile does not (browser-platform.md).
  const profile = tempDir('qbm-e2e-profile-')
  const launch = () => chromium.launchPersistentContext(profile.path, {
    executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, baseURL: BASE_URL, serviceWorkers: 'block', viewport: { width: 1440, height: 1000 },
  })
  const recentEntry = (page: Page) => page.getByRole('list', { name: 'Recent files' }).getByRole('button', { name: /^vm-disk\.qcow2 ·/ })
  try {
    let ctx = await launch()
    let page = ctx.pages()[0] ?? await ctx.newPage()
    await page.goto('./')
    await realDrop(page, image)
    await expect(page.getByTestId('current-file')).toContainText('writable')
    await expect(page.getByRole('button', { name: 'Recent ▾' })).toBeVisible() // stored in IndexedDB
    await page.reload()
    // Permission is back to 'prompt'; the re-request (headless runs with
    // --deny-permission-prompts) is refused, and the page says so.
    await page.getByRole('button', { name: 'Recent ▾' }).click()
    await recentEntry(page).click()
    await expect(page.getByRole('alert')).toContainText("Permission to read 'vm-disk.qcow2' was not granted")
    await expect(page.getByTestId('current-file')).toHaveCount(0)
    await ctx.close()

    // After a browser restart the handle is still listed; Forget removes it.
    ctx = await launch()
    page = ctx.pages()[0] ?? await ctx.newPage()
    await page.goto('./')
    await page.getByRole('button', { name: 'Recent ▾' }).click()
    await expect(recentEntry(page)).toBeVisible()
    await page.getByRole('button', { name: 'Forget vm-disk.qcow2' }).click()
    await expect(page.getByRole('button', { name: 'Recent ▾' })).toHaveCount(0)
    await page.reload()
    await expect(page.getByRole('button', { name: 'Open demo image' })).toBeVisible()
    await expect(page.getByRole('button', { name: 'Recent ▾' })).toHaveCount(0)
    await ctx.close()
  } finally {
    profile.cleanup()
  }
})

test('a file that is not qcow2 is refused with the structure, field and offset', async ({ page }) => {
  await page.goto('./')
  const dt = await page.evaluateHandle(() => {
    const d = new DataTransfer()
    d.items.add(new File([new Uint8Array(4096).fill(0x41)], 'notes.txt'))
    return d
  })
  for (const type of ['dragenter', 'dragover', 'drop']) await page.dispatchEvent('body', type, { dataTransfer: dt })
  const alert = page.getByRole('alert')
  await expect(alert).toContainText('Opening notes.txt failed')
  await expect(alert).toContainText('magic')
  await expect(alert).toContainText('0x0')
})

async function firstHeatmapMs(page: Page): Promise<number> {
  await expect.poll(() => page.evaluate(() => performance.getEntriesByName('qbm:first-heatmap').length)).toBeGreaterThan(0)
  return page.evaluate(() => {
    const drop = performance.getEntriesByName('qbm:drop').at(-1) ?? performance.getEntriesByName('qbm:open').at(-1)
    const heat = performance.getEntriesByName('qbm:first-heatmap').at(-1)!
    return heat.startTime - (drop?.startTime ?? 0)
  })
}
