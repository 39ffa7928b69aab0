/**
 * Small QEMU-made images for unit tests: qemu-img create + qemu-img bitmap --add + qemu-io
 * writes in a temp dir, loaded as bytes. A missing tool fails the test (requireTool).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { requireTool, run } from './tools.js'

export interface QemuImageSpec {
  size: number
  /** qemu-img create -o options (default cluster_size=65536) */
  options?: string
  bitmaps: Array<{ name: string; granularity?: number; disabled?: boolean }>
  /** qemu-io commands run after the bitmaps exist, e.g. 'write 0 64k' */
  writes?: string[]
}

/** Create the image at dir/name and return its path and bytes. */
export function makeQemuImage(dir: string, name: string, spec: QemuImageSpec): { path: string; bytes: Uint8Array } {
  requireTool('qemu-img')
  requireTool('qemu-io')
  const path = join(dir, name)
  const must = (cmd: string, args: string[]): void => {
    const r = run(cmd, args)
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`)
  }
  must('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', spec.options ?? 'cluster_size=65536', path, String(spec.size)])
  for (const b of spec.bitmaps) {
    must('qemu-img', ['bitmap', '-f', 'qcow2', '--add', ...(b.granularity ? ['-g', String(b.granularity)] : []), ...(b.disabled ? ['--disable'] : []), path, b.name])
  }
  if (spec.writes?.length) must('qemu-io', ['-f', 'qcow2', ...spec.writes.flatMap((c) => ['-c', c]), path])
  return { path, bytes: new Uint8Array(readFileSync(path)) }
}

/** Big-endian u64 at `off`. */
export function getU64(bytes: Uint8Array, off: number): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(off))
}

export function setU64(bytes: Uint8Array, off: number, v: number | bigint): void {
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setBigUint64(off, BigInt(v))
}

export function setU32(bytes: Uint8Array, off: number, v: number): void {
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(off, v >>> 0)
}
