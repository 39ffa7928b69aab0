/**
 * extentBatches (the bulk path of `qbm map`) against the naive model, and snapView (heatmap
 * views on the block grid) against its promises: boundaries on the grid, the asked range
 * covered, and no bitmap data read for a snapped view after the scan.
 */
import { describe, expect, it } from 'vitest'
import { MemoryDevice } from '../../io/memory.js'
import { cellBoundaries, heatmap, openImage } from '../index.js'
import { extentBatches } from './extents.js'
import { snapView } from './heatmap.js'
import { readerFor } from '../describe.js'
import { BLOCK_BITS } from '../qcow2/bitmaps/data.js'
import { Rng } from '../../test-support/prng.js'
import { buildQcow2 } from '../../test-support/qcow2-builder.js'
import { BitmapModel } from '../../test-support/bitmap-model.js'
import { randomCase } from '../../test-support/random-bitmaps.js'
import { RecordingDevice } from '../../test-support/recording-device.js'

describe('extentBatches', () => {
  it('flattened, equals the model extents on 150 random images for batch sizes 1, 7 and 16384', async () => {
    for (let seed = 3001; seed <= 3150; seed++) {
      const rng = new Rng(seed)
      const c = randomCase(rng, { allowInUse: true, allowTailBits: true })
      const built = buildQcow2(c.options)
      const img = await openImage(new MemoryDevice(built.bytes))
      for (const [i, b] of img.bitmaps.entries()) {
        const m = new BitmapModel(built.bitmaps[i]!.logical, built.diskLength, c.options.bitmaps[i]!.granularityBits)
        const r = readerFor(img, b)
        for (const size of [1, 7, 16384]) {
          const got: Array<{ offset: number; length: number }> = []
          for await (const x of extentBatches(r, undefined, size)) {
            expect(x.length).toBeGreaterThan(0)
            for (let j = 0; j < x.length; j += 2) got.push({ offset: x[j]!, length: x[j + 1]! })
          }
          expect(got, `seed ${seed}: ${c.label} [${b.name}] batch ${size}`).toEqual(m.extents())
        }
      }
    }
  })
})

describe('snapView', () => {
  it('keeps cell boundaries on the block grid and covers the asked range (random views, granularities, disks)', () => {
    const rng = new Rng(42)
    let snapped = 0
    for (let t = 0; t < 20000; t++) {
      const g = 2 ** rng.range(9, 26)
      const block = BLOCK_BITS * g
      const L = rng.bool(0.5) ? rng.range(1, 2 ** 20) * g : rng.range(1, 2 ** 40) * 512
      const cells = rng.pick([1, 3, 64, 1000, 4096])
      const len = Math.max(1, Math.floor(L * 2 ** (-rng.float() * 30)))
      const start = rng.int(Math.max(1, L - len + 1))
      const end = Math.min(L, start + len)
      if (end <= start) continue
      const v = snapView(start, end, cells, g, L)
      const ctx = `g=${g} L=${L} cells=${cells} [${start}, ${end}) -> [${v.start}, ${v.end})`
      if ((end - start) / cells < block) {
        expect(v, ctx).toEqual({ start, end, snapped: false })
        continue
      }
      snapped++
      expect(v.snapped, ctx).toBe(true)
      expect(v.start, ctx).toBeGreaterThanOrEqual(0)
      expect(v.start, ctx).toBeLessThanOrEqual(start)
      expect(v.end, ctx).toBeGreaterThanOrEqual(end)
      const xs = cellBoundaries(v.start, v.end, cells)
      const k = (v.end - v.start) / cells / block
      expect(Number.isInteger(k) && k >= 1, ctx).toBe(true)
      for (let i = 0; i <= cells; i += Math.max(1, cells >> 6)) expect(xs[i]! % block, `${ctx} boundary ${i}`).toBe(0)
      expect(xs[cells]! % block, ctx).toBe(0)
      // No wider than needed: one block more per cell than the asked width, plus the start's block.
      expect(v.end - v.start, ctx).toBeLessThanOrEqual(end - start + cells * block + block)
      // Inside the disk whenever it fits; otherwise at most a block past the asked end or the disk's end.
      if (v.end > L) expect(v.start === 0 || v.end - L < block, ctx).toBe(true)
    }
    expect(snapped).toBeGreaterThan(1000)
  })

  it('leaves views whose cells are smaller than a block (and degenerate ones) as asked', () => {
    expect(snapView(12345, 12345 + 4096 * 512 * 10, 4096, 512, 2 ** 41)).toEqual({ start: 12345, end: 12345 + 4096 * 512 * 10, snapped: false })
    expect(snapView(5, 5, 10, 512)).toEqual({ start: 5, end: 5, snapped: false })
    expect(snapView(0, 100, 0, 512)).toEqual({ start: 0, end: 100, snapped: false })
    // A whole 2 TiB disk at 512 B granularity, 4096 cells: 1 block per cell, on the grid already.
    expect(snapView(0, 2 ** 41, 4096, 512, 2 ** 41)).toEqual({ start: 0, end: 2 ** 41, snapped: true })
  })

  it('a snapped view reads no bitmap data after the scan and equals the exact heatmap of that view', async () => {
    // 4 KiB clusters (8 blocks each), 512 B granularity, 40 clusters with an all-ones and an
    // all-zeroes entry; disk length not on the block grid.
    const cs = 4096
    const data = new Rng(9).bytes(40 * cs)
    const built = buildQcow2({ clusterBits: 12, size: (40 * cs * 8 - 300) * 512, bitmaps: [{ name: 'd', granularityBits: 9, data, entryKinds: { 3: 'ones', 7: 'zeroes' } }] })
    const m = new BitmapModel(built.bitmaps[0]!.logical, built.diskLength, 9)
    const dev = new RecordingDevice(new MemoryDevice(built.bytes))
    const img = await openImage(dev)
    const r = readerFor(img, img.bitmaps[0]!)
    await r.scan()
    await r.dirtyBefore(r.diskLength) // the one block an off-grid disk end needs, read once
    const rng = new Rng(10)
    const L = r.diskLength
    const cells = 16
    for (let t = 0; t < 60; t++) {
      const len = Math.max(4096 * 512 * cells, Math.floor(L * 2 ** (-rng.float() * 4)))
      const start = rng.int(L - len + 1)
      const v = snapView(start, start + len, cells, r.granularity, L)
      expect(v.snapped).toBe(true)
      dev.reset()
      const got = await heatmap(r, v.start, v.end, cells)
      expect(dev.reads, `[${v.start}, ${v.end})`).toBe(0)
      expect(Array.from(got), `[${v.start}, ${v.end})`).toEqual(m.heatmap(v.start, v.end, cells))
    }
  })
})
