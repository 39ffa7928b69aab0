#!/usr/bin/env node
// Entry point of the `qbm` command: runs the bundled CLI (built by `npm run build:cli`, which
// `npm install` runs through the prepare script). CommonJS on purpose: see scripts/build-cli.mjs.
'use strict'
const { existsSync } = require('node:fs')
const { join } = require('node:path')

const cli = join(__dirname, '..', 'dist-cli', 'qbm.cjs')
if (!existsSync(cli)) {
  process.stderr.write('qbm: the CLI is not built yet; run `npm install` (or `npm run build:cli`) in the qbm checkout\n')
  process.exit(1)
}
require(cli)
