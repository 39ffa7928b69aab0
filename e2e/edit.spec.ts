/**
 * Editing end to end: stage changes in the UI, review the plan, then write to the real file
 * through a dropped handle (Chromium's createWritable swap-and-rename), or download an edited
 * copy from a read-only File. Afterwards QEMU's tools judge the result on disk.
 */
import { chromium, expect, test, type Page } from '@playwright/test'
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BASE_URL, CHROMIUM, CHROMIUM_ARGS, PORT } from './browser.js'
import { KiB, MiB, makeImage, nbdDirty, qemuBitmaps, realDrop, requireTool, screenshot, sh, tempDir, waitForScans } from './helpers.js'
import { inUseImage, judgeWrite, qemuCheck, select, stageAndWrite } from './edit-steps.js'

let dir: ReturnType<typeof tempDir>

test.beforeAll(() => { dir = tempDir('qbm-e2e-edit-') })
test.afterAll(() => dir?.cleanup())

test('stage add, remove and clear in_use on a crashed writer\'s image, review, and write to the real file', async () => {
  test.setTimeout(180_000)
  const image = inUseImage(dir.path, 'crashed.qcow2')
  const before = join(dir.path, 'crashed-before.qcow2')
  copyFileSync(image, before)

  // A profile that already allows this origin to write files: no prompt in headless Chromium.
  // Internal Chromium preference (browser-platform.md): if an update breaks it, this test fails.
  const profile = join(dir.path, 'profile')
  mkdirSync(join(profile, 'Default'), { recursive: true })
  writeFileSync(join(profile, 'Default', 'Preferences'), JSON.stringify({
    profile: { content_settings: { exceptions: { file_system_write_guard: { [`http://127.0.0.1:${PORT},*`]: { setting: 1 } } } } },
  }))
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, baseURL: BASE_URL, serviceWorkers: 'block', viewport: { width: 1440, height: 1000 },
  })
  try {
    const page = ctx.pages()[0] ?? await ctx.newPage()
    await page.goto('./')
    await realDrop(page, image)
    await expect(page.getByTestId('current-file')).toContainText('writable')
    await stageAndWrite(page, 'crashed.qcow2')
    await screenshot(page, 'after-write')
    await ctx.close()
  } catch (e) {
    await ctx.close()
    throw e
  }

  // QEMU's verdict on the file on disk, and no swap file left behind.
  judgeWrite(image, before)
  expect(readdirSync(dir.path).filter((f) => f.endsWith('.crswap'))).toEqual([])
})

test('without a file picker: open read-only through the file input, edit, and download an edited copy', async ({ page }) => {
  await page.addInitScript(() => { delete (window as unknown as { showOpenFilePicker?: unknown }).showOpenFilePicker })
  const image = makeImage(dir.path, 'plain.qcow2', {
    size: '32M', bitmaps: [{ name: 'daily' }, { name: 'weekly', granularity: 1 * MiB }], writes: [[2 * MiB, 256 * KiB]],
  })
  await page.goto('./')
  await page.getByLabel('Open image…').setInputFiles(image)
  await expect(page.getByTestId('current-file')).toContainText('read-only')
  await waitForScans(page, 2)
  const changes = page.getByRole('region', { name: 'Changes' })
  await select(page, 'daily')
  await changes.getByRole('button', { name: 'Rename…' }).click()
  await changes.getByLabel(/New name for/).fill('daily-renamed')
  await changes.getByRole('button', { name: 'Stage rename' }).click()
  await select(page, 'weekly')
  await changes.getByRole('button', { name: 'Disable' }).click()
  await changes.getByRole('button', { name: 'Copy…' }).click()
  await changes.getByLabel(/to a new bitmap named/).fill('weekly-copy')
  await changes.getByRole('button', { name: 'Stage copy' }).click()
  await expect(changes.getByRole('list', { name: 'Pending changes' }).getByRole('listitem').nth(2)).toContainText("Copy 'weekly' to a new bitmap 'weekly-copy'")
  await changes.getByRole('button', { name: 'Review and save…' }).click()
  const dialog = page.getByRole('dialog', { name: /Review changes/ })
  await expect(dialog.getByRole('button', { name: 'Write to file' })).toHaveCount(0)
  const [dl] = await Promise.all([page.waitForEvent('download'), dialog.getByRole('button', { name: 'Download edited copy' }).click()])
  expect(dl.suggestedFilename()).toBe('plain-edited.qcow2')
  const out = join(dir.path, 'downloaded.qcow2')
  await dl.saveAs(out)
  expect(qemuCheck(out).code).toBe(0)
  expect(qemuBitmaps(out)).toEqual([
    { name: 'daily-renamed', granularity: 65536, flags: ['auto'] },
    { name: 'weekly', granularity: 1 * MiB, flags: [] },
    { name: 'weekly-copy', granularity: 1 * MiB, flags: [] },
  ])
  expect(nbdDirty(out, 'daily-renamed')).toEqual(nbdDirty(image, 'daily'))
  expect(nbdDirty(out, 'weekly-copy')).toEqual(nbdDirty(image, 'weekly'))
  sh(`qemu-img compare -f qcow2 -F qcow2 ${image} ${out}`)
  // The original is untouched.
  expect(qemuBitmaps(image).map((b) => b.name)).toEqual(['daily', 'weekly'])
  expect(existsSync(image)).toBe(true)
})

