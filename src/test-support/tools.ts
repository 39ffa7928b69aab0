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
export const QBM = join(ROOT, 'bin', 'qbm.cjs')
export const TESTDATA = join(ROOT, 'src', 'engine', 'testdata')

const APT: Record<string, string> = {
  'qemu-img': 'qemu-utils', 'qemu-io': 'qemu-utils', 'qemu-nbd': 'qemu-utils',
  nbdinfo: 'libnbd-bin', 'qemu-system-x86_64': 'qemu-system-x86', losetup: 'mount', blockdev: 'util-linux', strace: 'strace',
}

/**
 * Throws (failing the test) when Debian's Python lacks a module. Always /usr/bin/python3: the
 * `python3` on PATH may be another Python (pyenv) without Debian's packages.
 */
export function requirePython3Module(module: string, debianPackage: string): void {
  const r = spawnSync('/usr/bin/python3', ['-c', `import ${module}`])
  if (r.status !== 0) {
    throw new Error(`the Python module ${module} is required by this test but not installed for /usr/bin/python3: apt-get install -y ${debianPackage}`)
  }
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

/**
 * QEMU's x-debug-block-dirty-bitmap-sha256 for each named bitmap (docs/format.md §7, §10), through
 * qemu-system-x86_64 over QMP on stdio. Bitmaps QEMU refuses come back in `errors`.
 */
export function qmpSha256(image: string, names: string[], cwd?: string): { sums: Record<string, string>; errors: Record<string, string> } {
  requireTool('qemu-system-x86_64')
  const node = { driver: 'qcow2', 'node-name': 'n0', 'read-only': true, file: { driver: 'file', filename: image } }
  const cmds: unknown[] = [{ execute: 'qmp_capabilities' }]
  names.forEach((n, i) => cmds.push({ execute: 'x-debug-block-dirty-bitmap-sha256', arguments: { node: 'n0', name: n }, id: `b${i}` }))
  cmds.push({ execute: 'quit' })
  const r = run('qemu-system-x86_64', ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio', '-blockdev', JSON.stringify(node)], {
    ...(cwd ? { cwd } : {}), input: cmds.map((c) => JSON.stringify(c) + '\n').join(''), timeout: 120_000,
  })
  const sums: Record<string, string> = {}
  const errors: Record<string, string> = {}
  for (const line of r.stdout.split('\n')) {
    let msg: { id?: unknown; return?: { sha256?: string }; error?: { desc?: string } }
    try { msg = JSON.parse(line) } catch { continue }
    if (typeof msg.id !== 'string' || !msg.id.startsWith('b')) continue
    const n = names[Number(msg.id.slice(1))]!
    if (msg.return?.sha256) sums[n] = msg.return.sha256
    else errors[n] = msg.error?.desc ?? 'error'
  }
  if (Object.keys(sums).length === 0 && Object.keys(errors).length === 0) {
    throw new Error(`qemu-system-x86_64 failed on ${image} (exit ${r.code}): ${r.stderr.trim().split('\n')[0] ?? ''}`)
  }
  return { sums, errors }
}

/** qemu-img info --output=json, parsed; `json` is undefined when QEMU cannot open the image. */
export function qemuImgInfo(image: string, cwd?: string): { code: number; json?: QemuImgInfo; stderr: string } {
  const r = qemuImg(['info', '--output=json', image], cwd)
  return { code: r.code, stderr: r.stderr, ...(r.code === 0 ? { json: JSON.parse(r.stdout) as QemuImgInfo } : {}) }
}

export interface QemuImgInfo {
  'virtual-size': number
  'cluster-size'?: number
  'format-specific'?: { data?: { bitmaps?: Array<{ name: string; granularity: number; flags: string[] }> } }
}

/** Exit code of `qemu-img check` (0 clean, 1 could not check, 2 corruptions, 3 leaks). */
export function qemuImgCheck(image: string, cwd?: string): number {
  return qemuImg(['check', image], cwd).code
}

/**
 * How QEMU parses a size string (qemu_strtosz, shared by qemu-img and qemu-io): the offset
 * qemu-io reports for `read SIZE 1` on a null device; undefined when QEMU rejects the string.
 */
export function qemuParseSize(s: string): number | undefined {
  requireTool('qemu-io')
  const r = run('qemu-io', ['--image-opts', 'driver=null-co,size=4E,read-zeroes=on', '-c', `read ${s} 1`])
  const m = /read 1\/1 bytes at offset (\d+)/.exec(r.stdout)
  return m ? Number(m[1]) : undefined
}
