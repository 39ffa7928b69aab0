/**
 * QMP through qemu-system-x86_64 (docs/format.md §7, §10): open an image read-only as a block node and
 * ask QEMU for x-debug-block-dirty-bitmap-sha256 of bitmaps, plus what QEMU reports about its
 * dirty bitmaps (query-named-block-nodes). One QEMU process per call; commands go in on stdin.
 * A missing qemu-system-x86_64 fails the test (requireTool).
 */
import { basename, dirname } from 'node:path'
import { spawn } from 'node:child_process'
import { requireTool, run } from './tools.js'

export interface QmpBitmapInfo {
  name: string
  granularity: number
  count: number
  recording: boolean
  persistent: boolean
  inconsistent?: boolean
  busy?: boolean
}

export interface QmpResult {
  /** sha256 per requested bitmap name */
  sums: Record<string, string>
  /** QMP error description per bitmap name QEMU refused */
  errors: Record<string, string>
  /** dirty bitmaps of node n0 as QEMU reports them */
  bitmaps: QmpBitmapInfo[]
}

/**
 * Ask QEMU for the sha256 of every named bitmap of `image`. Relative backing and data file
 * names resolve as for qemu-img run in the image's directory (QEMU resolves a data file name
 * against the working directory).
 */
export function qmpBitmaps(image: string, names: string[]): QmpResult {
  requireTool('qemu-system-x86_64')
  const { args, input } = qmpSession(image, names)
  return parseQmp(image, names, run('qemu-system-x86_64', args, { cwd: dirname(image), input, timeout: 120_000 }))
}

/** The same, without blocking (so a verification can run QEMU queries side by side). */
export function qmpBitmapsAsync(image: string, names: string[]): Promise<QmpResult> {
  requireTool('qemu-system-x86_64')
  const { args, input } = qmpSession(image, names)
  return new Promise((resolve, reject) => {
    const p = spawn('qemu-system-x86_64', args, { cwd: dirname(image), stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const timer = setTimeout(() => p.kill('SIGKILL'), 120_000)
    p.stdout.on('data', (d: Buffer) => out.push(d))
    p.stderr.on('data', (d: Buffer) => err.push(d))
    p.on('error', (e) => { clearTimeout(timer); reject(e) })
    p.on('close', (code) => {
      clearTimeout(timer)
      try {
        resolve(parseQmp(image, names, { code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }))
      } catch (e) { reject(e) }
    })
    p.stdin.on('error', () => undefined) // a QEMU that exits early closes the pipe; its output says why
    p.stdin.end(input)
  })
}

/** sha256 of each named bitmap, without blocking; throws if QEMU refuses one. */
export async function qmpSha256sAsync(image: string, names: string[]): Promise<Record<string, string>> {
  const r = await qmpBitmapsAsync(image, names)
  const bad = Object.entries(r.errors)
  if (bad.length > 0) throw new Error(`QEMU refused sha256 of ${bad.map(([n, e]) => `'${n}' (${e})`).join(', ')} in ${image}`)
  return r.sums
}

function qmpSession(image: string, names: string[]): { args: string[]; input: string } {
  const node = { driver: 'qcow2', 'node-name': 'n0', 'read-only': true, file: { driver: 'file', filename: basename(image) } }
  const cmds: unknown[] = [{ execute: 'qmp_capabilities', id: 'cap' }]
  names.forEach((n, i) => cmds.push({ execute: 'x-debug-block-dirty-bitmap-sha256', arguments: { node: 'n0', name: n }, id: `b${i}` }))
  cmds.push({ execute: 'query-named-block-nodes', arguments: { flat: true }, id: 'nodes' })
  cmds.push({ execute: 'quit', id: 'quit' })
  return {
    args: ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio', '-blockdev', JSON.stringify(node)],
    input: cmds.map((c) => JSON.stringify(c) + '\n').join(''),
  }
}

function parseQmp(image: string, names: string[], r: { code: number; stdout: string; stderr: string }): QmpResult {
  const sums: Record<string, string> = {}
  const errors: Record<string, string> = {}
  let bitmaps: QmpBitmapInfo[] | undefined
  for (const line of r.stdout.split('\n')) {
    let msg: { id?: unknown; return?: unknown; error?: { desc?: string } }
    try { msg = JSON.parse(line) } catch { continue }
    if (msg.id === 'nodes' && Array.isArray(msg.return)) {
      const n0 = (msg.return as Array<{ 'node-name'?: string; 'dirty-bitmaps'?: QmpBitmapInfo[] }>).find((n) => n['node-name'] === 'n0')
      bitmaps = n0?.['dirty-bitmaps'] ?? []
      continue
    }
    if (typeof msg.id !== 'string' || !/^b\d+$/.test(msg.id)) continue
    const n = names[Number(msg.id.slice(1))]!
    const ret = msg.return as { sha256?: string } | undefined
    if (ret?.sha256) sums[n] = ret.sha256
    else errors[n] = msg.error?.desc ?? 'error'
  }
  if (bitmaps === undefined) {
    throw new Error(`qemu-system-x86_64 could not open ${image} (exit ${r.code}): ${r.stderr.trim().split('\n')[0] ?? ''}`)
  }
  return { sums, errors, bitmaps }
}

/** sha256 of each named bitmap; throws if QEMU refuses one. */
export function qmpSha256s(image: string, names: string[]): Record<string, string> {
  const r = qmpBitmaps(image, names)
  const bad = Object.entries(r.errors)
  if (bad.length > 0) throw new Error(`QEMU refused sha256 of ${bad.map(([n, e]) => `'${n}' (${e})`).join(', ')} in ${image}`)
  return r.sums
}
