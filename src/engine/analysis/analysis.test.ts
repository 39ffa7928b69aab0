/**
 * Extents, heatmap and digests (issue 2 "Dirty extents", "Heatmap", docs/format.md §7) against a naive
 * bit-by-bit model on seeded random bitmaps, plus SHA-256 against node:crypto and the spec's
 * reference values, and size parsing against QEMU's own parser.
 */
import { describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { MemoryDevice } from '../../io/memory.js'
import {
  Sha256, allExtents, bitmapSha256, cellBoundaries, describeImage, digestLength, extentPage, extentsInRange,
  heatmap, openImage, parseSize, sha256Hex, type BitmapReader, type Image,
} from '../index.js'
import { extentIndexAt } from './extents.js'
import { readerFor } from '../describe.js'
import { Rng } from '../../test-support/prng.js'
import { buildQcow2 } from '../../test-support/qcow2-builder.js'
import { BitmapModel, modelSha256 } from '../../test-support/bitmap-model.js'
import { randomCase } from '../../test-support/random-bitmaps.js'
import { qemuParseSize } from '../../test-support/tools.js'

interface Subject {
  img: Image
  r: BitmapReader
  m: BitmapModel
  logical: Uint8Array
  inUse: boolean
  ctx: string
}

/** Every bitmap of `count` random images, with its reader and model. */
async function* subjects(seed0: number, count: number): AsyncGenerator<Subject> {
  for (let seed = seed0; seed < seed0 + count; seed++) {
    const rng = new Rng(seed)
    const c = randomCase(rng, { allowInUse: true, allowTailBits: true })
    const built = buildQcow2(c.options)
    const img = await openImage(new MemoryDevice(built.bytes))
    for (const [i, b] of img.bitmaps.entries()) {
      const spec = c.options.bitmaps[i]!
      const r = readerFor(img, b)
      await r.scan()
      yield {
        img, r, logical: built.bitmaps[i]!.logical, inUse: ((spec.flags ?? 2) & 1) === 1,
        m: new BitmapModel(built.bitmaps[i]!.logical, built.diskLength, spec.granularityBits),
        ctx: `seed ${seed}: ${c.label} [${b.name}]`,
      }
    }
  }
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

/** A random byte position near something interesting: granule and cluster edges, the end. */
function randomOffset(rng: Rng, m: BitmapModel, bitsPerCluster: number): number {
  const L = m.diskLength
  switch (rng.int(6)) {
    case 0: return rng.int(L + 1)
    case 1: return Math.min(L, rng.int(m.nbits + 1) * m.granularity)
    case 2: return Math.max(0, Math.min(L, rng.int(m.nbits + 1) * m.granularity + rng.range(-3, 3)))
    case 3: return Math.min(L, rng.int(Math.ceil(m.nbits / bitsPerCluster) + 1) * bitsPerCluster * m.granularity)
    case 4: return Math.max(0, L - rng.int(Math.min(L, 3 * m.granularity) + 1))
    default: return Math.min(L, rng.int(Math.ceil(m.nbits / 4096) + 1) * 4096 * m.granularity + rng.range(0, 1))
  }
}

describe('extents against the model', () => {
  it('allExtents, extentPage(k, n), extentsInRange and extentIndexAt match for 200 random images', async () => {
    const rng = new Rng(4242)
    let checked = 0
    for await (const s of subjects(1, 200)) {
      const { r, m, ctx } = s
      const all = m.extents()
      expect(await collect(allExtents(r)), ctx).toEqual(all)
      expect(r.runCount, ctx).toBe(all.length)
      // Random pages, including empty, past-the-end, and pages that start inside a block.
      for (let t = 0; t < 12; t++) {
        const k = rng.int(all.length + 3)
        const n = rng.pick([0, 1, 2, 7, 64, 1000, all.length + 5])
        expect(await extentPage(r, k, n), `${ctx} page ${k}+${n}`).toEqual(all.slice(k, k + n))
      }
      // Walking page by page reproduces the whole list.
      if (all.length > 0) {
        const size = 1 + rng.int(Math.min(50, all.length))
        const pages = []
        for (let k = 0; k < all.length; k += size) pages.push(...(await extentPage(r, k, size)))
        expect(pages, `${ctx} pages of ${size}`).toEqual(all)
      }
      const bpc = s.img.header.clusterSize * 8
      for (let t = 0; t < 8; t++) {
        const a = randomOffset(rng, m, bpc)
        const b = rng.bool(0.2) ? a + rng.int(3) : randomOffset(rng, m, bpc)
        const [from, to] = a <= b ? [a, b] : [b, a]
        expect(await extentsInRange(r, from, to), `${ctx} range [${from}, ${to})`).toEqual(m.extentsInRange(from, to))
        const limit = 1 + rng.int(4)
        expect(await extentsInRange(r, from, to, limit), `${ctx} range [${from}, ${to}) limit ${limit}`).toEqual(m.extentsInRange(from, to).slice(0, limit))
        const want = all.findIndex((x) => x.offset + x.length > a)
        expect(await extentIndexAt(r, a), `${ctx} extentIndexAt(${a})`).toBe(want < 0 ? all.length : want)
      }
      checked++
    }
    expect(checked).toBeGreaterThan(200)
  })

  it('extentsInRange clips to the disk and returns nothing for empty or inverted ranges', async () => {
    const built = buildQcow2({ clusterBits: 9, size: 1 << 20, bitmaps: [{ name: 'b', granularityBits: 9, entryKinds: { 0: 'ones' } }] })
    const img = await openImage(new MemoryDevice(built.bytes))
    const r = readerFor(img, img.bitmaps[0]!)
    await r.scan()
    // 512-byte clusters: entry 0 covers 4096 bits * 512 B = 2 MiB, more than the 1 MiB disk.
    expect(await extentsInRange(r, 0, 10 << 20)).toEqual([{ offset: 0, length: 1 << 20 }])
    expect(await extentsInRange(r, 100, 100)).toEqual([])
    expect(await extentsInRange(r, 200, 100)).toEqual([])
    expect(await extentsInRange(r, -5, 3)).toEqual([{ offset: 0, length: 3 }])
  })
})

describe('heatmap against the model', () => {
  it('exact dirty bytes per cell for random ranges and cell counts on 150 random images', async () => {
    const rng = new Rng(777)
    let maps = 0
    for await (const s of subjects(1001, 150)) {
      const { r, m, ctx } = s
      const L = m.diskLength
      expect(Array.from(await heatmap(r, 0, L, 1)), ctx).toEqual([m.dirtyBytes()])
      const bpc = s.img.header.clusterSize * 8
      for (let t = 0; t < 8; t++) {
        let start: number, end: number
        switch (rng.int(4)) {
          case 0: start = 0; end = L; break
          case 1: { // zoomed in: a few granules, cells smaller than a granule
            start = randomOffset(rng, m, bpc)
            end = Math.min(L, start + rng.range(1, 4 * m.granularity))
            break
          }
          case 2: { // unaligned start, end at the (possibly partial) last granule
            start = Math.max(0, L - rng.range(1, Math.min(L, 5 * m.granularity)))
            end = L
            break
          }
          default: {
            const a = randomOffset(rng, m, bpc), b = randomOffset(rng, m, bpc)
            start = Math.min(a, b); end = Math.max(a, b)
          }
        }
        const cells = rng.pick([1, 2, 3, 7, 64, 100, 333, 1024, rng.range(1, 3000)])
        const got = Array.from(await heatmap(r, start, end, cells))
        expect(got, `${ctx} heatmap(${start}, ${end}, ${cells})`).toEqual(m.heatmap(start, end, cells))
        expect(got.reduce((a, b) => a + b, 0), ctx).toBe(m.extentsInRange(start, end).reduce((a, x) => a + x.length, 0))
        maps++
      }
    }
    expect(maps).toBeGreaterThan(1000)
  })

  it('many cells per bitmap cluster (the 2-D map: each cluster counted through once) equal the model', async () => {
    const rng = new Rng(4242)
    let maps = 0
    for await (const s of subjects(5001, 40)) {
      const { r, m, ctx } = s
      const L = m.diskLength
      for (const cells of [4096, 20_000, rng.range(5000, 50_000)]) {
        const start = rng.int(2) === 0 ? 0 : rng.int(Math.max(1, L >> 2))
        const end = rng.int(2) === 0 ? L : start + rng.range(1, L - start + 1)
        expect(Array.from(await heatmap(r, start, end, cells)), `${ctx} heatmap(${start}, ${end}, ${cells})`).toEqual(m.heatmap(start, end, cells))
        maps++
      }
    }
    expect(maps).toBeGreaterThan(100)
  })

  it('single-byte cells over a partial last granule', async () => {
    // disk 1 MiB + 1536: granularity 64 KiB, 17 bits, the last granule covers 1536 bytes.
    const data = new Uint8Array([0, 0, 1]) // bit 16 only
    const built = buildQcow2({ clusterBits: 16, size: (1 << 20) + 1536 + 100, bitmaps: [{ name: 'b', granularityBits: 16, data }] })
    const img = await openImage(new MemoryDevice(built.bytes))
    const r = readerFor(img, img.bitmaps[0]!)
    await r.scan()
    const L = (1 << 20) + 1536
    expect(img.header.diskLength).toBe(L)
    expect(r.dirtyBytes).toBe(1536)
    expect(Array.from(await heatmap(r, L - 4, L, 4))).toEqual([1, 1, 1, 1])
    expect(Array.from(await heatmap(r, (1 << 20) - 2, (1 << 20) + 2, 4))).toEqual([0, 0, 1, 1])
    // Past the disk end nothing is dirty.
    expect(Array.from(await heatmap(r, L - 2, L + 2, 4))).toEqual([1, 1, 0, 0])
  })

  it('rejects a non-integer cell count or an inverted range', async () => {
    const built = buildQcow2({ clusterBits: 9, size: 1 << 20, bitmaps: [{ name: 'b', granularityBits: 9 }] })
    const img = await openImage(new MemoryDevice(built.bytes))
    const r = readerFor(img, img.bitmaps[0]!)
    await expect(heatmap(r, 0, 100, 0)).rejects.toThrow(/cells/)
    await expect(heatmap(r, 0, 100, 1.5)).rejects.toThrow(/cells/)
    await expect(heatmap(r, 100, 0, 4)).rejects.toThrow(/range/)
  })

  it('cellBoundaries are exact integers even when i*len passes 2^53', () => {
    const rng = new Rng(9)
    for (let t = 0; t < 60; t++) {
      const start = rng.int(2 ** 50)
      const len = rng.pick([rng.int(2 ** 53 - start), rng.int(1000), 2 ** 46 + rng.int(1000)])
      const cells = rng.pick([1, 3, 1000, 65536, rng.range(1, 1 << 20)])
      const xs = cellBoundaries(start, start + len, cells)
      expect(xs.length).toBe(cells + 1)
      for (const i of [0, 1, Math.floor(cells / 3), cells - 1, cells]) {
        const want = BigInt(start) + (BigInt(i) * BigInt(len)) / BigInt(cells)
        expect(BigInt(xs[i]!), `start ${start} len ${len} cells ${cells} i ${i}`).toBe(want)
      }
    }
  })
})

describe('SHA-256 (docs/format.md §7)', () => {
  it('matches the spec reference values for empty bitmaps', () => {
    expect(sha256Hex(new Uint8Array(2048))).toBe('e5a00aa9991ac8a5ee3109844d84a55583bd20572ad3ffcd42792f3c36b183ad')
    expect(sha256Hex(new Uint8Array(2056))).toBe('d5fe696dc1aa5c0a800bf800ce8fc6e26ab622c7dd7de4b9fd0c304fe4036256')
    expect(new Sha256().updateZeros(2048).digestHex()).toBe('e5a00aa9991ac8a5ee3109844d84a55583bd20572ad3ffcd42792f3c36b183ad')
  })

  it('an empty 1 GiB bitmap at 64 KiB granularity hashes to the spec value, also with size 1 GiB + 100', async () => {
    for (const size of [1 << 30, (1 << 30) + 100]) {
      const built = buildQcow2({ clusterBits: 16, size, bitmaps: [{ name: 'b', granularityBits: 16 }] })
      const img = await openImage(new MemoryDevice(built.bytes))
      expect(await bitmapSha256(readerFor(img, img.bitmaps[0]!))).toBe('e5a00aa9991ac8a5ee3109844d84a55583bd20572ad3ffcd42792f3c36b183ad')
    }
  })

  it('equals node:crypto for random data of many lengths and chunkings', () => {
    const rng = new Rng(31337)
    const lengths = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4095, 4096, 65537]
    for (let i = 0; i < 120; i++) lengths.push(rng.int(5000))
    for (const n of lengths) {
      const data = rng.bytes(n)
      const want = createHash('sha256').update(data).digest('hex')
      expect(sha256Hex(data), `length ${n}`).toBe(want)
      const h = new Sha256()
      let p = 0
      while (p < n) { const k = Math.min(n - p, rng.pick([1, 3, 63, 64, 65, 200, 4096])); h.update(data.subarray(p, p + k)); p += k }
      expect(h.digestHex(), `length ${n} chunked`).toBe(want)
    }
    for (const n of [0, 1, 64, 65535, 65536, 65537, 200_000]) {
      expect(new Sha256().updateZeros(n).digestHex(), `zeros ${n}`).toBe(createHash('sha256').update(new Uint8Array(n)).digest('hex'))
    }
  })

  it('digestLength is 8*max(1, ceil(nbits/64))', () => {
    expect([0, 1, 63, 64, 65, 16384, 16385].map(digestLength)).toEqual([8, 8, 8, 8, 16, 2048, 2056])
  })

  it('bitmapSha256 equals the model for 150 random bitmaps (zeros for in_use ones, stored bytes on request)', async () => {
    for await (const s of subjects(2001, 150)) {
      const { r, m, ctx, logical, inUse } = s
      const want = inUse ? modelSha256(new Uint8Array(0), m.nbits) : modelSha256(logical, m.nbits)
      expect(await bitmapSha256(r), ctx).toBe(want)
      expect(await bitmapSha256(r, { stored: true }), ctx).toBe(modelSha256(logical, m.nbits))
    }
  })

  it('describeImage with sha256 reports the same digests', async () => {
    const rng = new Rng(55)
    const c = randomCase(rng, { allowTailBits: true })
    const built = buildQcow2(c.options)
    const img = await openImage(new MemoryDevice(built.bytes))
    const s = await describeImage(img, { sha256: true })
    s.bitmaps.forEach((b, i) => {
      const spec = c.options.bitmaps[i]!
      const nbits = Math.ceil(built.diskLength / 2 ** spec.granularityBits)
      expect(b.sha256, c.label).toBe(modelSha256(built.bitmaps[i]!.logical, nbits))
    })
  })
})

describe('sizes are parsed as QEMU parses them', () => {
  const accepted = ['0', '7', '512', '00012', '64k', '64K', '1M', '2G', '1t', '1T', '1P', '10b', '1.5k', '1.5K',
    '0.5M', '1.25k', '1.3k', '5.', '5.k', '5.00k', '1.0', '0x10', '3.999G', '7P']
  it.each(accepted)('%s', (s) => {
    const q = qemuParseSize(s)
    expect(q, `qemu-io accepts ${s}`).toBeTypeOf('number')
    expect(parseSize(s)).toBe(q)
  })
  const rejected = ['', 'k', '1x', '1e3', '1.5', '.5k', '1.5b', 'abc', '-1', '1kk']
  it.each(rejected)('rejects %j', (s) => {
    if (s !== '' && s !== '-1') expect(qemuParseSize(s), `qemu-io rejects ${s}`).toBeUndefined()
    expect(() => parseSize(s)).toThrow(/invalid size/)
  })
  it('refuses sizes that do not fit below 2^53', () => {
    expect(() => parseSize('8P')).toThrow(/2\^53/)
    expect(() => parseSize('1E')).toThrow(/2\^53/)
  })
})
