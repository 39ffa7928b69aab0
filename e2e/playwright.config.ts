/**
 * Browser tests: Debian's Chromium (never a downloaded browser), headless, against `vite
 * preview` of a fresh production build on 127.0.0.1. A missing Chromium fails the run.
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from '@playwright/test'
import { CHROMIUM, CHROMIUM_ARGS, PORT } from './browser.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

if (!existsSync(CHROMIUM)) {
  throw new Error(
    `qbm e2e: Chromium not found at ${CHROMIUM}. Install Debian's package (apt-get install -y chromium) ` +
    'or point CHROMIUM_PATH at a Chromium binary. These tests never download a browser.',
  )
}

export default defineConfig({
  testDir: '.',
  testMatch: '*.spec.ts',
  outputDir: join(ROOT, 'test-results', 'playwright'),
  timeout: 90_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: process.env.CI ? 'list' : [['list']],
  use: {
    baseURL: `http://127.0.0.1:${PORT}/`,
    headless: true,
    browserName: 'chromium',
    viewport: { width: 1440, height: 1000 },
    launchOptions: { executablePath: CHROMIUM, args: CHROMIUM_ARGS },
    serviceWorkers: 'block',
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
  webServer: {
    command: `npx vite build --logLevel warn && npx vite preview --host 127.0.0.1 --port ${PORT} --strictPort`,
    cwd: ROOT,
    url: `http://127.0.0.1:${PORT}/`,
    reuseExistingServer: false,
    timeout: 180_000,
    stdout: 'ignore',
    stderr: 'pipe',
  },
})
