// `npm test`: everything. Installs what it needs (npm dependencies; on Debian as root the apt
// packages qemu-utils libnbd-bin qemu-system-x86 chromium), then type-checks, checks the layer
// boundaries (dependency-cruiser: .dependency-cruiser.cjs), runs the unit and
// interop suites (Vitest, against the live QEMU tools) and the browser suite (Playwright with
// Debian's Chromium). A missing tool fails the run; nothing is skipped silently.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, ensureNodeModules, ensureSystemTools, sh } from './ensure.mjs'

ensureNodeModules()
ensureSystemTools()
const out = join(ROOT, '.tmp')
mkdirSync(out, { recursive: true })
const vitestJson = join(out, 'vitest.json')
const playwrightJson = join(out, 'playwright.json')
for (const f of [vitestJson, playwrightJson]) rmSync(f, { force: true })
process.env.PLAYWRIGHT_JSON_OUTPUT_NAME = playwrightJson
const steps = [
  ['type check', 'npx', ['tsc', '-p', 'tsconfig.json']],
  ['type check (engine: no DOM, no Node)', 'npx', ['tsc', '-p', 'tsconfig.engine.json']],
  ['layer boundaries (dependency-cruiser)', 'npx', ['depcruise', 'src', 'bench', 'e2e', '--config', '.dependency-cruiser.cjs']],
  ['build CLI', 'node', ['scripts/build-cli.mjs']],
  // before Vitest: the qbm serve tests serve the built app
  ['build app', 'npx', ['vite', 'build', '--logLevel', 'warn']],
  ['unit + interop tests (Vitest)', 'npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${vitestJson}`]],
  ['browser tests (Playwright)', 'npx', ['playwright', 'test', '-c', 'e2e/playwright.config.ts', '--reporter=list,json']],
]
let failed = 0
for (const [name, cmd, args] of steps) {
  console.log(`\n=== ${name}: ${cmd} ${args.join(' ')}`)
  const t = Date.now()
  const code = sh(cmd, args)
  console.log(`=== ${name}: ${code === 0 ? 'ok' : `FAILED (exit ${code})`} in ${((Date.now() - t) / 1000).toFixed(1)} s`)
  if (code !== 0) failed++
}
// One closing line over every test case that ran (Vitest + Playwright).
let passed = 0
let failedTests = 0
let skipped = 0
if (existsSync(vitestJson)) {
  const v = JSON.parse(readFileSync(vitestJson, 'utf8'))
  passed += v.numPassedTests ?? 0
  failedTests += v.numFailedTests ?? 0
  skipped += (v.numPendingTests ?? 0) + (v.numTodoTests ?? 0)
}
if (existsSync(playwrightJson)) {
  const st = JSON.parse(readFileSync(playwrightJson, 'utf8')).stats ?? {}
  passed += (st.expected ?? 0) + (st.flaky ?? 0)
  failedTests += st.unexpected ?? 0
  skipped += st.skipped ?? 0
}
if (failed && failedTests === 0) failedTests = failed // a step failed before its tests could run
console.log(`\nsteps: ${steps.length - failed} of ${steps.length} ok`)
console.log(`tests: ${passed} passed, ${failedTests} failed${skipped ? `, ${skipped} skipped` : ''}`)
process.exit(failed ? 1 : 0)
