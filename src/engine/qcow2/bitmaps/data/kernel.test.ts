/**
 * The scan kernels (kernel.ts): the committed WebAssembly bytes are what kernel-wasm.wat builds,
 * the WebAssembly kernel is the one that runs in Node (a silent fall back to JS fails here),
 * a fallback says why, and both kernels equal a bit-by-bit count.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { MemoryDevice } from '../../../../io/memory.js'
import { Rng } from '../../../../test-support/prng.js'
import { buildQcow2 } from '../../../../test-support/qcow2-builder.js'
import { BitmapReader, describeImage, openImage } from '../../../index.js'
import { readerFor } from '../../../describe.js'
import { BLOCK_BYTES } from './bits.js'
import { PIECE_BLOCKS, PIECE_BYTES, type BlockKernel } from './kernel.js'
import { createKernel, kernelInfo } from './kernel-choice.js'

const ROOT = join(__dirname, '../../../../..')

/** Running totals of set bits and run starts after each 512-byte block, bit by bit (spec §4.5 order). */
function naiveCounts(data: Uint8Array, nblocks: number, carry: number): { ones: number[]; runs: number[]; carry: number } {
  const totals = { ones: [] as number[], runs: [] as number[] }
  let prev = carry
  let onesAcc = 100 // the totals start where the index is (any value)
  let runsAcc = 10
  for (let b = 0; b < nblocks; b++) {
    let ones = 0
    let starts = 0
    for (let k = b * BLOCK_BYTES * 8; k < (b + 1) * BLOCK_BYTES * 8; k++) {
      const bit = (data[k >>> 3]! >>> (k & 7)) & 1
      ones += bit
      if (bit && !prev) starts++
      prev = bit
    }
    onesAcc += ones
    runsAcc += starts
    totals.ones.push(onesAcc)
    totals.runs.push(runsAcc)
  }
  return { ...totals, carry: prev }
}

/** Random test data of `nblocks` blocks in one of several shapes. */
function randomData(rng: Rng, nblocks: number, shape: number): Uint8Array {
  const d = new Uint8Array(nblocks * BLOCK_BYTES)
  if (shape === 0) for (let i = 0; i < d.length; i++) d[i] = rng.int(256) // dense
  else if (shape === 1) for (let i = 0; i < 1 + rng.int(8); i++) d[rng.int(d.length)] = 1 << rng.int(8) // sparse
  else if (shape === 2) { // long runs of 0xff crossing vectors, halves and blocks
    for (let i = 0; i < 1 + rng.int(6); i++) { const s = rng.int(d.length); d.fill(0xff, s, Math.min(d.length, s + rng.int(1200))) }
  } else if (shape === 3) d.fill(0xff) // all ones
  else if (shape === 4) { // sparse with set bits on lane edges (bits 63/64 of a vector, 127/128)
    for (let i = 0; i < 6; i++) { const v = rng.int(d.length / 16) * 16; d[v + (rng.bool() ? 7 : 15)]! |= 0x80; d[v + (rng.bool() ? 8 : 0)]! |= 1 }
  }
  return d
}

function countWith(k: BlockKernel, data: Uint8Array, nblocks: number, carry: number): { ones: number[]; runs: number[]; carry: number } {
  const totals = { ones: [] as number[], runs: [] as number[] }
  let onesAcc = 100
  let runsAcc = 10
  for (let b = 0; b < nblocks; b += PIECE_BLOCKS) {
    const n = Math.min(PIECE_BLOCKS, nblocks - b)
    k.piece.set(data.subarray(b * BLOCK_BYTES, (b + n) * BLOCK_BYTES))
    carry = k.count(n, carry, onesAcc, runsAcc)
    totals.ones.push(...k.ones.subarray(0, n))
    totals.runs.push(...k.runs.subarray(0, n))
    onesAcc = totals.ones.at(-1)!
    runsAcc = totals.runs.at(-1)!
  }
  return { ...totals, carry }
}

