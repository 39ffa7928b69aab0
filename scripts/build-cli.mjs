// Bundles the Node CLI (src/cli/main.ts + engine + io) into one minified CommonJS file,
// dist-cli/qbm.cjs, with esbuild. Why this shape (bench/README.md, issue 12): Node 20 has no
// compile cache for user code, so start-up is loading and compiling the bundle. One file read
// synchronously by the CommonJS loader, from a CommonJS entry (bin/qbm.cjs), skips the ES module
// loader's own start-up and its asynchronous reads (~10-25 ms of `qbm --help` on the bench
// machine), and minifying halves what V8 parses. Stack traces map back to the TypeScript with
// `node --enable-source-maps bin/qbm.cjs ...` (QBM_DEBUG=1 prints them).
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
await build({
  entryPoints: [join(root, 'src/cli/main.ts')],
  outfile: join(root, 'dist-cli/qbm.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  sourcemap: 'linked',
  logLevel: 'warning',
})
