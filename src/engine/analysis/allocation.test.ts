/**
 * splitByAllocation sweeps the allocation runs once alongside the extents. It must give exactly
 * what asking the allocation map about every extent separately gives, on every openable fixture
 * and bitmap (fragmented allocation, zero clusters, compressed, extended L2, external data files
 * the CLI test resolves; here: each image on its own), and on synthetic extent lists that jump
 * far, touch, and end at the disk's end.
 */
import { describe, expect, it } from 'vitest'
import { NodeFileDevice } from '../../io/node-file.js'
import { fixturePath, smallFixtures } from '../../test-support/fixtures.js'
import { openImage } from '../index.js'
import { readerFor, readable } from '../describe.js'
import { AllocationMap, type DirtySplit, kindOf, splitByAllocation } from './allocation.js'
import { type Extent, allExtents } from './extents.js'

async function naive(m: AllocationMap, extents: Extent[]): Promise<DirtySplit> {
  const s: DirtySplit = { dirty: 0, data: 0, zero: 0, unallocated: 0 }
  for (const e of extents) {
    s.dirty += e.length
    for await (const r of m.runs(e.offset, e.offset + e.length)) s[kindOf(r)] += r.length
  }
  return s
}

async function* iter(list: Extent[]): AsyncGenerator<Extent> { yield* list }

describe('splitByAllocation (one sweep) equals the per-extent split', () => {
  const fx = smallFixtures().filter((f) => f.qemuOpens && !f.tags.includes('external-data') && f.bitmaps.length > 0)
  it('has fixtures', () => { expect(fx.length).toBeGreaterThan(10) })
  it.each(fx.map((f) => [f.name, f] as const))('%s', async (_n, f) => {
    const dev = NodeFileDevice.open(fixturePath(f))
    try {
      const img = await openImage(dev)
      let m: AllocationMap
      try { m = await AllocationMap.open(img) } catch { return }
      const L = img.header.diskLength
      for (const b of img.bitmaps.filter(readable)) {
        const list: Extent[] = []
        for await (const e of allExtents(readerFor(img, b))) list.push(e)
        expect(await splitByAllocation(m, iter(list))).toEqual(await naive(m, list))
      }
      // synthetic: many small extents, far jumps, the very end of the disk
      const cs = img.header.clusterSize
      const synth: Extent[] = []
      for (let o = 0; o + 3 * cs < L && synth.length < 200; o += 7 * cs + 512) synth.push({ offset: o + 512, length: cs + 1024 })
      if (L > 4096) synth.push({ offset: L - 4096, length: 4096 })
      expect(await splitByAllocation(m, iter(synth))).toEqual(await naive(m, synth))
    } finally {
      dev.close()
    }
  })
})
