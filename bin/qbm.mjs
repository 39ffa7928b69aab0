#!/usr/bin/env node
// Entry point of the `qbm` command: runs the bundled CLI (built by `npm run build:cli`,
// which `npm install` runs through the prepare script).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const cli = new URL('../dist-cli/qbm.mjs', import.meta.url)
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write('qbm: the CLI is not built yet; run `npm install` (or `npm run build:cli`) in the qbm checkout\n')
  process.exit(1)
}
await import(cli.href)
