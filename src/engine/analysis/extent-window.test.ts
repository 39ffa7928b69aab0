import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { allExtents, openImage, type Extent, type Image } from '../index.js'
import { readerFor } from '../describe.js'
import { NodeFileDevice } from '../../io/node-file.js'
import { sh, tempDir } from '../../test-support/tools.js'
import { extentIndexAt, extentWindow } from './extents.js'

const KiB = 1024
const MiB = 1024 * KiB

// 512-byte granules: one 4096-bit index block covers 2 MiB, so runs can cross blocks cheaply.
const WRITES: Array<[number, number]> = [
  [0, 512], [4 * KiB, 8 * KiB], [1536 * KiB, 1 * MiB], // crosses the block boundary at 2 MiB
  [4 * MiB - 512, 1024], [6 * MiB, 64 * KiB], [6 * MiB + 128 * KiB, 512], [15 * MiB, 1 * MiB], // runs to the end
]

let dir: ReturnType<typeof tempDir>
let dev: NodeFileDevice
let img: Image
let extents: Extent[]

beforeAll(async () => {
  dir = tempDir('qbm-extent-index-')
  const path = join(dir.path, 'x.qcow2')
  sh(`qemu-img create -q -f qcow2 ${path} 16M
      qemu-img bitmap --add --granularity 512 ${path} b0
      qemu-io -f qcow2 ${WRITES.map(([o, l]) => `-c 'write ${o} ${l}'`).join(' ')} ${path} >/dev/null`)
  dev = NodeFileDevice.open(path)
  img = await openImage(dev)
  const r = readerFor(img, img.bitmaps[0]!)
  await r.scan()
  extents = []
  for await (const x of allExtents(r)) extents.push(x)
})

afterAll(() => {
  dev?.close()
  dir?.cleanup()
})

/** Brute force: the first extent whose end is past `offset`. */
function expectedIndex(offset: number): number {
  const i = extents.findIndex((x) => x.offset + x.length > offset)
  return i < 0 ? extents.length : i
}

function probes(): number[] {
  const out = new Set<number>([0, 1, 16 * MiB - 1, 16 * MiB, 2 * MiB, 2 * MiB - 1])
  for (const x of extents) for (const d of [-513, -512, -1, 0, 1, 511, 512]) {
    out.add(x.offset + d)
    out.add(x.offset + x.length + d)
  }
  return [...out].filter((o) => o >= 0 && o <= 16 * MiB)
}

describe('extent numbers from offsets', () => {
  it('the image has the extents the writes made, one of them across an index block', () => {
    expect(extents).toEqual(WRITES.map(([offset, length]) => ({ offset, length })))
    expect(extents.some((x) => x.offset < 2 * MiB && x.offset + x.length > 2 * MiB)).toBe(true)
  })

  it('extentIndexAt finds the first extent ending after any offset', async () => {
    const r = readerFor(img, img.bitmaps[0]!)
    for (const o of probes()) expect([o, await extentIndexAt(r, o)]).toEqual([o, expectedIndex(o)])
  })

  it('extentWindow lists exactly the extents that meet a range', async () => {
    const r = readerFor(img, img.bitmaps[0]!)
    const ps = probes()
    for (let a = 0; a < ps.length; a += 3) {
      for (let b = a; b < ps.length; b += 5) {
        const from = Math.min(ps[a]!, ps[b]!)
        const to = Math.max(ps[a]!, ps[b]!)
        const want = from === to ? [] : extents.map((x, i) => [x, i] as const).filter(([x]) => x.offset < to && x.offset + x.length > from).map(([, i]) => i)
        const w = await extentWindow(r, from, to)
        expect([from, to, w.count]).toEqual([from, to, want.length])
        if (want.length > 0) expect(w.first).toBe(want[0])
      }
    }
  })
})
