// Bundles the Node CLI (src/cli/main.ts + engine + io) into dist-cli/qbm.mjs with esbuild.
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
await build({
  entryPoints: [join(root, 'src/cli/main.ts')],
  outfile: join(root, 'dist-cli/qbm.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
})
