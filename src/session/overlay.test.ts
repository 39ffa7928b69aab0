import { describe, expect, it } from 'vitest'
import type { AllocRun, Extent } from '../engine/index.js'
import { cellBoundaries } from '../engine/index.js'
import { ExtentStore } from './extent-store.js'
import { findCell, overlayCells, overlayTotals } from './overlay.js'

/** A tiny deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Kind = 'data' | 'zero' | 'unallocated'

/** Random allocation runs covering [0, L) and random merged dirty extents, byte by byte. */
function world(seed: number, L: number): { runs: AllocRun[]; dirty: Extent[]; kindAt: Kind[]; depthAt: number[]; dirtyAt: boolean[] } {
  const r = rng(seed)
  const runs: AllocRun[] = []
  const kindAt: Kind[] = []
  const depthAt: number[] = []
  let pos = 0
  while (pos < L) {
    const len = Math.min(L - pos, 1 + Math.floor(r() * 40))
    const k = (['data', 'zero', 'unallocated'] as const)[Math.floor(r() * 3)]!
    const depth = Math.floor(r() * 3)
    runs.push({ start: pos, length: len, depth, present: k !== 'unallocated', zero: k !== 'data', data: k === 'data' })
    for (let i = 0; i < len; i++) { kindAt.push(k); depthAt.push(depth) }
    pos += len
  }
  const dirtyAt: boolean[] = []
  let on = false
  for (let i = 0; i < L; i++) {
    if (r() < 0.08) on = !on
    dirtyAt.push(on)
  }
  const dirty: Extent[] = []
  for (let i = 0; i < L; i++) {
    if (!dirtyAt[i]) continue
    const last = dirty[dirty.length - 1]
    if (last && last.offset + last.length === i) last.length++
    else dirty.push({ offset: i, length: 1 })
  }
  return { runs, dirty, kindAt, depthAt, dirtyAt }
}

describe('overlayCells', () => {
  for (const seed of [1, 2, 3, 42, 99]) {
    it(`equals a byte-by-byte count (seed ${seed})`, async () => {
      const L = 2000
      const w = world(seed, L)
      for (const [start, end, cells] of [[0, L, 7], [0, L, 1], [123, 1777, 13], [0, 2048, 64]] as const) {
        const b = cellBoundaries(start, end, cells)
        const runs = w.runs.filter((x) => x.start + x.length > start && x.start < Math.min(end, L))
          .map((x) => ({ ...x, start: Math.max(x.start, start), length: Math.min(x.start + x.length, end, L) - Math.max(x.start, start) }))
        const got = await overlayCells(runs, w.dirty, b)
        const want = { dirtyData: new Float64Array(cells), dirtyZero: new Float64Array(cells), dirtyUnallocated: new Float64Array(cells), cleanData: new Float64Array(cells) }
        const layers = [new Float64Array(cells), new Float64Array(cells), new Float64Array(cells)]
        for (let i = start; i < Math.min(end, L); i++) {
          const c = findCell(b, i)
          expect(b[c]! <= i && i < b[c + 1]!).toBe(true)
          const k = w.kindAt[i]!
          if (w.dirtyAt[i]) (k === 'data' ? want.dirtyData : k === 'zero' ? want.dirtyZero : want.dirtyUnallocated)[c]!++
          else if (k === 'data') want.cleanData[c]!++
          if (k !== 'unallocated') layers[w.depthAt[i]!]![c]!++
        }
        expect(got.dirtyData).toEqual(want.dirtyData)
        expect(got.dirtyZero).toEqual(want.dirtyZero)
        expect(got.dirtyUnallocated).toEqual(want.dirtyUnallocated)
        expect(got.cleanData).toEqual(want.cleanData)
        for (let d = 0; d < got.layers.length; d++) expect(got.layers[d]).toEqual(layers[d])
        const t = overlayTotals(got)
        const dirtyIn = w.dirtyAt.slice(start, Math.min(end, L)).filter(Boolean).length
        expect(t.dirtyData + t.dirtyZero + t.dirtyUnallocated).toBe(dirtyIn)
      }
    })
  }
})

describe('ExtentStore', () => {
  it('pages, windows and between agree with a plain array', () => {
    const w = world(7, 5000)
    const s = new ExtentStore()
    for (const e of w.dirty) s.push(e)
    expect(s.count).toBe(w.dirty.length)
    expect(s.totalBytes).toBe(w.dirty.reduce((n, e) => n + e.length, 0))
    expect(s.page(3, 5)).toEqual(w.dirty.slice(3, 8))
    expect(s.page(s.count - 2, 10)).toEqual(w.dirty.slice(-2))
    const r = rng(5)
    for (let k = 0; k < 200; k++) {
      const a = Math.floor(r() * 5200)
      const b = a + Math.floor(r() * 800)
      const meet = w.dirty.map((e, i) => [e, i] as const).filter(([e]) => e.offset < b && e.offset + e.length > a)
      const win = s.window(a, b)
      expect(win.count).toBe(meet.length)
      if (meet.length > 0) expect(win.first).toBe(meet[0]![1])
      expect([...s.between(a, b)]).toEqual(meet.map(([e]) => e))
    }
  })
})
