// Shared by `npm start` and `npm test`: install npm dependencies when missing, and (for tests)
// the Debian packages QEMU's tools and Chromium come from.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

export function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, ...opts })
  if (r.error) throw r.error
  return r.status ?? 1
}

export function ensureNodeModules() {
  const need = ['vite', 'vitest', 'esbuild', 'react', '@playwright/test'].some((p) => !existsSync(join(ROOT, 'node_modules', p, 'package.json')))
  if (!need) return
  console.log('qbm: installing npm dependencies (npm ci)…')
  const code = sh('npm', ['ci', '--no-audit', '--no-fund'])
  if (code !== 0) {
    console.error('qbm: `npm ci` failed; run it by hand and retry')
    process.exit(1)
  }
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

/**
 * Tools the test suite needs, with the Debian package each comes from; a third element is the
 * shell test for what is not a command (a Python module).
 */
export const TOOLS = [
  ['qemu-img', 'qemu-utils'], ['qemu-io', 'qemu-utils'], ['qemu-nbd', 'qemu-utils'],
  ['nbdinfo', 'libnbd-bin'], ['qemu-system-x86_64', 'qemu-system-x86'], ['losetup', 'mount'], ['blockdev', 'util-linux'],
  // Traces qbm serve's open calls, and kills it at the k-th write of a commit (src/server/*.test.ts).
  ['strace', 'strace'],
  // Prometheus' reference parser of the exposition format, which checks `qbm scan --output=prometheus`.
  ['prometheus_client', 'python3-prometheus-client', '/usr/bin/python3 -c "import prometheus_client.parser"'],
]

function present([cmd, , check]) {
  return check ? spawnSync('sh', ['-c', check], { stdio: 'ignore' }).status === 0 : have(cmd)
}

export function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (existsSync(p)) return p
  return undefined
}

export function ensureSystemTools() {
  const missing = new Set()
  for (const t of TOOLS) if (!present(t)) missing.add(t[1])
  if (!chromiumPath()) missing.add('chromium')
  if (missing.size === 0) return
  const pkgs = [...missing]
  const debianRoot = existsSync('/etc/debian_version') && process.getuid?.() === 0 && have('apt-get')
  if (!debianRoot) {
    console.error(`qbm: the tests need QEMU's tools and Chromium: install them with \`sudo apt-get install -y ${pkgs.join(' ')}\``)
    process.exit(1)
  }
  console.log(`qbm: installing ${pkgs.join(' ')} with apt-get…`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  sh('apt-get', ['update', '-q'], { env })
  if (sh('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...pkgs], { env }) !== 0) {
    console.error(`qbm: apt-get install ${pkgs.join(' ')} failed`)
    process.exit(1)
  }
  for (const t of TOOLS) {
    if (!present(t)) { console.error(`qbm: ${t[0]} is still missing after installing ${t[1]}`); process.exit(1) }
  }
  if (!chromiumPath()) { console.error('qbm: chromium is still missing after apt-get install chromium'); process.exit(1) }
}
