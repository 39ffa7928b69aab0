/**
 * `qbm serve` end to end: a real server process over a directory of QEMU-made images (one a
 * crashed writer's, one held by a running qemu-nbd, one with libvirt checkpoints that disagree
 * with its bitmaps) and a loop device, driven by Debian's Chromium through the printed URL.
 * QEMU's tools judge every write.
 */
import { expect, test, type Page } from '@playwright/test'
import { spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { attachLoop, padTo, roundUp, startQemuNbd, type Holder } from '../src/test-support/host.js'
import { writeCheckpointDir } from '../src/test-support/libvirt-checkpoints.js'
import { inUseImage, judgeWrite, qemuCheck, select } from './edit-steps.js'
import { stageAndWrite } from './edit-steps.js'
import { KiB, MiB, ROOT, makeImage, publishScreenshot, qemuBitmaps, screenshot, sh, tempDir, waitForScans } from './helpers.js'

interface Served { url: string; proc: ChildProcess; stderr: () => string; stop: () => Promise<void> }

/** Start `qbm serve ARGS` and read the URL from its first stdout line. */
async function serve(args: string[]): Promise<Served> {
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'qbm.cjs'), 'serve', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf('\n')
      if (nl >= 0) resolve(out.slice(0, nl))
    })
    proc.once('exit', (code) => reject(new Error(`qbm serve exited (${code}): ${err}`)))
  })
  return {
    url, proc, stderr: () => err,
    stop: () => new Promise((r) => { if (proc.exitCode !== null) r(); else { proc.once('exit', () => r()); proc.kill('SIGTERM') } }),
  }
}

let dir: ReturnType<typeof tempDir>
let loop: { dev: string; detach: () => void } | undefined
let holder: Holder | undefined
let server: Served | undefined
const images: Record<string, string> = {}

test.beforeAll(async () => {
  dir = tempDir('qbm-e2e-serve-')
  const imgs = join(dir.path, 'images')
  sh(`mkdir -p ${imgs}`)
  images.crashed = inUseImage(imgs, 'crashed.qcow2')
  copyFileSync(images.crashed, join(dir.path, 'crashed-before.qcow2'))
  images.held = makeImage(imgs, 'held.qcow2', { size: '32M', bitmaps: [{ name: 'live' }], writes: [[0, 64 * KiB]] })
  images.vm1 = makeImage(imgs, 'vm1.qcow2', { size: '32M', bitmaps: [{ name: 'cp1' }, { name: 'orphan' }], writes: [[1 * MiB, 64 * KiB]] })
  // The loop device: an image outside the directory, given to the server as /dev/loopN.
  const blockFile = makeImage(dir.path, 'block.qcow2', { size: '64M', bitmaps: [{ name: 'nightly' }], writes: [[4 * MiB, 128 * KiB]] })
  padTo(blockFile, roundUp(Number(sh(`stat -c %s ${blockFile}`).trim()), 64 * KiB) + 1 * MiB) // room for new clusters
  loop = attachLoop(blockFile)
  // libvirt: cp1 is healthy; cp2's bitmap is gone (stale checkpoint); 'orphan' has no checkpoint.
  const source = { vda: { file: images.vm1 } }
  writeCheckpointDir(join(dir.path, 'checkpoint'), [
    { domain: 'vm1', name: 'cp1', creationTime: 1764800000, disks: [{ name: 'vda', checkpoint: 'bitmap' }], sources: source },
    { domain: 'vm1', name: 'cp2', parent: 'cp1', creationTime: 1764886400, disks: [{ name: 'vda', checkpoint: 'bitmap' }], sources: source },
  ])
  holder = startQemuNbd(images.held, dir.path)
  server = await serve(['--write', '--libvirt-checkpoint-dir', join(dir.path, 'checkpoint'), imgs, loop.dev])
})

test.afterAll(async () => {
  await server?.stop()
  holder?.stop()
  loop?.detach()
  dir?.cleanup()
})

async function openOverview(page: Page): Promise<void> {
  await page.goto(server!.url)
  await expect(page.getByTestId('host-count')).toContainText('4 images')
}

function row(page: Page, path: string) {
  return page.locator(`.host-row[data-path="${path}"]`)
}

