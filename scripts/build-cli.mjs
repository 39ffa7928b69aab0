// Bundles the Node CLI (src/cli/main.ts + engine + io) into dist-cli/qbm.mjs with esbuild; code
// only some commands need (the server of `qbm serve`) goes into chunks loaded when they run.
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
await build({
  entryPoints: { qbm: join(root, 'src/cli/main.ts') },
  outdir: join(root, 'dist-cli'),
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
  bundle: true,
  // CommonJS dependencies (ws) call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __qbmCreateRequire } from 'node:module'; const require = __qbmCreateRequire(import.meta.url);" },
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // ws's optional native speed-ups and msgpackr's native extractor: used when installed, never bundled.
  external: ['bufferutil', 'utf-8-validate', 'msgpackr-extract'],
})
