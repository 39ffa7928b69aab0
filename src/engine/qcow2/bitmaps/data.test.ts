/**
 * BitmapReader (docs/format.md §4.4-§4.5) against a naive bit-by-bit model, on images whose stored bits
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
    // QEMU never loads an in_use bitmap: it hashes nbits/8 zero bytes (docs/format.md §7).
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

/** A device with readInto (MemoryDevice has it) that also counts how it was read. */
class IntoCountingDevice extends MemoryDevice {
  readCalls = 0
  readIntoCalls = 0
  override async read(offset: number, length: number): Promise<Uint8Array> {
    this.readCalls++
    return super.read(offset, length)
  }
  override async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.readIntoCalls++
    return super.readInto(offset, target)
  }
}

describe('scan through readInto (kernel memory, reused buffer) equals the read() path', () => {
  it('setBits, runCount, dirtyBytes and rank match the model for 150 random images, readInto and plain devices, one and two concurrent scans', async () => {
    for (let seed = 501; seed <= 650; seed++) {
      const rng = new Rng(seed)
      const c = randomCase(rng, { allowInUse: true, allowTailBits: true })
      const built = buildQcow2(c.options)
      const into = new IntoCountingDevice(built.bytes)
      const imgInto = await openImage(into)
      const imgPlain = (await open(built.bytes)).img
      for (const [i, b] of imgInto.bitmaps.entries()) {
        const spec = c.options.bitmaps[i]!
        const m = modelOf(built, i, spec.granularityBits)
        const ctx = `seed ${seed}: ${c.label} [${b.name}]`
        // Two readers of the same bitmap scanned at once, each with its own kernel (memory).
        const r1 = new BitmapReader(into, b, imgInto.header.diskLength, imgInto.header.clusterSize)
        const r2 = new BitmapReader(into, b, imgInto.header.diskLength, imgInto.header.clusterSize)
        const r3 = readerFor(imgPlain, imgPlain.bitmaps[i]!)
        await Promise.all([r1.scan(), r2.scan()])
        await r3.scan()
        for (const r of [r1, r2, r3]) {
          expect(r.setBits, ctx).toBe(m.setBits)
          expect(r.runCount, ctx).toBe(m.runs().length)
          expect(r.dirtyBytes, ctx).toBe(m.dirtyBytes())
        }
        for (let t = 0; t < 10; t++) {
          const k = rng.int(m.nbits + 1)
          const want = await r3.rank(k)
          expect(await r1.rank(k), `${ctx} rank ${k}`).toBe(want)
          expect(await r2.rank(k), `${ctx} rank ${k}`).toBe(want)
        }
      }
    }
  })

  it('reads big data in 1 MiB pieces through readInto, crossing pieces and 2 MiB clusters with tail bits', async () => {
    // 2 MiB clusters, 512 B granularity: 3 data clusters back to back; nbits ends inside the
    // first MiB of the last cluster, so its second piece is all tail (masked, ignored).
    const cs = 2 << 20
    const nbits = 2 * cs * 8 + 5 * 8 * 65536 + 13
    const data = new Rng(77).bytes(3 * cs)
    data.fill(0xff, cs - 4096, cs + 4096) // a run across the cluster (and piece) boundary
    const built = buildQcow2({ clusterBits: 21, size: nbits * 512, bitmaps: [{ name: 'big', granularityBits: 9, data }] })
    // Set bits and run starts of the first nbits bits, byte-wise (the tail bits past nbits do not count).
    let ones = 0, starts = 0, prev = 0
    for (let k = 0; k < nbits; k++) {
      const bit = (data[k >>> 3]! >>> (k & 7)) & 1
      ones += bit
      if (bit && !prev) starts++
      prev = bit
    }
    const into = new IntoCountingDevice(built.bytes)
    const img = await openImage(into)
    into.readCalls = 0
    const r = readerFor(img, img.bitmaps[0]!)
    await r.scan()
    expect(into.readCalls).toBe(0)
    expect(into.readIntoCalls).toBe(6)
    expect(r.setBits).toBe(ones)
    expect(r.runCount).toBe(starts)
    expect(r.dirtyBytes).toBe(ones * 512)
    const plain = readerFor((await open(built.bytes)).img, img.bitmaps[0]!)
    await plain.scan()
    for (const k of [0, 1, cs * 8 - 1, cs * 8, cs * 8 + 1, (cs >> 1) * 8 + 3, 2 * cs * 8 + 12345, nbits - 1, nbits]) {
      expect(await r.rank(k), `rank ${k}`).toBe(await plain.rank(k))
    }
  })
})

/** Flatten runBatches into [start, end) pairs. */
async function batchRuns(r: BitmapReader, from: number, skipPartial: boolean, batch: number): Promise<Array<[number, number]>> {
  const out: Array<[number, number]> = []
  for await (const b of r.runBatches(from, skipPartial, undefined, batch)) {
    expect(b.length).toBeGreaterThan(0)
    expect(b.length % 2).toBe(0)
    expect(b.length).toBeLessThanOrEqual(2 * batch + 40)
    for (let i = 0; i < b.length; i += 2) out.push([b[i]!, b[i + 1]!])
  }
  return out
}

