/**
 * Images on block devices (issue 9, "Block devices"): qcow2 images made by qemu-img, attached
 * to loop devices with losetup. qbm reads the device as it reads the file (info and map agree
 * with the file, map with nbdinfo on the device); edits on the device are judged by
 * `qemu-img check` and `qemu-img info` on the device; an edit that needs clusters past the end
 * of the device is refused before any write, naming the bytes needed (measured by making the
 * same edit on a copy as a file, which grows) and the bytes free (from qemu-img check's image
 * end offset). Every loop device is detached in finally.
 */
import { copyFileSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { humanAndExact } from '../engine/index.js'
import { buildImage, qemuImgCreate, qemuIoWrites } from '../test-support/edit-images.js'
import { checkImage, mustTool, nbdMap, qemuInfo, sha256File } from '../test-support/edit-oracle.js'
import { attachLoop, padTo, roundUp } from '../test-support/host.js'
import { qbm, qemuImg, requireTool, tempDir } from '../test-support/tools.js'

const KiB = 1024
const MiB = 1024 * KiB
const CS = 64 * KiB

const tmp = tempDir('qbm-blockdev-')
afterAll(() => tmp.cleanup())

let master: string
let inUse: string
/** Every cluster up to its end in use: guest data written first, then one bitmap added (no frees). */
let full: string
let n = 0

beforeAll(async () => {
  requireTool('losetup')
  requireTool('qemu-img')
  master = (await buildImage(join(tmp.path, 'master'), {
    name: 'img.qcow2', size: 64 * MiB, clusterSize: CS,
    bitmaps: [
      { name: 'a', granularity: 4 * KiB, writes: [[0, 4096], [10 * MiB, 5000]] },
      { name: 'b', granularity: 512, writes: [[20 * MiB, 512]], disabled: true },
    ],
  })).path
  inUse = (await buildImage(join(tmp.path, 'inuse'), {
    name: 'inuse.qcow2', size: 16 * MiB, clusterSize: CS, bitmaps: [{ name: 'a', granularity: 4096, writes: [[MiB, 4096]] }], inUse: { writes: [[2 * MiB, 512]] },
  })).path
  mkdirSync(join(tmp.path, 'full'))
  full = join(tmp.path, 'full', 'full.qcow2')
  qemuImgCreate(full, 64 * MiB, [`cluster_size=${CS}`])
  qemuIoWrites(full, [[0, MiB], [32 * MiB, 3 * CS]], 'data')
  mustTool('qemu-img', ['bitmap', '--add'], full, ['a'])
})

/** A copy of `src` padded to whole clusters plus `free` bytes: the size of its loop device. */
function copy(src: string, free: number): string {
  const dir = join(tmp.path, `w${++n}`)
  mkdirSync(dir, { recursive: true })
  const p = join(dir, 'img.qcow2')
  copyFileSync(src, p)
  padTo(p, roundUp(statSync(p).size, CS) + free)
  return p
}

function ok(args: string[]): string {
  const r = qbm(args)
  expect(r.code, `qbm ${args.join(' ')}: ${r.stderr}`).toBe(0)
  return r.stdout
}

describe('reads: a device reads as the file does', () => {
  it('qbm info and qbm map agree on the file and on its loop device; map agrees with nbdinfo on the device', () => {
    const file = copy(master, MiB)
    const loop = attachLoop(file)
    try {
      const onFile = JSON.parse(ok(['info', '--output=json', file])) as Record<string, unknown>
      const onDev = JSON.parse(ok(['info', '--output=json', loop.dev])) as Record<string, unknown>
      expect(onDev.image).toBe(loop.dev)
      expect({ ...onDev, image: '' }).toEqual({ ...onFile, image: '' })
      expect(onDev.fileSize).toBe(statSync(file).size)
      expect(ok(['info', loop.dev])).toContain(`device size: ${humanAndExact(statSync(file).size)}`)
      for (const name of ['a', 'b']) {
        const mapDev = ok(['map', '--output=json', loop.dev, name])
        expect(mapDev).toBe(ok(['map', '--output=json', file, name]))
        expect(JSON.parse(mapDev)).toEqual(nbdMap(loop.dev, name))
      }
    } finally {
      loop.detach()
    }
  })
})

describe('edits on a device, judged by qemu-img on the device', () => {
  it('--add, then --remove: qemu-img check is clean and qemu-img info lists the bitmaps', () => {
    const file = copy(master, MiB)
    const loop = attachLoop(file)
    try {
      ok(['bitmap', '--add', '-g', '64k', loop.dev, 'x'])
      expect(checkImage(loop.dev).code).toBe(0)
      expect(qemuInfo(loop.dev).bitmaps).toEqual([
        { name: 'a', granularity: 4096, flags: ['auto'] }, { name: 'b', granularity: 512, flags: [] }, { name: 'x', granularity: 65536, flags: ['auto'] },
      ])
      ok(['bitmap', '--remove', loop.dev, 'a'])
      expect(checkImage(loop.dev).code).toBe(0)
      expect(qemuInfo(loop.dev).bitmaps.map((b) => b.name)).toEqual(['b', 'x'])
      expect(nbdMap(loop.dev, 'b')).toEqual([{ offset: 20 * MiB, length: 512 }])
    } finally {
      loop.detach()
    }
    // The writes reached the file behind the device, and the device did not grow it.
    expect(checkImage(file).code).toBe(0)
    expect(qemuInfo(file).bitmaps.map((b) => b.name)).toEqual(['b', 'x'])
    expect(statSync(file).size).toBe(roundUp(statSync(master).size, CS) + MiB)
  })

  it('--clear-in-use=dirty on an in-use bitmap', () => {
    const file = copy(inUse, MiB)
    const loop = attachLoop(file)
    try {
      expect(qemuInfo(loop.dev).bitmaps).toEqual([{ name: 'a', granularity: 4096, flags: ['auto', 'in-use'] }])
      ok(['bitmap', '--clear-in-use=dirty', '--force', loop.dev, 'a'])
      expect(checkImage(loop.dev).code).toBe(0)
      expect(qemuInfo(loop.dev).bitmaps).toEqual([{ name: 'a', granularity: 4096, flags: ['auto'] }])
      expect(nbdMap(loop.dev, 'a')).toEqual([{ offset: 0, length: 16 * MiB }])
    } finally {
      loop.detach()
    }
  })
})

describe('a device too small for the new clusters', () => {
  /**
   * The bytes the edit needs past the end: the same edit on a copy as a file, which grows to
   * the plan's end. The bytes free: the device size minus qemu-img check's image end offset.
   */
  function expectations(file: string, args: string[]): { past: number; free: number } {
    const asFile = join(tmp.path, `asfile${++n}.qcow2`)
    copyFileSync(file, asFile)
    const size = statSync(file).size
    ok([...args.slice(0, -2), asFile, args[args.length - 1]!])
    const end = (JSON.parse(qemuImg(['check', '--output=json', file]).stdout) as { 'image-end-offset': number })['image-end-offset']
    return { past: statSync(asFile).size - size, free: size - end }
  }

  for (const [label, free] of [['no cluster', 0], ['one free cluster', CS]] as const) {
    it(`is refused before any write (${label} after the image), naming the bytes needed and free`, () => {
      const file = copy(full, free)
      const args = ['bitmap', '--add', '-g', '512', '<dev>', 'x']
      const want = expectations(file, args)
      expect(want.past).toBeGreaterThan(0)
      expect(want.free).toBe(free)
      const before = sha256File(file)
      const loop = attachLoop(file)
      try {
        const r = qbm([...args.slice(0, -2), loop.dev, 'x'])
        expect(r.code, r.stderr).toBe(1)
        const lines = r.stderr.split('\n').filter((l) => l !== '')
        expect(lines, r.stderr).toHaveLength(1)
        expect(r.stderr).toContain(`qbm: ${loop.dev}: the edit needs ${humanAndExact(want.past)} past the end of the device ${loop.dev}, whose size is ${humanAndExact(statSync(file).size)}:`)
        expect(r.stderr).toContain(`where ${humanAndExact(want.free)} are free.`)
        expect(r.stderr).toContain('qbm cannot grow a block device')
        expect(checkImage(loop.dev).code).toBe(0)
      } finally {
        loop.detach()
      }
      expect(sha256File(file), 'the image changed').toBe(before)
    })
  }
})
