import { describe, expect, it } from 'vitest'
import { type SetOp, SET_OPS, combineExtents, heatmapFromExtents } from './algebra.js'
import { cellBoundaries } from './heatmap.js'
import type { Extent } from './extents.js'

function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32)
}

/** Random merged extents over [0, size). */
function randomExtents(r: () => number, size: number, n: number): Extent[] {
  const pts = new Set<number>()
  n = Math.min(n, Math.floor(size / 2))
  while (pts.size < 2 * n) pts.add(Math.floor(r() * size))
  const sorted = [...pts].sort((a, b) => a - b)
  const out: Extent[] = []
  for (let i = 0; i + 1 < sorted.length; i += 2) out.push({ offset: sorted[i]!, length: sorted[i + 1]! - sorted[i]! })
  return out
}

function toBytes(ext: Extent[], size: number): Uint8Array {
  const b = new Uint8Array(size)
  for (const e of ext) b.fill(1, e.offset, e.offset + e.length)
  return b
}

function fromBytes(b: Uint8Array): Extent[] {
  const out: Extent[] = []
  for (let i = 0; i < b.length; i++) {
    if (!b[i]) continue
    const s = i
    while (i < b.length && b[i]) i++
    out.push({ offset: s, length: i - s })
  }
  return out
}

const OPS: Record<SetOp, (a: number, b: number) => number> = {
  union: (a, b) => a | b, intersect: (a, b) => a & b, minus: (a, b) => a & ~b & 1, xor: (a, b) => a ^ b,
}

async function collect(it: AsyncIterable<Extent>): Promise<Extent[]> {
  const out: Extent[] = []
  for await (const e of it) out.push(e)
  return out
}

describe('combineExtents', () => {
  it('equals a byte-by-byte model for random inputs and every operation', async () => {
    const r = rng(7)
    for (let t = 0; t < 200; t++) {
      const size = 1 + Math.floor(r() * 3000)
      const a = randomExtents(r, size, Math.floor(r() * 12))
      const b = randomExtents(r, size, Math.floor(r() * 12))
      const ba = toBytes(a, size)
      const bb = toBytes(b, size)
      for (const op of SET_OPS) {
        const want = fromBytes(ba.map((x, i) => OPS[op](x, bb[i]!)))
        expect(await collect(combineExtents(a, b, op)), `${op} case ${t}`).toEqual(want)
      }
    }
  })
  it('handles empty inputs', async () => {
    expect(await collect(combineExtents([], [{ offset: 5, length: 3 }], 'union'))).toEqual([{ offset: 5, length: 3 }])
    expect(await collect(combineExtents([], [{ offset: 5, length: 3 }], 'intersect'))).toEqual([])
    expect(await collect(combineExtents([{ offset: 0, length: 2 }], [], 'minus'))).toEqual([{ offset: 0, length: 2 }])
  })
})

describe('heatmapFromExtents', () => {
  it('counts the overlap of every extent with every cell', async () => {
    const r = rng(11)
    for (let t = 0; t < 100; t++) {
      const size = 1 + Math.floor(r() * 5000)
      const ext = randomExtents(r, size, Math.floor(r() * 20))
      const start = Math.floor(r() * size)
      const end = start + Math.floor(r() * (size - start))
      const cells = 1 + Math.floor(r() * 50)
      const xs = cellBoundaries(start, end, cells)
      const bytes = toBytes(ext, size)
      const want = Array.from({ length: cells }, (_, i) => bytes.subarray(xs[i]!, xs[i + 1]!).reduce((s, x) => s + x, 0))
      expect(Array.from(await heatmapFromExtents(ext, start, end, cells, xs)), `case ${t}`).toEqual(want)
    }
  })
})