/** runs(from, skipPartial) one at a time. */
async function generatorRuns(r: BitmapReader, from: number, skipPartial: boolean): Promise<Array<[number, number]>> {
  const out: Array<[number, number]> = []
  for await (const x of r.runs(from, skipPartial)) out.push(x)
  return out
}

/** The model's runs that contain or follow bit `from`; with `skipPartial`, not one that began before it. */
function modelRunsFrom(runs: Array<[number, number]>, from: number, skipPartial: boolean): Array<[number, number]> {
  return runs.filter(([s, e]) => e > Math.max(0, from) && !(skipPartial && s < from))
}

describe('runBatches and runs() equal the model from any start', () => {
  it('on 120 random images (all-zeroes / all-ones entries, tail bits, short tables), any start, batch sizes 1..16384', async () => {
    for (let seed = 801; seed <= 920; seed++) {
      const rng = new Rng(seed)
      const c = randomCase(rng, { allowInUse: true, allowTailBits: true })
      const built = buildQcow2(c.options)
      const img = await openImage(new MemoryDevice(built.bytes))
      for (const [i, b] of img.bitmaps.entries()) {
        const m = modelOf(built, i, c.options.bitmaps[i]!.granularityBits)
        const r = readerFor(img, b)
        const ctx = `seed ${seed}: ${c.label} [${b.name}]`
        const want = m.runs()
        for (const batch of [1, 3, 16384]) expect(await batchRuns(r, 0, false, batch), `${ctx} batch ${batch}`).toEqual(want)
        for (let t = 0; t < 4; t++) {
          const from = rng.int(m.nbits + 2)
          const skip = rng.bool()
          const batch = rng.pick([1, 2, 5, 64, 16384])
          const wantFrom = modelRunsFrom(want, from, skip)
          expect(await batchRuns(r, from, skip, batch), `${ctx} from ${from} skip ${skip} batch ${batch}`).toEqual(wantFrom)
          expect(await generatorRuns(r, from, skip), `${ctx} runs() from ${from} skip ${skip}`).toEqual(wantFrom)
        }
      }
    }
  })

  it('carries runs across clusters, word boundaries and all-ones / all-zeroes entries', async () => {
    // 512-byte clusters (4096 bits): data, ones, ones, data, zeroes, data, data (last one short).
    const cs = 512
    const data = new Uint8Array(7 * cs)
    data.fill(0xff, cs - 3, cs) // run into the ones entries
    data[3 * cs] = 0x01 // ... which continues into the data cluster after them for one bit
    data.fill(0xff, 4 * cs - 1, 4 * cs) // run ending at the zeroes entry
    for (let j = 5 * cs; j < 6 * cs; j++) data[j] = 0x55 // alternating bits: 2048 runs
    data.fill(0xff, 6 * cs - 2, 6 * cs + 10) // run across two data clusters
    data[6 * cs + 100] = 0xaa
    const nbits = 6 * cs * 8 + 1000
    const built = buildQcow2({ clusterBits: 9, size: nbits * 512, bitmaps: [{ name: 'c', granularityBits: 9, data, entryKinds: { 1: 'ones', 2: 'ones', 4: 'zeroes' } }] })
    const m = new BitmapModel(built.bitmaps[0]!.logical, built.diskLength, 9)
    const img = await openImage(new MemoryDevice(built.bytes))
    const r = readerFor(img, img.bitmaps[0]!)
    const want = m.runs()
    expect(want.length).toBeGreaterThan(2000)
    for (const batch of [1, 2, 7, 100, 16384]) {
      expect(await batchRuns(r, 0, false, batch), `batch ${batch}`).toEqual(want)
      for (const from of [1, cs * 8 - 5, cs * 8 + 7, 3 * cs * 8, 3 * cs * 8 + 1, 5 * cs * 8 + 33, 6 * cs * 8 - 1, 6 * cs * 8 + 3, nbits - 1]) {
        for (const skip of [false, true]) {
          const wantFrom = modelRunsFrom(want, from, skip)
          expect(await batchRuns(r, from, skip, batch), `batch ${batch} from ${from} skip ${skip}`).toEqual(wantFrom)
          expect(await generatorRuns(r, from, skip), `runs() from ${from} skip ${skip}`).toEqual(wantFrom)
        }
      }
    }
    // All-ones bitmap ending in an all-ones entry: one run to nbits.
    const ones = buildQcow2({ clusterBits: 9, size: 3 * cs * 8 * 512 - 7 * 512, bitmaps: [{ name: 'o', granularityBits: 9, entryKinds: { 0: 'ones', 1: 'ones', 2: 'ones' } }] })
    const io = await openImage(new MemoryDevice(ones.bytes))
    const ro = readerFor(io, io.bitmaps[0]!)
    expect(await batchRuns(ro, 0, false, 1)).toEqual([[0, ro.nbits]])
    expect(await batchRuns(ro, 5, true, 1)).toEqual([])
  })
})
