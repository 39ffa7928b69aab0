// `npm run bench [-- --json] [-- --runs N] [-- --keep]`: issue 5's benchmark. Builds the CLI
// (dist-cli/qbm.mjs), bundles bench/*.ts with esbuild into bench-out/ (gitignored), then runs
// bench-out/main.mjs, which builds the images in a temp dir, times qbm against QEMU's tools and
// prints the table. See bench/README.md.
import { build } from 'esbuild'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const t = Date.now()
const cli = spawnSync(process.execPath, [join(root, 'scripts/build-cli.mjs')], { stdio: 'inherit' })
if (cli.status !== 0) process.exit(cli.status ?? 1)
await build({
  entryPoints: { main: join(root, 'bench/main.ts'), inproc: join(root, 'bench/inproc.ts') },
  outdir: join(root, 'bench-out'),
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
})
process.stderr.write(`bench: built CLI and bench bundle in ${((Date.now() - t) / 1000).toFixed(1)} s\n`)
const r = spawnSync(process.execPath, [join(root, 'bench-out/main.mjs'), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, QBM_BENCH_BUILD_MS: String(Date.now() - t) } })
process.exit(r.status ?? 1)
