import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CANVAS_DEFAULTS, heatColor, heatLutIndex, overlayColor, packRgb } from '../colors.js'
import { layoutMap, cellOrigins, type MapGrid } from './layout.js'
import { GAP_FROM_PX, mapPalette, overlayLevel, paintDirty, paintOverlayMap } from './paint.js'
import { cellShares, sameCells } from './resample.js'

const canvas = { width: 40, height: 10, minPx: 1 }
function grid(start: number, cellBytes: number, disk: number, cellPx = 1): MapGrid {
  return layoutMap({ start, cellBytes, cellPx, whole: false }, canvas, 'rows', disk)
}

describe('cellShares', () => {
  it('is exact when the counts were computed for the grid (last cell clipped to the disk)', () => {
    const g = grid(0, 100, 1050)
    expect(g.count).toBe(11)
    const counts = new Float64Array(11).map((_, i) => i * 10)
    counts[10] = 25 // the last cell holds 50 bytes of disk
    const [s] = cellShares(g, { start: 0, cellBytes: 100, count: 11 }, [counts])
    expect(sameCells(g, { start: 0, cellBytes: 100, count: 11 })).toBe(true)
    expect(s![3]).toBeCloseTo(0.3)
    expect(s![10]).toBeCloseTo(0.5)
  })

  it('shifts counts of the same cell size after a pan, unknown where nothing was counted', () => {
    const g = grid(300, 100, 10_000)
    const [s] = cellShares(g, { start: 0, cellBytes: 100, count: 5 }, [new Float64Array([0, 10, 20, 30, 40])])
    expect(s![0]).toBeCloseTo(0.3)
    expect(s![1]).toBeCloseTo(0.4)
    expect(Number.isNaN(s![2]!)).toBe(true)
  })

  it('gives each smaller cell its parent\'s share after a zoom in, and sums after a zoom out', () => {
    const coarse = { start: 0, cellBytes: 400, count: 4 }
    const counts = new Float64Array([400, 0, 100, 200])
    const [fine] = cellShares(grid(0, 100, 1600), coarse, [counts])
    expect([...fine!.slice(0, 12)].map((x) => Math.round(x * 100) / 100)).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0.25, 0.25, 0.25, 0.25])
    const [wide] = cellShares(grid(0, 800, 1600), coarse, [counts])
    expect(wide![0]).toBeCloseTo(0.5)
    expect(wide![1]).toBeCloseTo(300 / 800)
  })

  it('leaves cells unknown that the counts cover for less than half, or where a count is NaN (a scan still running)', () => {
    const [s] = cellShares(grid(0, 1000, 4000), { start: 0, cellBytes: 100, count: 14 }, [new Float64Array(14).fill(50)])
    expect(s![0]).toBeCloseTo(0.5)
    expect(Number.isNaN(s![1]!)).toBe(true) // 400 of its 1000 bytes counted
    const preview = new Float64Array([10, 20, NaN, NaN])
    const [p] = cellShares(grid(0, 100, 400), { start: 0, cellBytes: 100, count: 4 }, [preview])
    expect([p![0], p![1]]).toEqual([Math.fround(0.1), Math.fround(0.2)])
    expect(Number.isNaN(p![2]!)).toBe(true)
  })
})

