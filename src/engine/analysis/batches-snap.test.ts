/**
 * extentBatches (the bulk path of `qbm map`) against the naive model, and heatRequest (the
 * page's heatmap requests, on the block grid once a pixel spans a block) against its promises:
 * boundaries on the grid, the asked range covered, and no bitmap data read after the scan.
 */
import { describe, expect, it } from 'vitest'
import { MemoryDevice } from '../../io/memory.js'
import { cellBoundaries, heatmap, openImage } from '../index.js'
import { extentBatches } from './extents.js'
import { cellsFor, heatRequest } from './heat-request.js'
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

describe('heatRequest', () => {
  it('keeps cell boundaries on the block grid once a pixel spans a block, and covers the asked range (random views, granularities, disks)', () => {
    const rng = new Rng(42)
    let snapped = 0
    for (let t = 0; t < 20000; t++) {
      const g = 2 ** rng.range(9, 26)
      const block = BLOCK_BITS * g
      const L = rng.bool(0.5) ? rng.range(1, 2 ** 20) * g : rng.range(1, 2 ** 40) * 512
      const w = rng.pick([1, 3, 64, 1000, 4096])
      const len = Math.max(1, Math.floor(L * 2 ** (-rng.float() * 30)))
      const start = rng.int(Math.max(1, L - len + 1))
      const end = Math.min(L, start + len)
      if (end <= start) continue
      const v = heatRequest({ start, end }, w, g)
      const ctx = `g=${g} L=${L} w=${w} [${start}, ${end}) -> [${v.start}, ${v.end}) × ${v.cells}`
      if (end - start < w * block) {
        expect(v, ctx).toEqual({ start, end, cells: cellsFor({ start, end }, w, g), snapped: false })
        continue
      }
      snapped++
      expect(v.snapped, ctx).toBe(true)
      expect(v.cells, ctx).toBeLessThanOrEqual(w)
      expect(v.start, ctx).toBeGreaterThanOrEqual(0)
      expect(v.start, ctx).toBeLessThanOrEqual(start)
      expect(v.end, ctx).toBeGreaterThanOrEqual(end)
      const xs = cellBoundaries(v.start, v.end, v.cells)
      const k = (v.end - v.start) / v.cells / block
      expect(Number.isInteger(k) && k >= 1, ctx).toBe(true)
      for (let i = 0; i <= v.cells; i += Math.max(1, v.cells >> 6)) expect(xs[i]! % block, `${ctx} boundary ${i}`).toBe(0)
      expect(xs[v.cells]! % block, ctx).toBe(0)
      // No wider than needed: the start's block, and less than one cell past the asked end.
      expect(start - v.start, ctx).toBeLessThan(block)
      expect(v.end - end, ctx).toBeLessThan(k * block)
    }
    expect(snapped).toBeGreaterThan(1000)
  })

  it('leaves views whose pixels are smaller than a block (and degenerate ones) as asked', () => {
    expect(heatRequest({ start: 12345, end: 12345 + 4096 * 512 * 10 }, 4096, 512)).toEqual({ start: 12345, end: 12345 + 4096 * 512 * 10, cells: 4096, snapped: false })
    expect(heatRequest({ start: 5, end: 5 }, 10, 512)).toEqual({ start: 5, end: 5, cells: 1, snapped: false })
    // A whole 2 TiB disk at 512 B granularity, 4096 pixels: 1 block per cell, on the grid already.
    expect(heatRequest({ start: 0, end: 2 ** 41 }, 4096, 512)).toEqual({ start: 0, end: 2 ** 41, cells: 4096, snapped: true })
  })

  it('a snapped request reads no bitmap data after the scan and equals the exact heatmap of its range', async () => {
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
      const v = heatRequest({ start, end: start + len }, cells, r.granularity)
      expect(v.snapped).toBe(true)
      dev.reset()
      const got = await heatmap(r, v.start, v.end, v.cells)
      expect(dev.reads, `[${v.start}, ${v.end})`).toBe(0)
      expect(Array.from(got), `[${v.start}, ${v.end})`).toEqual(m.heatmap(v.start, v.end, v.cells))
    }
  })
})
