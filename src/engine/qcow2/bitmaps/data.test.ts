/**
 * BitmapReader (spec §4.4-§4.5) against a naive bit-by-bit model, on images whose stored bits
 * we choose (src/test-support/qcow2-builder.ts) and on images QEMU made. The builder and the
 * model are themselves checked against QEMU (qemu-img check, qemu-nbd + nbdinfo, QMP sha256),
 * so every expectation here traces back to the oracle, never to qbm.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { MemoryDevice } from '../../../io/memory.js'
import { AbortError, BitmapReader, bitmapSha256, describeImage, openImage, type Image } from '../../index.js'
import { readerFor } from '../../describe.js'
import { Rng } from '../../../test-support/prng.js'
import { buildQcow2, type Built } from '../../../test-support/qcow2-builder.js'
import { BitmapModel, modelSha256 } from '../../../test-support/bitmap-model.js'
import { randomCase } from '../../../test-support/random-bitmaps.js'
import { RecordingDevice } from '../../../test-support/recording-device.js'
import { getU64, makeQemuImage, setU64 } from '../../../test-support/qemu-images.js'
import { nbdDirtyExtents, qemuImgCheck, qemuImgInfo, qmpSha256, tempDir } from '../../../test-support/tools.js'

let tmp: ReturnType<typeof tempDir>
beforeAll(() => { tmp = tempDir('qbm-data-') })
afterAll(() => tmp.cleanup())

async function open(bytes: Uint8Array): Promise<{ img: Image; dev: RecordingDevice }> {
  const dev = new RecordingDevice(new MemoryDevice(bytes))
  return { img: await openImage(dev), dev }
}

function modelOf(built: Built, i: number, gb: number): BitmapModel {
  return new BitmapModel(built.bitmaps[i]!.logical, built.diskLength, gb)
}

/** Byte offset of a bitmap's data for bit k inside a QEMU image with a one-entry table. */
function firstDataCluster(bytes: Uint8Array, tableOffset: number): number {
  return getU64(bytes, tableOffset)
}

describe('the test builder and model agree with QEMU', () => {
  // Anchors the model: if these pass, a difference between engine and model is an engine bug.
  for (let seed = 1; seed <= 8; seed++) {
    it(`random image seed ${seed}: qemu-img check clean, nbdinfo extents and QMP sha256 equal the model`, () => {
      const rng = new Rng(1000 + seed)
      const c = randomCase(rng, { allowTailBits: true, maxBits: 30_000, maxBitmaps: 2 })
      const built = buildQcow2(c.options)
      const path = join(tmp.path, `built-${seed}.qcow2`)
      writeFileSync(path, built.bytes)
      expect(qemuImgCheck(path), c.label).toBe(0)
      const info = qemuImgInfo(path)
      expect(info.code, info.stderr).toBe(0)
      const qb = info.json!['format-specific']!.data!.bitmaps!
      expect(qb.map((b) => [b.name, b.granularity])).toEqual(c.options.bitmaps.map((b) => [b.name, 2 ** b.granularityBits]))
      const names = c.options.bitmaps.map((b) => b.name as string)
      const { sums, errors } = qmpSha256(path, names)
      expect(errors).toEqual({})
      c.options.bitmaps.forEach((b, i) => {
        const m = modelOf(built, i, b.granularityBits)
        expect(nbdDirtyExtents(path, b.name as string), `${c.label} ${b.name as string}`).toEqual(m.extents())
        expect(sums[b.name as string], c.label).toBe(modelSha256(built.bitmaps[i]!.logical, m.nbits))
      })
    })
  }
})