describe('cellShares against a brute-force overlap', () => {
  /** Share of each grid cell from every source cell it overlaps (zoom in: the cell holding its first byte). */
  function brute(g: MapGrid, src: { start: number; cellBytes: number; count: number }, counts: Float64Array): number[] {
    const out: number[] = []
    for (let i = 0; i < g.count; i++) {
      const a = g.start + i * g.cellBytes
      const b = Math.min(g.diskLength, a + g.cellBytes)
      if (src.cellBytes > g.cellBytes) {
        const j = Math.floor((a - src.start) / src.cellBytes)
        const sa = src.start + j * src.cellBytes
        out.push(j >= 0 && j < src.count ? counts[j]! / (Math.min(g.diskLength, sa + src.cellBytes) - sa) : NaN)
        continue
      }
      let covered = 0
      let sum = 0
      for (let j = 0; j < src.count; j++) {
        const sa = src.start + j * src.cellBytes
        const sb = Math.min(g.diskLength, sa + src.cellBytes)
        const o = Math.min(b, sb) - Math.max(a, sa)
        if (o <= 0 || Number.isNaN(counts[j]!)) continue
        covered += o
        sum += counts[j]! * (o / (sb - sa))
      }
      out.push(covered * 2 >= b - a ? (src.cellBytes === g.cellBytes && (g.start - src.start) % g.cellBytes === 0 ? counts[(a - src.start) / g.cellBytes]! / (b - a) : sum / covered) : NaN)
    }
    return out
  }

  it('agrees for shifted, finer and coarser sources', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 60 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 60 }), fc.integer({ min: 50, max: 400 }),
      (cu, gStartCells, su, sStartCells, sCount, fr, disk) => {
        const g = grid(gStartCells * cu * 10, cu * 10, disk * 10)
        const src = { start: sStartCells * su * 10, cellBytes: su * 10, count: sCount }
        const counts = new Float64Array(sCount).map((_, j) => (fr[j % fr.length]! > 0.9 ? NaN : fr[j % fr.length]! * su * 10))
        const [got] = cellShares(g, src, [counts])
        const want = brute(g, src, counts)
        expect(got!.length).toBe(want.length)
        for (let i = 0; i < want.length; i++) {
          if (Number.isNaN(want[i]!)) expect(Number.isNaN(got![i]!), `cell ${i}`).toBe(true)
          else expect(got![i]!, `cell ${i}`).toBeCloseTo(want[i]!, 5)
        }
      },
    ), { numRuns: 300 })
  })
})

describe('painting the map', () => {
  const pal = mapPalette('light', CANVAS_DEFAULTS.light)

  it('paints each cell in the ramp colour of its share, unknown cells in the missing colour, the rest as panel', () => {
    const g = grid(0, 100, 1000, 2)
    const px = new Uint32Array(40 * 10)
    const shares = new Float32Array([0, 1, 0.25, NaN, 0, 0, 0, 0, 0, 0])
    paintDirty(px, 40, g, cellOrigins(g, 40), shares, pal)
    expect(px[0]).toBe(packRgb(heatColor(0, 'light')))
    expect(px[2]).toBe(pal.lut[heatLutIndex(1)])
    expect(px[2 + 40]).toBe(pal.lut[heatLutIndex(1)]) // a 2×2 square
    expect(px[4]).toBe(pal.lut[heatLutIndex(0.25)])
    expect(px[6]).toBe(packRgb(CANVAS_DEFAULTS.light.missing))
    expect(px[20]).toBe(packRgb(CANVAS_DEFAULTS.light.panel)) // past the disk's end (10 cells of 2 px)
  })

  it('one-pixel cells take the same colours as larger ones', () => {
    const shares = new Float32Array([0, 1e-6, 0.01, 0.3, 0.999, 1, NaN, 0.5, 0.02, 0.7])
    const one = grid(0, 100, 1000, 1)
    const a = new Uint32Array(40 * 10)
    paintDirty(a, 40, one, cellOrigins(one, 40), shares, pal)
    for (let i = 0; i < 10; i++) expect(a[i]).toBe(Number.isNaN(shares[i]!) ? pal.missing : pal.lut[heatLutIndex(shares[i]!)])
  })

  it('keeps a gap between granule cells drawn large', () => {
    const g = grid(0, 100, 1000, GAP_FROM_PX)
    const px = new Uint32Array(40 * 10)
    paintDirty(px, 40, g, cellOrigins(g, 40), new Float32Array(10).fill(1), pal)
    expect(px[0]).toBe(pal.lut[heatLutIndex(1)])
    expect(px[GAP_FROM_PX - 1]).toBe(pal.panel)
    expect(px[(GAP_FROM_PX - 1) * 40]).toBe(pal.panel)
  })

  it('colours an overlay cell by its dominant dirty class, clean data faintly', () => {
    expect(overlayLevel(0.1, 0.5, 0, 0).kind).toBe('dirtyZero')
    expect(overlayLevel(0, 0, 0.01, 0.9).kind).toBe('dirtyUnallocated')
    expect(overlayLevel(0, 0, 0, 0.9).kind).toBe('cleanData')
    expect(overlayLevel(0, 0, 0, 0).kind).toBe(null)
    const g = grid(0, 100, 300, 1)
    const px = new Uint32Array(40 * 10)
    const full = [new Float32Array([1, 0, 0]), new Float32Array([0, 0, 0]), new Float32Array([0, 0, 0]), new Float32Array([0, 1, 0])]
    paintOverlayMap(px, 40, g, cellOrigins(g, 40), full, pal)
    expect(px[0]).toBe(packRgb(overlayColor('dirtyData', 'light')))
    expect(px[2]).toBe(pal.clean)
  })
})