test('the overview lists every image with its lock holder and its checkpoint mismatches', async ({ page }) => {
  await openOverview(page)
  // The token left the address bar.
  expect(page.url()).not.toContain('token')
  await expect(row(page, images.held!).getByTestId('holder')).toHaveText(`qemu-nbd (pid ${holder!.pid})`)
  await expect(row(page, images.vm1!).getByTestId('checkpoints')).toContainText('cp2: bitmap not found in backing chain')
  await expect(row(page, images.vm1!).getByTestId('checkpoints')).toContainText('orphan: Bitmap already exists')
  await expect(row(page, loop!.dev)).toContainText('block')
  // Checks run lazily, row by row; the held image is skipped.
  await expect(row(page, loop!.dev)).toContainText('clean', { timeout: 30_000 })
  await expect(row(page, images.held!)).toContainText('skipped (in use)')
  publishScreenshot(await screenshot(page, 'host-overview'), 'serve.png')
  // Needs attention: the crashed writer's (in use), the held one, the mismatched one; not the clean device.
  await page.getByRole('checkbox', { name: 'Needs attention only' }).check()
  await expect(page.locator('.host-row')).toHaveCount(3)
  await expect(row(page, loop!.dev)).toHaveCount(0)
})

test('an image held by qemu-nbd opens labelled, and an edit is refused with the holder named; nothing is written', async ({ page }) => {
  const before = readFileSync(images.held!)
  await openOverview(page)
  await row(page, images.held!).click()
  await expect(page.getByTestId('held-banner')).toContainText(`qemu-nbd (pid ${holder!.pid})`)
  await waitForScans(page, 1)
  const changes = page.getByRole('region', { name: 'Changes' })
  await changes.getByRole('button', { name: 'Add bitmap…' }).click()
  await changes.getByLabel('New bitmap name').fill('sneaky')
  await changes.getByRole('button', { name: 'Stage add' }).click()
  await changes.getByRole('button', { name: 'Review and save…' }).click()
  const dialog = page.getByRole('dialog', { name: /Review changes/ })
  await expect(dialog.getByRole('alert')).toContainText(`open in qemu-nbd (pid ${holder!.pid})`)
  await expect(dialog.getByRole('button', { name: 'Write to file' })).toHaveCount(0)
  expect(readFileSync(images.held!).equals(before)).toBe(true)
})

test('stage add, remove and clear in_use through the server, write in place, and QEMU judges the file', async ({ page }) => {
  test.setTimeout(120_000)
  await openOverview(page)
  await row(page, images.crashed!).click()
  await expect(page.getByTestId('current-file')).toContainText('writable')
  await stageAndWrite(page, images.crashed!)
  await screenshot(page, 'serve-after-write')
  judgeWrite(images.crashed!, join(dir.path, 'crashed-before.qcow2'))
  // Back to the overview: the image no longer needs attention.
  await page.getByRole('button', { name: /All images on/ }).click()
  await expect(row(page, images.crashed!)).not.toHaveClass(/attention/)
})

test('a loop device: add a bitmap in place, qemu-img check on the device is clean', async ({ page }) => {
  await openOverview(page)
  await row(page, loop!.dev).click()
  await waitForScans(page, 1)
  await select(page, 'nightly')
  const changes = page.getByRole('region', { name: 'Changes' })
  await changes.getByRole('button', { name: 'Add bitmap…' }).click()
  await changes.getByLabel('New bitmap name').fill('from-browser')
  await changes.getByRole('button', { name: 'Stage add' }).click()
  await changes.getByRole('button', { name: 'Review and save…' }).click()
  const dialog = page.getByRole('dialog', { name: /Review changes/ })
  await expect(dialog).toContainText('in place')
  await dialog.getByRole('button', { name: 'Write to file' }).click()
  await expect(page.getByRole('status').filter({ hasText: /^Wrote 1 change to / })).toBeVisible({ timeout: 30_000 })
  const check = qemuCheck(loop!.dev)
  expect(check.out).toContain('No errors were found')
  expect(qemuBitmaps(loop!.dev).map((b) => b.name)).toEqual(['nightly', 'from-browser'])
})
