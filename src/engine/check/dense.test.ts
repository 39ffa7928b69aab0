/**
 * Dense metadata against `qemu-img check` (the oracle): images made with `qemu-img create -o
 * preallocation=metadata`, where every L2 entry is a data cluster and the check's kernels
 * (check/tables.ts) do nearly all the work in runs of contiguous clusters. Clean at every
 * refcount width and several cluster sizes, with extended L2 entries, with an internal snapshot
 * (every cluster shared), and patched in the middle of a run (COPIED flag, stored refcounts, a
 * cluster referenced twice, reserved bits, unaligned and past the end of the file, overflow of
 * 1-bit refcounts). For each: qemu-img check's exit code, summary and messages from `qbm check`,
 * and the very same report from the WebAssembly kernels, their JavaScript twin and the walk's
 * own code for every entry.
 *
 * The files are as big as their disks (sparse on disk), so they are patched and checked in
 * place, never read whole.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NodeFileDevice } from '../../io/node-file.js'
import { qbm, requireTool, run, tempDir } from '../../test-support/tools.js'
import { type CheckReport, checkImage, openImage } from '../index.js'

let tmp: ReturnType<typeof tempDir>
beforeAll(() => {
  for (const t of ['qemu-img', 'qemu-io']) requireTool(t)
  tmp = tempDir('qbm-dense-')
})
afterAll(() => tmp?.cleanup())

function must(cmd: string, args: string[]): void {
  const r = run(cmd, args)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
}

/** A preallocated image with a bitmap and a few writes. */
function make(name: string, size: string, options: string): string {
  const path = join(tmp.path, name)
  must('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `preallocation=metadata,${options}`, path, size])
  must('qemu-img', ['bitmap', '--add', path, 'b0'])
  must('qemu-io', ['-f', 'qcow2', '-c', 'write 0 64k', '-c', 'write -z 1M 64k', path])
  return path
}

/** Positional reads and writes of a file's u64 fields, and the image's mapping. */
class File {
  private readonly fd: number
  constructor(path: string) { this.fd = openSync(path, 'r+') }
  close(): void { closeSync(this.fd) }
  u64(at: number): bigint {
    const b = Buffer.alloc(8)
    readSync(this.fd, b, 0, 8, at)
    return b.readBigUInt64BE(0)
  }
  set64(at: number, v: bigint): void {
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(v & 0xffffffffffffffffn)
    writeSync(this.fd, b, 0, 8, at)
  }
  u32(at: number): number { return Number(this.u64(at) >> 32n) }
  get cs(): number { return 2 ** this.u32(20) }
  /** Position of entry `j` of the L2 table that active L1 entry `i` points to. */
  l2Entry(i: number, j: number): number {
    return Number(this.u64(Number(this.u64(40)) + 8 * i) & 0x00fffffffffffe00n) + 8 * j
  }
  /** The data cluster an L2 entry points to. */
  cluster(entryAt: number): number {
    return Number(this.u64(entryAt) & 0x00fffffffffffe00n) / this.cs
  }
  /** Set the stored 16-bit refcount of cluster c. */
  setRefcount16(c: number, v: number): void {
    const epb = (this.cs * 8) / 16
    const block = Number(this.u64(Number(this.u64(48)) + 8 * Math.floor(c / epb)) & ~0x1ffn)
    const b = Buffer.alloc(2)
    b.writeUInt16BE(v)
    writeSync(this.fd, b, 0, 2, block + 2 * (c % epb))
  }
}

function patched(base: string, name: string, fn: (f: File) => void): string {
  const path = join(tmp.path, name)
  // --sparse: the copy of a preallocated file stays small on disk
  must('cp', ['--sparse=always', base, path])
  const f = new File(path)
  try { fn(f) } finally { f.close() }
  return path
}

function messageLines(stderr: string, prefix: string): string[] {
  return stderr.split('\n')
    .map((l) => l.replace(/^Some clusters may be leaked, run 'qemu-img check -r' on the image file to fix\./, ''))
    .filter((l) => l && !l.startsWith(prefix) && !l.startsWith('warning:') && !l.startsWith('Use qemu-img amend') && !l.startsWith('qcow2: Image is corrupt'))
    .sort()
}

async function engineCheck(path: string, scanner: 'wasm' | 'js' | 'entrywise'): Promise<CheckReport> {
  const dev = NodeFileDevice.open(path)
  try {
    return await checkImage(await openImage(dev), { scanner })
  } finally {
    dev.close()
  }
}

/** qemu-img check and qbm agree (exit code, summary, messages); the three ways give one report. */
async function agree(path: string, expectCode: number): Promise<CheckReport> {
  const q = run('qemu-img', ['check', path])
  expect(q.code, `qemu-img check exit code (stdout: ${q.stdout})`).toBe(expectCode)
  const b = qbm(['check', path])
  expect(b.code, `qbm check exit code\n${b.stderr}`).toBe(q.code)
  expect(b.stdout).toBe(q.stdout)
  expect(messageLines(b.stderr, 'qbm:')).toEqual(messageLines(q.stderr, 'qemu-img:'))
  const r = await engineCheck(path, 'wasm')
  expect(r.exitCode).toBe(q.code)
  expect(await engineCheck(path, 'js'), 'the JavaScript kernels').toEqual(r)
  expect(await engineCheck(path, 'entrywise'), 'every entry by the walk\'s own code').toEqual(r)
  return r
}

describe('dense metadata (preallocation=metadata) agrees with qemu-img check', () => {
  it('clean, 64 KiB clusters, every refcount width', async () => {
    for (const rb of [1, 2, 4, 8, 16, 32, 64]) {
      const r = await agree(make(`clean-${rb}.qcow2`, '2G', `refcount_bits=${rb}`), 0)
      expect(r.allocatedClusters).toBe(32768)
    }
  })

  it('clean, 512 B, 4 KiB and 2 MiB clusters; extended L2 entries', async () => {
    await agree(make('cs512.qcow2', '32M', 'cluster_size=512'), 0)
    await agree(make('cs4k.qcow2', '128M', 'cluster_size=4096,refcount_bits=8'), 0)
    await agree(make('cs2m.qcow2', '4G', 'cluster_size=2097152'), 0)
    await agree(make('ext.qcow2', '1G', 'extended_l2=on'), 0)
  })

  it('an internal snapshot: every cluster shared, COPIED cleared, refcount 2', async () => {
    const p = make('snap.qcow2', '1G', 'cluster_size=65536')
    must('qemu-img', ['snapshot', '-c', 's1', p])
    must('qemu-io', ['-f', 'qcow2', '-c', 'write 100M 1M', p])
    await agree(p, 0)
  })

  it('patched in the middle of a run', async () => {
    const base = make('base.qcow2', '2G', 'cluster_size=65536')
    const COPIED = 1n << 63n
    // entry 100 of the second table: the middle of a run (runs are 8 entries after each one done alone)
    const cases: Array<[string, number, (f: File) => void]> = [
      ['copied-cleared', 2, (f) => { const e = f.l2Entry(1, 100); f.set64(e, f.u64(e) & ~COPIED) }],
      ['refcount-2', 2, (f) => f.setRefcount16(f.cluster(f.l2Entry(1, 101)), 2)],
      ['refcount-0', 2, (f) => f.setRefcount16(f.cluster(f.l2Entry(1, 102)), 0)],
      ['referenced-twice', 2, (f) => f.set64(f.l2Entry(1, 103), f.u64(f.l2Entry(1, 104)))],
      ['reserved-bit', 2, (f) => { const e = f.l2Entry(1, 105); f.set64(e, f.u64(e) | 2n) }],
      ['unaligned', 2, (f) => { const e = f.l2Entry(1, 106); f.set64(e, f.u64(e) + 512n) }],
      ['past-the-end', 2, (f) => f.set64(f.l2Entry(1, 107), COPIED | (1n << 40n))],
      ['zero-flag', 0, (f) => { const e = f.l2Entry(1, 108); f.set64(e, f.u64(e) | 1n) }],
      ['last-of-a-table', 2, (f) => { const e = f.l2Entry(2, 8191); f.set64(e, f.u64(e) & ~COPIED) }],
    ]
    for (const [name, code, fn] of cases) {
      const r = await agree(patched(base, `${name}.qcow2`, fn), code)
      expect(r.allocatedClusters, name).toBe(32768)
    }
  })

  it('1-bit refcounts: a cluster referenced twice in a run overflows', async () => {
    const base = make('rb1.qcow2', '1G', 'refcount_bits=1')
    await agree(patched(base, 'rb1-twice.qcow2', (f) => f.set64(f.l2Entry(0, 300), f.u64(f.l2Entry(0, 301)))), 2)
  })
})