describe('BitmapReader against the naive model (seeded random bitmaps)', () => {
  it('scan counts, bit(), rank() and describe counts match for 300 random images', async () => {
    let bitmaps = 0
    for (let seed = 1; seed <= 300; seed++) {
      const rng = new Rng(seed)
      const c = randomCase(rng, { allowInUse: true, allowTailBits: true })
      const built = buildQcow2(c.options)
      const { img } = await open(built.bytes)
      const summary = await describeImage(img)
      expect(img.bitmaps.length, c.label).toBe(c.options.bitmaps.length)
      for (const [i, b] of img.bitmaps.entries()) {
        const spec = c.options.bitmaps[i]!
        const m = modelOf(built, i, spec.granularityBits)
        const ctx = `seed ${seed}: ${c.label} [${b.name}]`
        expect(b.status, ctx).toBe((spec.flags! & 1) ? 'in-use' : 'ok')
        expect(b.nbits, ctx).toBe(m.nbits)
        const r = new BitmapReader(img.device, b, img.header.diskLength, img.header.clusterSize)
        await r.scan()
        expect(r.setBits, ctx).toBe(m.setBits)
        expect(r.runCount, ctx).toBe(m.runs().length)
        expect(r.dirtyBytes, ctx).toBe(m.dirtyBytes())
        expect(summary.bitmaps[i]!.dirtyBytes, ctx).toBe(m.dirtyBytes())
        expect(summary.bitmaps[i]!.extentCount, ctx).toBe(m.runs().length)
        for (let t = 0; t < 20; t++) {
          const k = rng.int(m.nbits + 2)
          expect(await r.bit(k), `${ctx} bit ${k}`).toBe(k < m.nbits && m.bits[k] === 1)
          const kr = Math.min(m.nbits, rng.bool(0.3) ? Math.floor(k / 4096) * 4096 : k)
          let ones = 0
          for (let j = 0; j < kr; j++) ones += m.bits[j]!
          expect(await r.rank(kr), `${ctx} rank ${kr}`).toBe(ones)
        }
        bitmaps++
      }
    }
    expect(bitmaps).toBeGreaterThan(300)
  })

  it('a tiny cache gives the same answers as the default one', async () => {
    const rng = new Rng(77)
    for (let n = 0; n < 20; n++) {
      const c = randomCase(rng, { allowTailBits: true })
      const built = buildQcow2(c.options)
      const { img } = await open(built.bytes)
      for (const [i, b] of img.bitmaps.entries()) {
        const m = modelOf(built, i, c.options.bitmaps[i]!.granularityBits)
        const r = new BitmapReader(img.device, b, img.header.diskLength, img.header.clusterSize, { cacheBytes: 1 })
        await r.scan()
        expect(r.dirtyBytes, c.label).toBe(m.dirtyBytes())
        for (let t = 0; t < 30; t++) {
          const k = rng.int(m.nbits)
          expect(await r.bit(k), c.label).toBe(m.bits[k] === 1)
        }
      }
    }
  })
})

