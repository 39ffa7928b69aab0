#!/usr/bin/env node
// The `qbm` command's old ES module entry, kept so scripts that run `node bin/qbm.mjs` keep
// working. The command itself is bin/qbm.cjs (package.json "bin"), which starts faster: see
// scripts/build-cli.mjs.
import './qbm.cjs'