describe('the WebAssembly kernel', () => {
  it('the committed kernel-wasm.bytes.ts is what scripts/build-wasm.mjs builds from kernel-wasm.wat', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/build-wasm.mjs'), '--check'], { encoding: 'utf8' })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
  })

  it('is the kernel that runs in Node: a fall back to the JS kernel fails this test', async () => {
    expect(kernelInfo()).toEqual({ kind: 'wasm' })
    const k = createKernel()
    expect(k.info).toEqual({ kind: 'wasm' })
    expect(k.piece.length).toBe(PIECE_BYTES)
    // A reader's scan and describeImage's readers count with it too.
    const built = buildQcow2({ clusterBits: 12, size: 64 << 20, bitmaps: [{ name: 'b', granularityBits: 9, data: new Rng(3).bytes(8192) }] })
    const img = await openImage(new MemoryDevice(built.bytes))
    const r = new BitmapReader(img.device, img.bitmaps[0]!, img.header.diskLength, img.header.clusterSize)
    expect(r.kernel).toBeUndefined()
    await r.scan()
    expect(r.kernel).toEqual({ kind: 'wasm' })
    const readers = new Map<number, BitmapReader>()
    await describeImage(img, { readers })
    expect(readers.get(0)?.kernel).toEqual({ kind: 'wasm' })
    expect(readerFor(img, img.bitmaps[0]!, readers)).toBe(readers.get(0))
  })

  it('equals the JS kernel and a bit-by-bit count: dense, sparse, runs, all ones, lane edges; any carry', () => {
    const rng = new Rng(2024)
    const wasm = createKernel()
    const js = createKernel('js')
    expect(wasm.info.kind).toBe('wasm')
    expect(js.info.kind).toBe('js')
    for (let t = 0; t < 300; t++) {
      const shape = t % 5
      const nblocks = 1 + rng.int(t < 290 ? 9 : 2 * PIECE_BLOCKS + 3)
      const data = randomData(rng, nblocks, shape)
      const carry = rng.int(2)
      const want = naiveCounts(data, nblocks, carry)
      const ctx = `case ${t}: shape ${shape}, ${nblocks} blocks, carry ${carry}`
      expect(countWith(wasm, data, nblocks, carry), ctx).toEqual(want)
      expect(countWith(js, data, nblocks, carry), ctx).toEqual(want)
    }
  })

  it('a zero half after a non-zero one is counted, and set bits after zero halves are not skipped', () => {
    // Blocks: [zero, zero | bit 4095], [bit 0 | zero], [zero, 0x80 at the last byte of the first half]
    const data = new Uint8Array(3 * BLOCK_BYTES)
    data[BLOCK_BYTES - 1] = 0x80
    data[BLOCK_BYTES] = 0x01
    data[2 * BLOCK_BYTES + 255] = 0x80
    for (const carry of [0, 1]) {
      const want = naiveCounts(data, 3, carry)
      expect(countWith(createKernel(), data, 3, carry)).toEqual(want)
    }
  })
})

describe('the JS fallback is visible', () => {
  afterEach(() => {
    vi.unstubAllGlobals()
    vi.resetModules()
  })

  it('a reader asked for the JS kernel says so, with the reason, and counts the same', async () => {
    const built = buildQcow2({ clusterBits: 9, size: 64 << 20, bitmaps: [{ name: 'b', granularityBits: 9, data: new Rng(9).bytes(4096) }] })
    const img = await openImage(new MemoryDevice(built.bytes))
    const b = img.bitmaps[0]!
    const js = new BitmapReader(img.device, b, img.header.diskLength, img.header.clusterSize, { kernel: 'js' })
    const wasm = new BitmapReader(img.device, b, img.header.diskLength, img.header.clusterSize)
    await Promise.all([js.scan(), wasm.scan()])
    expect(js.kernel).toEqual({ kind: 'js', fallbackReason: 'the JS kernel was asked for' })
    expect(wasm.kernel).toEqual({ kind: 'wasm' })
    expect([js.setBits, js.runCount]).toEqual([wasm.setBits, wasm.runCount])
  })

  it('on a platform without WebAssembly the kernel is the JS one and says why', async () => {
    vi.stubGlobal('WebAssembly', undefined)
    vi.resetModules()
    const choice = await import('./kernel-choice.js')
    expect(choice.kernelInfo()).toEqual({ kind: 'js', fallbackReason: 'this platform has no WebAssembly' })
  })
})