describe('table entries and tail bits', () => {
  it('an all-ones table entry patched into a QEMU image reads as all dirty, like qemu-nbd reads it', () => {
    return (async () => {
      // 512 B clusters and granularity: 8 MiB disk = 16384 bits = 2048 bytes = 4 table entries.
      const q = makeQemuImage(tmp.path, 'ones.qcow2', {
        size: 8 << 20, options: 'cluster_size=512', bitmaps: [{ name: 'b0', granularity: 512 }],
        writes: ['write 0 4k', 'write 3000000 100', 'write 8387584 512'],
      })
      const { img } = await open(q.bytes)
      const b = img.bitmaps[0]!
      expect(b.tableSize).toBe(4)
      const bytes = q.bytes.slice()
      setU64(bytes, b.tableOffset + 8, 1) // entry 1: all ones (bits 4096..8191)
      setU64(bytes, b.tableOffset + 24, 1) // last entry: all ones, nbits is a multiple of 64 here
      const path = join(tmp.path, 'ones-patched.qcow2')
      writeFileSync(path, bytes)
      const expected = nbdDirtyExtents(path, 'b0')
      // The oracle confirms what the patch means: [2 MiB, 4 MiB) and [6 MiB, 8 MiB) dirty.
      expect(expected).toContainEqual({ offset: 2 << 20, length: 2 << 20 })
      const { img: img2 } = await open(bytes)
      const r = readerFor(img2, img2.bitmaps[0]!)
      await r.scan()
      expect(r.dirtyBytes).toBe(expected.reduce((s, e) => s + e.length, 0))
      expect(r.runCount).toBe(expected.length)
      expect(await bitmapSha256(r)).toBe(qmpSha256(path, ['b0']).sums.b0)
    })()
  })

  it('all-zeroes and all-ones entries are answered without reading any data', async () => {
    const built = buildQcow2({
      clusterBits: 9, size: 64 << 20,
      bitmaps: [{ name: 'z', granularityBits: 9, entryKinds: { 0: 'ones', 5: 'ones', 31: 'ones' } }],
    })
    const { img, dev } = await open(built.bytes)
    dev.reset()
    const r = readerFor(img, img.bitmaps[0]!)
    await r.scan()
    expect(r.dirtyBytes).toBe(3 * 4096 * 512)
    expect(r.runCount).toBe(3)
    expect(await r.bit(5 * 4096 + 17)).toBe(true)
    expect(await r.rank(6 * 4096)).toBe(2 * 4096)
    expect(dev.reads).toBe(0)
  })

  it('tail bits past nbits do not count (QEMU agrees) but are hashed within the last word', async () => {
    // 1 MiB + 1536 bytes at 64 KiB granularity: nbits = 17, last granule 1536 bytes long.
    const q = makeQemuImage(tmp.path, 'tail.qcow2', {
      size: (1 << 20) + 1536, bitmaps: [{ name: 'b0', granularity: 65536 }],
      writes: ['write 0 512', `write ${1 << 20} 512`],
    })
    const { img } = await open(q.bytes)
    const data = firstDataCluster(q.bytes, img.bitmaps[0]!.tableOffset)
    const bytes = q.bytes.slice()
    bytes[data + 2] = 0xff // bit 16 (the last, partial granule) and tail bits 17..23
    bytes[data + 6] = 0x80 // inside the last 64-bit word
    bytes[data + 300] = 0x01 // past the last word
    const path = join(tmp.path, 'tail-patched.qcow2')
    writeFileSync(path, bytes)
    const expected = nbdDirtyExtents(path, 'b0')
    expect(expected).toEqual([{ offset: 0, length: 65536 }, { offset: 1 << 20, length: 1536 }])
    const { img: img2 } = await open(bytes)
    const r = readerFor(img2, img2.bitmaps[0]!)
    await r.scan()
    expect(r.setBits).toBe(2)
    expect(r.runCount).toBe(2)
    expect(r.dirtyBytes).toBe(65536 + 1536)
    expect(await r.bit(17)).toBe(false)
    expect(await bitmapSha256(r)).toBe(qmpSha256(path, ['b0']).sums.b0)
  })

  it('an in_use bitmap with a short table reads entries past the table as zeroes', async () => {
    const cs = 512
    const data = new Uint8Array(3 * cs).fill(0xff)
    const built = buildQcow2({
      clusterBits: 9, size: 32 << 20,
      bitmaps: [{ name: 'stale', granularityBits: 9, flags: 3, data, tableSize: 3 }],
    })
    const { img } = await open(built.bytes)
    const b = img.bitmaps[0]!
    expect(b.status).toBe('in-use')
    expect(b.expectedTableSize).toBe(16)
    const r = readerFor(img, b)
    await r.scan()
    expect(r.setBits).toBe(3 * cs * 8)
    expect(r.dirtyBytes).toBe(3 * cs * 8 * 512)
    expect(r.runCount).toBe(1)
    expect(await r.bit(3 * cs * 8)).toBe(false)
    // QEMU never loads an in_use bitmap: it hashes nbits/8 zero bytes (spec §7).
    expect(await bitmapSha256(r)).toBe(modelSha256(new Uint8Array(0), b.nbits))
    expect(await bitmapSha256(r, { stored: true })).toBe(modelSha256(built.bitmaps[0]!.logical, b.nbits))
  })

  it('scans in bounded reads even when every data cluster is contiguous', async () => {
    // 64 KiB clusters, 512 B granularity: 200 table entries of 64 KiB, all stored back to back.
    const cs = 65536
    const data = new Rng(5).bytes(200 * cs)
    const built = buildQcow2({ clusterBits: 16, size: 200 * cs * 8 * 512, bitmaps: [{ name: 'big', granularityBits: 9, data }] })
    const { img, dev } = await open(built.bytes)
    dev.reset()
    const r = readerFor(img, img.bitmaps[0]!)
    await r.scan()
    expect(dev.maxRead).toBeLessThanOrEqual(8 << 20)
    expect(dev.bytesRead).toBe(200 * cs)
    expect(dev.badReads).toEqual([])
    // Byte-wise popcount and run starts (a run starts at a set bit whose predecessor is clear).
    let ones = 0, starts = 0, prev = 0
    for (const x of data) {
      for (let j = 0; j < 8; j++) {
        const bit = (x >> j) & 1
        ones += bit
        if (bit && !prev) starts++
        prev = bit
      }
    }
    expect(r.setBits).toBe(ones)
    expect(r.runCount).toBe(starts)
  })

  it('a data cluster that the file ends inside reads as its bytes then zeroes, without reading past the end', async () => {
    // QEMU writes only the used bytes of the last cluster, so a file may end inside it (spec
    // §5.3). Point entry 1 at the directory cluster and cut the file right after the directory.
    const built = buildQcow2({ clusterBits: 9, size: 4 << 20, bitmaps: [{ name: 'b', granularityBits: 9, data: new Uint8Array(1024).fill(0xff) }] })
    const bytes = built.bytes.slice(0, built.directoryOffset + built.directorySize)
    setU64(bytes, built.bitmaps[0]!.tableOffset + 8, built.directoryOffset)
    const { img, dev } = await open(bytes)
    const b = img.bitmaps[0]!
    expect(b.table[1]).toBe(built.directoryOffset)
    const logical = new Uint8Array(built.bitmaps[0]!.logical)
    logical.fill(0, 512, 1024)
    logical.set(bytes.subarray(built.directoryOffset), 512)
    const m = new BitmapModel(logical, built.diskLength, 9)
    dev.reset()
    const r = readerFor(img, b)
    await r.scan()
    expect(dev.badReads).toEqual([])
    expect(r.setBits).toBe(m.setBits)
    expect(r.runCount).toBe(m.runs().length)
    expect(await bitmapSha256(r)).toBe(modelSha256(logical, m.nbits))
  })

  it('scan stops with AbortError when the signal is aborted', async () => {
    const built = buildQcow2({ clusterBits: 9, size: 64 << 20, bitmaps: [{ name: 'b', granularityBits: 9, data: new Uint8Array(16384).fill(0x0f) }] })
    const { img } = await open(built.bytes)
    const r = readerFor(img, img.bitmaps[0]!)
    await expect(r.scan({ signal: { aborted: true } })).rejects.toBeInstanceOf(AbortError)
    await r.scan()
    expect(r.setBits).toBe(16384 * 4)
  })

  it('reports scan progress up to the data bytes it reads', async () => {
    const built = buildQcow2({ clusterBits: 9, size: 64 << 20, bitmaps: [{ name: 'b', granularityBits: 9, data: new Uint8Array(16384).fill(1), entryKinds: { 3: 'ones', 4: 'zeroes' } }] })
    const { img } = await open(built.bytes)
    const r = readerFor(img, img.bitmaps[0]!)
    const seen: Array<[number, number]> = []
    await r.scan({ onProgress: (d, t) => seen.push([d, t]) })
    expect(r.dataBytesToRead).toBe(30 * 512)
    expect(seen.at(-1)).toEqual([30 * 512, 30 * 512])
  })
})
