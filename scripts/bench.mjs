// `npm run bench [-- --json] [-- --runs N] [-- --keep]`: issue 5's benchmark. Builds the CLI
// (dist-cli/qbm.cjs), the app (dist/, as the e2e suite does) and the bench-only browser page
// (bench/browser/ into bench-out/browser/), bundles bench/*.ts with esbuild into bench-out/
// (gitignored), then runs bench-out/main.mjs, which builds the images in a temp dir, times qbm
// against QEMU's tools and Chromium, and prints the table. See bench/README.md.
import { build } from 'esbuild'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const t = Date.now()
const cli = spawnSync(process.execPath, [join(root, 'scripts/build-cli.mjs')], { stdio: 'inherit' })
if (cli.status !== 0) process.exit(cli.status ?? 1)
const app = spawnSync(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], { cwd: root, stdio: 'inherit' })
if (app.status !== 0) process.exit(app.status ?? 1)
const common = { bundle: true, format: 'esm', sourcemap: 'linked', logLevel: 'warning' }
await build({
  ...common,
  entryPoints: { main: join(root, 'bench/main.ts'), inproc: join(root, 'bench/inproc.ts') },
  outdir: join(root, 'bench-out'),
  outExtension: { '.js': '.mjs' },
  platform: 'node',
  target: 'node20',
  packages: 'external', // Playwright is loaded from node_modules, not bundled
})
const page = join(root, 'bench-out/browser')
await build({
  ...common,
  entryPoints: { page: join(root, 'bench/browser/page.ts'), 'scan.worker': join(root, 'bench/browser/scan.worker.ts') },
  outdir: page,
  platform: 'browser',
  target: 'es2022',
})
mkdirSync(page, { recursive: true })
copyFileSync(join(root, 'bench/browser/index.html'), join(page, 'index.html'))
process.stderr.write(`bench: built CLI, app and bench bundles in ${((Date.now() - t) / 1000).toFixed(1)} s\n`)
const r = spawnSync(process.execPath, [join(root, 'bench-out/main.mjs'), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, QBM_BENCH_BUILD_MS: String(Date.now() - t) } })
process.exit(r.status ?? 1)
