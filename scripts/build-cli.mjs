// Bundles the Node CLI (src/cli/main.ts + engine + io) into one minified CommonJS file,
// dist-cli/qbm.cjs, with esbuild. Why this shape (bench/README.md, issue 12): Node 20 has no
// compile cache for user code, so start-up is loading and compiling the bundle. One file read
// synchronously by the CommonJS loader, from a CommonJS entry (bin/qbm.cjs), skips the ES module
// loader's own start-up and its asynchronous reads (~10-25 ms of `qbm --help` on the bench
// machine), and minifying halves what V8 parses. Stack traces map back to the TypeScript with
// `node --enable-source-maps bin/qbm.cjs ...` (QBM_DEBUG=1 prints them).
//
// `qbm serve` (the server, ws, msgpackr, zod, the session) is a second bundle,
// dist-cli/qbm-serve.cjs, required only when that command runs: every other command starts
// without parsing it.
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  // ws's optional native speed-ups and msgpackr's native extractor: used when installed, never bundled.
  external: ['bufferutil', 'utf-8-validate', 'msgpackr-extract'],
}

/** serve-command.ts's `import('./serve.js')` becomes a require of the second bundle. */
const serveApart = {
  name: 'qbm-serve-apart',
  setup(b) {
    b.onResolve({ filter: /^\.\/serve\.js$/ }, (args) =>
      args.importer.endsWith('serve-command.ts') ? { path: './qbm-serve.cjs', external: true } : undefined)
  },
}

await Promise.all([
  build({ ...common, entryPoints: [join(root, 'src/cli/main.ts')], outfile: join(root, 'dist-cli/qbm.cjs'), plugins: [serveApart] }),
  build({ ...common, entryPoints: [join(root, 'src/cli/commands/serve.ts')], outfile: join(root, 'dist-cli/qbm-serve.cjs') }),
])
