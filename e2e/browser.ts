/** How the e2e suite runs Chromium: Debian's binary, never a downloaded one, on a fixed port. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const PORT = Number(process.env.QBM_E2E_PORT ?? 4317)
export const BASE_URL = `http://127.0.0.1:${PORT}/`
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--deny-permission-prompts',
]
