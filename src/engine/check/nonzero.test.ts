/**
 * The check's zero skipper (nonzero.ts): the WebAssembly search and the JavaScript one find the
 * same non-zero 8-byte words as a plain loop, on buffers that are sparse, dense, or zero
 * everywhere but one word at a boundary of their steps; and Node runs the WebAssembly one.
 */
import { describe, expect, it } from 'vitest'
import { TableScanner } from './nonzero.js'

/** A small deterministic generator (xorshift32). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13; s >>>= 0
    s ^= s >>> 17
    s ^= s << 5; s >>>= 0
    return s
  }
}

/** Every answer of next() over [from, end), by a plain loop over the bytes. */
function plain(bytes: Uint8Array, from: number, end: number): number[] {
  const out: number[] = []
  for (let p = from; p < end; p += 8) if (bytes.subarray(p, p + 8).some((x) => x !== 0)) out.push(p)
  return out
}

function walk(s: TableScanner, from: number, end: number): number[] {
  const out: number[] = []
  for (let p = s.next(from, end); p < end; p = s.next(p + 8, end)) out.push(p)
  return out
}

describe('TableScanner', () => {
  it('runs the WebAssembly search in Node', () => {
    const s = new TableScanner()
    expect(s.fallbackReason).toBeUndefined()
    expect(s.kind).toBe('wasm')
    expect(new TableScanner('js').kind).toBe('js')
  })

  it('wasm and js find the same words as a plain loop (random buffers, ranges and densities)', () => {
    const next = rng(12)
    const scanners = [new TableScanner('wasm'), new TableScanner('js')]
    for (let round = 0; round < 300; round++) {
      const length = 8 * (1 + (next() % 40000)) // up to ~320 KiB: the buffer grows past its first page
      const density = [0, 1e-4, 1e-2, 0.5][round % 4]!
      const words: Array<[number, number]> = []
      for (let p = 0; p < length; p += 8) {
        if (next() / 2 ** 32 < density) words.push([p + (next() % 8), 1 + (next() % 255)])
      }
      // one word on each side of a 64-byte step now and then
      if (round % 3 === 0 && length > 128) words.push([56, 7], [64, 9], [length - 8, 3])
      const from = 8 * (next() % (length / 8))
      const end = from + 8 * (next() % ((length - from) / 8 + 1))
      let expected: number[] | undefined
      for (const s of scanners) {
        const buf = s.buffer(length)
        buf.fill(0)
        for (const [at, v] of words) buf[at] = v
        expected ??= plain(buf, from, end)
        expect(walk(s, from, end), `${s.kind}, round ${round}, [${from}, ${end}) of ${length}`).toEqual(expected)
      }
    }
  })

  it('finds a word with only its top bit set (an entry with just the COPIED flag)', () => {
    for (const kind of ['wasm', 'js'] as const) {
      const s = new TableScanner(kind)
      const buf = s.buffer(65536)
      buf.fill(0)
      buf[40960] = 0x80
      expect(s.next(0, 65536), kind).toBe(40960)
      expect(s.next(40968, 65536), kind).toBe(65536)
      // the view reads the entry big-endian
      expect(s.view.getUint32(40960), kind).toBe(0x80000000)
    }
  })
})
