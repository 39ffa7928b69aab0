/**
 * Open from the operating system. Chromium installs qbm as an app over DevTools (`PWA.install`),
 * reports the `.qcow2` file handler it read from the manifest (`PWA.getOsAppState`), and
 * launches the app with a file the way a file manager's "Open with" does
 * (`PWA.launchFilesInApp`): the app window's launch queue gets a real FileSystemFileHandle,
 * qbm opens it writable, and an edit is written to the file, judged by QEMU's tools.
 * What this cannot drive: the desktop's own side (the file manager, the OS registration of
 * the handler, the user's first-launch consent dialog).
 */
import { type BrowserContext, chromium, expect, test } from '@playwright/test'
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BASE_URL, CHROMIUM, CHROMIUM_ARGS, PORT } from './browser.js'
import { inUseImage, judgeWrite, stageAndWrite } from './edit-steps.js'
import { tempDir } from './helpers.js'

let dir: ReturnType<typeof tempDir>
test.beforeAll(() => { dir = tempDir('qbm-e2e-launch-') })
test.afterAll(() => dir?.cleanup())

interface FileHandler { action: string; accepts: Array<{ mediaType: string; fileExtensions: string[] }> }

/**
 * A persistent profile (the app window opens in it) that may already write files for this
 * origin: no prompt in headless Chromium. Internal Chromium preference (browser-platform.md):
 * if an update breaks it, the writing test fails.
 */
async function profile(name: string): Promise<BrowserContext> {
  const p = join(dir.path, name)
  mkdirSync(join(p, 'Default'), { recursive: true })
  writeFileSync(join(p, 'Default', 'Preferences'), JSON.stringify({
    profile: { content_settings: { exceptions: { file_system_write_guard: { [`http://127.0.0.1:${PORT},*`]: { setting: 1 } } } } },
  }))
  return chromium.launchPersistentContext(p, {
    executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, baseURL: BASE_URL, serviceWorkers: 'block', viewport: { width: 1440, height: 1000 },
  })
}

test('the manifest declares .qcow2 file handling, and Chromium registers it when qbm is installed', async ({ request }) => {
  const manifest = await (await request.get('./manifest.webmanifest')).json() as { id: string; scope: string; file_handlers: Array<{ action: string; accept: Record<string, string[]> }> }
  expect(manifest.file_handlers).toEqual([expect.objectContaining({ action: './', accept: { 'application/x-qemu-disk': ['.qcow2'] } })])
  const ctx = await profile('install')
  try {
    const page = ctx.pages()[0] ?? await ctx.newPage()
    await page.goto('./')
    const cdp = await ctx.newCDPSession(page)
    await cdp.send('PWA.install', { manifestId: BASE_URL, installUrlOrBundleUrl: BASE_URL })
    const state = await cdp.send('PWA.getOsAppState', { manifestId: BASE_URL }) as { fileHandlers: FileHandler[] }
    expect(state.fileHandlers).toEqual([{ action: BASE_URL, accepts: [{ mediaType: 'application/x-qemu-disk', fileExtensions: ['.qcow2'] }], displayName: expect.any(String) }])
  } finally {
    await ctx.close()
  }
})

test('launched with a .qcow2 from the operating system, the installed app opens it with a handle it writes to', async () => {
  test.setTimeout(180_000)
  const image = inUseImage(dir.path, 'crashed.qcow2')
  const before = join(dir.path, 'crashed-before.qcow2')
  copyFileSync(image, before)
  const ctx = await profile('launch')
  try {
    const page = ctx.pages()[0] ?? await ctx.newPage()
    await page.goto('./')
    const cdp = await ctx.newCDPSession(page)
    await cdp.send('PWA.install', { manifestId: BASE_URL, installUrlOrBundleUrl: BASE_URL })
    const opened = ctx.waitForEvent('page')
    const { targetIds } = await cdp.send('PWA.launchFilesInApp', { manifestId: BASE_URL, files: [image] }) as { targetIds: string[] }
    expect(targetIds).toHaveLength(1)
    const app = await opened
    await expect(app.getByTestId('current-file')).toContainText('crashed.qcow2')
    await expect(app.getByTestId('current-file')).toContainText('writable')
    await stageAndWrite(app, 'crashed.qcow2')
  } finally {
    await ctx.close()
  }
  judgeWrite(image, before)
  expect(readdirSync(dir.path).filter((f) => f.endsWith('.crswap'))).toEqual([])
})
