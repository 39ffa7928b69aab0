/**
 * Vite: React, the engine worker as an ES module, build to dist/. Dev server and preview listen
 * on 127.0.0.1 only. Two small plugins: the dev server relaxes the page's CSP for Vite's
 * inline HMR code, and the build stamps public/sw.js with its asset list and build id.
 */
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import react from '@vitejs/plugin-react'
import { defineConfig, type Plugin } from 'vite'

/** Dev only: React Refresh and Vite's client use inline scripts, styles and a websocket. */
function devCsp(): Plugin {
  return {
    name: 'qbm-dev-csp',
    apply: 'serve',
    transformIndexHtml(html) {
      return html
        .replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
        .replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
        .replace("connect-src 'self'", "connect-src 'self' ws://127.0.0.1:* ws://localhost:*")
    },
  }
}

function listFiles(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...listFiles(p))
    else out.push(p)
  }
  return out
}

/** Build only: write the precache list and a build id into dist/sw.js. */
function serviceWorker(): Plugin {
  let outDir = 'dist'
  return {
    name: 'qbm-service-worker',
    apply: 'build',
    configResolved(c) {
      outDir = c.build.outDir
    },
    closeBundle() {
      const swPath = join(outDir, 'sw.js')
      const files = listFiles(outDir)
        .map((p) => relative(outDir, p).split(sep).join('/'))
        .filter((f) => f !== 'sw.js' && !f.endsWith('.map'))
        .sort()
      const hash = createHash('sha256')
      for (const f of files) hash.update(f).update(readFileSync(join(outDir, f)))
      const build = hash.digest('hex').slice(0, 12)
      const sw = readFileSync(swPath, 'utf8')
        .replace("const BUILD = 'dev'", `const BUILD = '${build}'`)
        .replace('const ASSETS = []', `const ASSETS = ${JSON.stringify(files.map((f) => `./${f}`))}`)
      writeFileSync(swPath, sw)
    },
  }
}

export default defineConfig({
  base: './',
  plugins: [react(), devCsp(), serviceWorker()],
  build: {
    outDir: 'dist',
    target: 'es2022',
    // Inlined assets would be data: URLs, which the CSP does not allow.
    assetsInlineLimit: 0,
    sourcemap: true,
  },
  worker: { format: 'es' },
  server: { host: '127.0.0.1', port: 5173 },
  preview: { host: '127.0.0.1', port: 4173 },
})
