import { describe, expect, it } from 'vitest'
import { MemoryDevice } from '../../../../io/memory.js'
import { Rng } from '../../../../test-support/prng.js'
import { buildQcow2, type EntryKind } from '../../../../test-support/qcow2-builder.js'
import { readerFor } from '../../../describe.js'
import { heatmap, heatmapSoFar } from '../../../analysis/heatmap.js'
import { BitmapReader, openImage } from '../../../index.js'
import { BLOCK_BITS } from './bits.js'

/** 512-byte clusters (one index block each), 64 of them: data, all-zero and all-one entries mixed, so the scan reads many runs. */
async function image(seed: number): Promise<{ r: ReturnType<typeof readerFor>; diskLength: number; bytes: Uint8Array }> {
  const rng = new Rng(seed)
  const clusters = 64
  const data = new Uint8Array(clusters * 512)
  for (let i = 0; i < data.length; i++) data[i] = rng.int(256) & rng.int(256)
  const entryKinds: Record<number, EntryKind> = {}
  for (let k = 0; k < clusters; k++) entryKinds[k] = k % 3 === 1 ? 'zeroes' : k % 7 === 5 ? 'ones' : 'data'
  const diskLength = clusters * BLOCK_BITS * 512
  const built = buildQcow2({ clusterBits: 9, size: diskLength, bitmaps: [{ name: 'b', granularityBits: 9, data, entryKinds }] })
  const img = await openImage(new MemoryDevice(built.bytes))
  return { r: readerFor(img, img.bitmaps[0]!), diskLength, bytes: built.bytes }
}

describe('the block index while the scan runs', () => {
  it('grows run by run; what it has is final, and previews from it are the exact cells of the blocks read', async () => {
    for (const seed of [1, 2, 3]) {
      const { r, diskLength } = await image(seed)
      expect(r.indexSoFar()).toBeUndefined()
      expect([...heatmapSoFar(r, 0, diskLength, 64)].every(Number.isNaN)).toBe(true)
      const seen: Array<{ blocks: number; ones: number[]; preview: number[] }> = []
      await r.scan({
        onIndex: (s) => {
          expect(r.indexSoFar()).toEqual(s)
          seen.push({ blocks: s.blocks, ones: [...s.ones.subarray(0, s.blocks + 1)], preview: [...heatmapSoFar(r, 0, diskLength, 64)] })
        },
      })
      expect(seen.length).toBeGreaterThan(5) // one per run of data clusters
      expect(seen.at(-1)!.blocks).toBe(r.nblocks)
      const final = r.indexSoFar()!
      expect(final.blocks).toBe(r.nblocks)
      const exact = [...await heatmap(r, 0, diskLength, 64)]
      for (let k = 0; k < seen.length; k++) {
        const s = seen[k]!
        if (k > 0) expect(s.blocks).toBeGreaterThan(seen[k - 1]!.blocks)
        expect(s.ones).toEqual([...final.ones.subarray(0, s.blocks + 1)])
        // 64 cells over 64 blocks: cell i is block i, known once the scan has passed it.
        s.preview.forEach((v, i) => {
          if (i < s.blocks) expect(v, `seed ${seed} cell ${i} after ${s.blocks} blocks`).toBe(exact[i])
          else expect(Number.isNaN(v)).toBe(true)
        })
      }
    }
  })
})

/** A device with read() only (the browser's File), counting reads. */
class ReadOnlyCounting {
  reads = 0
  constructor(private readonly inner: MemoryDevice) {}
  get size(): number { return this.inner.size }
  read(offset: number, length: number): Promise<Uint8Array> { this.reads++; return this.inner.read(offset, length) }
}

describe('a small bitmap read by read() stays cached from its scan', () => {
  it('heatmaps of many cells after the scan read nothing again; with a cache too small for it they read', async () => {
    const { bytes, diskLength } = await image(7)
    for (const cacheBytes of [16 * 1024 * 1024, 8 * 1024]) {
      const dev = new ReadOnlyCounting(new MemoryDevice(bytes))
      const img = await openImage(dev)
      const r = new BitmapReader(dev, img.bitmaps[0]!, diskLength, img.header.clusterSize, { cacheBytes })
      await r.scan()
      const after = dev.reads
      const cells = await heatmap(r, 0, diskLength, 20_000) // boundaries inside blocks: they need the bits
      const ref = await heatmap(readerFor(await openImage(new MemoryDevice(bytes)), img.bitmaps[0]!), 0, diskLength, 20_000)
      expect([...cells]).toEqual([...ref])
      if (cacheBytes > 1 << 20) expect(dev.reads).toBe(after)
      else expect(dev.reads).toBeGreaterThan(after)
    }
  })
})
