import { describe, expect, it } from 'vitest'
import { MemoryDevice } from '../../../../io/memory.js'
import { Rng } from '../../../../test-support/prng.js'
import { buildQcow2, type EntryKind } from '../../../../test-support/qcow2-builder.js'
import { readerFor } from '../../../describe.js'
import { heatmap, heatmapSoFar } from '../../../analysis/heatmap.js'
import { openImage } from '../../../index.js'
import { BLOCK_BITS } from './bits.js'

/** 512-byte clusters (one index block each), 64 of them: data, all-zero and all-one entries mixed, so the scan reads many runs. */
async function image(seed: number): Promise<{ r: ReturnType<typeof readerFor>; diskLength: number }> {
  const rng = new Rng(seed)
  const clusters = 64
  const data = new Uint8Array(clusters * 512)
  for (let i = 0; i < data.length; i++) data[i] = rng.int(256) & rng.int(256)
  const entryKinds: Record<number, EntryKind> = {}
  for (let k = 0; k < clusters; k++) entryKinds[k] = k % 3 === 1 ? 'zeroes' : k % 7 === 5 ? 'ones' : 'data'
  const diskLength = clusters * BLOCK_BITS * 512
  const built = buildQcow2({ clusterBits: 9, size: diskLength, bitmaps: [{ name: 'b', granularityBits: 9, data, entryKinds }] })
  const img = await openImage(new MemoryDevice(built.bytes))
  return { r: readerFor(img, img.bitmaps[0]!), diskLength }
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
