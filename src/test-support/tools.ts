/**
 * Access to QEMU's tools for tests. A missing tool is a FAILURE (never a skip): CI must
 * install qemu-utils, libnbd-bin and qemu-system-x86.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const QBM = join(ROOT, 'bin', 'qbm.mjs')
export const TESTDATA = join(ROOT, 'src', 'engine', 'testdata')

const APT: Record<string, string> = {
  'qemu-img': 'qemu-utils', 'qemu-io': 'qemu-utils', 'qemu-nbd': 'qemu-utils',
  nbdinfo: 'libnbd-bin', 'qemu-system-x86_64': 'qemu-system-x86',
}

/** Throws (failing the test) when a tool is missing. */
export function requireTool(name: string): void {
  const r = spawnSync('sh', ['-c', `command -v ${name}`])
  if (r.status !== 0) {
    throw new Error(`${name} is required by this test but not installed: apt-get install -y ${APT[name] ?? name}`)
  }
}

export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string; timeout?: number } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8', timeout: opts.timeout ?? 120_000, maxBuffer: 1 << 30 })
  if (r.error) throw r.error
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

export function qbm(args: string[], opts: { cwd?: string } = {}): { code: number; stdout: string; stderr: string } {
  return run(process.execPath, [QBM, ...args], opts)
}

export function qemuImg(args: string[], cwd?: string): { code: number; stdout: string; stderr: string } {
  requireTool('qemu-img')
  return run('qemu-img', args, cwd ? { cwd } : {})
}

/** Dirty-only merged extents from nbdinfo --map through qemu-nbd -r -B NAME. */
export function nbdDirtyExtents(image: string, name: string, cwd?: string): Array<{ offset: number; length: number }> {
  requireTool('qemu-nbd')
  requireTool('nbdinfo')
  const r = run('nbdinfo', [`--map=qemu:dirty-bitmap:${name}`, '--json', '--', '[', 'qemu-nbd', '-r', '-f', 'qcow2', '-B', name, image, ']'], cwd ? { cwd } : {})
  if (r.code !== 0) throw new Error(`nbdinfo failed on ${image} ${name}: ${r.stderr}`)
  const rows = JSON.parse(r.stdout) as Array<{ offset: number; length: number; type: number }>
  const out: Array<{ offset: number; length: number }> = []
  for (const x of rows) {
    if ((x.type & 1) !== 1) continue
    const last = out[out.length - 1]
    if (last && last.offset + last.length === x.offset) last.length += x.length
    else out.push({ offset: x.offset, length: x.length })
  }
  return out
}

export function tempDir(prefix = 'qbm-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) }
}

export function sh(script: string, cwd?: string): string {
  return execFileSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8' })
}
