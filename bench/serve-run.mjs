// `node bench/serve-run.mjs [latency] [edit] [--runs N] [--json] [--tmp DIR] [--prealloc metadata|off]`: issue 9's serve
// figures alone (bench/serve-latency.ts, bench/serve-edit.ts), outside `npm run bench`. Builds
// the CLI and the app (qbm serve serves dist/), bundles the two modules with esbuild into
// bench-out/serve-run.mjs (npm packages stay external) and runs them; the table goes to stdout,
// progress to stderr.
import { build } from 'esbuild'
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
{
  for (const [cmd, a] of [[process.execPath, [join(root, 'scripts/build-cli.mjs')]], ['npx', ['vite', 'build', '--logLevel', 'warn']]]) {
    const r = spawnSync(cmd, a, { stdio: 'inherit', cwd: root })
    if (r.status !== 0) process.exit(r.status ?? 1)
  }
  const entry = `
import { benchServeLatency } from './serve-latency.ts'
import { benchServeEdit } from './serve-edit.ts'
import { log, tempDir } from './util.ts'
const argv = ${JSON.stringify(args)}
const opt = (k) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined }
const which = argv.filter((a) => a === 'latency' || a === 'edit')
const want = (w) => which.length === 0 || which.includes(w)
const runs = opt('--runs') ? Number(opt('--runs')) : undefined
const qbmBin = ${JSON.stringify(join(root, 'bin', 'qbm.cjs'))}
const tmp = tempDir('qbm-bench-serve-', opt('--tmp'))
const rows = []
try {
  if (want('latency')) rows.push(...await benchServeLatency({ dir: tmp.path, qbmBin, ...(runs ? { runs } : {}) }))
  if (want('edit')) rows.push(...await benchServeEdit({ dir: tmp.path, qbmBin, ...(runs ? { runs } : {}), ...(opt('--prealloc') ? { preallocation: opt('--prealloc') } : {}) }))
} finally {
  tmp.cleanup()
}
if (argv.includes('--json')) console.log(JSON.stringify(rows, null, 2))
else {
  console.log('| figure | qbm | baseline | ratio | target | met |\\n| --- | --- | --- | --- | --- | --- |')
  for (const r of rows) console.log(\`| \${r.figure} | \${r.qbm} | \${r.baseline} | \${r.ratio} | \${r.target} | \${r.met === null ? '' : r.met ? 'yes' : 'NO'} |\`)
}
log('done')
`
  await build({
    stdin: { contents: entry, resolveDir: join(root, 'bench'), sourcefile: 'serve-run-entry.mjs', loader: 'ts' },
    outfile: join(root, 'bench-out', 'serve-run.mjs'),
    bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning',
  })
  const r = spawnSync(process.execPath, [join(root, 'bench-out', 'serve-run.mjs')], { stdio: 'inherit' })
  process.exit(r.status ?? 1)
}