test('a refused change is explained with the engine\'s words and nothing is written', async ({ page }) => {
  const image = makeImage(dir.path, 'refuse.qcow2', { size: '16M', bitmaps: [{ name: 'a' }, { name: 'b' }], writes: [] })
  await page.goto('./')
  await realDrop(page, image)
  await waitForScans(page, 2)
  const changes = page.getByRole('region', { name: 'Changes' })
  await select(page, 'a')
  await changes.getByRole('button', { name: 'Rename…' }).click()
  await changes.getByLabel(/New name for/).fill('b') // taken
  await changes.getByRole('button', { name: 'Stage rename' }).click()
  await changes.getByRole('button', { name: 'Review and save…' }).click()
  const dialog = page.getByRole('dialog', { name: /Review changes/ })
  await expect(dialog.getByRole('alert')).toContainText('nothing was written')
  await expect(dialog.getByRole('alert')).toContainText('Bitmap already exists: b')
  await expect(dialog.getByRole('button', { name: 'Write to file' })).toBeDisabled()
  await dialog.getByRole('button', { name: 'Close' }).click()
  expect(qemuBitmaps(image).map((b) => b.name)).toEqual(['a', 'b'])
})

test('an image that fails its check is refused before anything is written, with the check\'s words', async ({ page }) => {
  const image = makeImage(dir.path, 'corrupt.qcow2', { size: '16M', bitmaps: [{ name: 'a' }], writes: [[0, 64 * KiB]] })
  // Zero the refcount of the L1 table's cluster: qemu-img check reports a corruption (exit 2).
  const { setClusterRefcount } = await import('../src/test-support/edit-images.js')
  await setClusterRefcount(image, (h) => h.l1TableOffset / h.clusterSize, 0)
  expect(qemuCheck(image).code).toBe(2)
  const before = sh(`sha256sum ${image}`)

  await page.goto('./')
  await realDrop(page, image)
  await waitForScans(page, 1)
  const changes = page.getByRole('region', { name: 'Changes' })
  await select(page, 'a')
  await changes.getByRole('button', { name: 'Disable' }).click()
  await changes.getByRole('button', { name: 'Review and save…' }).click()
  const dialog = page.getByRole('dialog', { name: /Review changes/ })
  await expect(dialog.getByRole('alert')).toContainText('fails its check with 1 corruption')
  await expect(dialog.getByRole('alert')).toContainText(`refcount=0 reference=1`)
  await expect(dialog.getByRole('alert')).toContainText('nothing was written')
  await expect(dialog.getByRole('button', { name: 'Write to file' })).toBeDisabled()
  expect(sh(`sha256sum ${image}`)).toBe(before)
})
