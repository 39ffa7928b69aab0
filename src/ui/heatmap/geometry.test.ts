import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  INDEX_BLOCK_BITS, MIN_GRANULES, heatRequest, cellAtX, cellBoundary, cellUnderX, cellsMeeting, cellOfOffset, cellPixels, cellRange, cellsFor, clampView,
  offsetToX, panView, rulerTicks, tickLabel, viewAround, viewSpan, xToOffset, zoomView,
} from './geometry.js'
import { heatColor, rampPosition } from './colors.js'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const TiB = 1024 * GiB

describe('clampView', () => {
  it('keeps a valid view as it is', () => {
    expect(clampView({ start: 64 * KiB, end: 1 * MiB }, 1 * GiB, 64 * KiB)).toEqual({ start: 64 * KiB, end: 1 * MiB })
  })

  it('never zooms deeper than MIN_GRANULES granules', () => {
    const v = clampView({ start: 1 * MiB, end: 1 * MiB + 10 }, 1 * GiB, 64 * KiB)
    expect(viewSpan(v)).toBe(MIN_GRANULES * 64 * KiB)
    expect(v.start).toBe(1 * MiB)
  })

  it('moves a view that runs past the end back inside, keeping its span', () => {
    expect(clampView({ start: 1 * GiB - 64 * KiB, end: 1 * GiB + 960 * KiB }, 1 * GiB, 64 * KiB))
      .toEqual({ start: 1 * GiB - 1 * MiB, end: 1 * GiB })
  })

  it('shows the whole disk when asked for more than the disk', () => {
    expect(clampView({ start: -5, end: 10 * GiB }, 1 * GiB, 64 * KiB)).toEqual({ start: 0, end: 1 * GiB })
  })

  it('snaps both ends to granule boundaries except the end of a disk that ends mid-granule', () => {
    const disk = 1 * MiB + 512 // last granule is partial
    expect(clampView({ start: 0, end: disk }, disk, 64 * KiB)).toEqual({ start: 0, end: disk })
    const v = clampView({ start: 100_000, end: 700_000 }, disk, 64 * KiB)
    expect(v.start % (64 * KiB)).toBe(0)
    expect(v.end % (64 * KiB)).toBe(0)
  })

  it('holds its invariants for any input', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 2 ** 50 }), fc.integer({ min: 9, max: 31 }),
      fc.double({ min: -1e16, max: 1e16, noNaN: true }), fc.double({ min: -1e16, max: 1e16, noNaN: true }),
      (disk, gb, a, b) => {
        const g = 2 ** gb
        const v = clampView({ start: Math.round(Math.min(a, b)), end: Math.round(Math.max(a, b)) }, disk, g)
        expect(v.start).toBeGreaterThanOrEqual(0)
        expect(v.end).toBeLessThanOrEqual(disk)
        expect(viewSpan(v)).toBeGreaterThanOrEqual(Math.min(disk, g * MIN_GRANULES))
        expect(v.start % g).toBe(0)
        expect(v.end === disk || v.end % g === 0).toBe(true)
      },
    ))
  })
})

describe('zoomView and panView', () => {
  const disk = 2 * TiB
  const g = 64 * KiB

  it('keeps the anchor byte under the same pixel when zooming in', () => {
    const v = { start: 0, end: disk }
    const anchor = 512 * GiB // a quarter across
    const z = zoomView(v, 0.5, anchor, disk, g)
    expect(viewSpan(z)).toBe(1 * TiB)
    expect(offsetToX(anchor, z, 1000)).toBeCloseTo(offsetToX(anchor, v, 1000), 0)
  })

  it('zooms from the whole disk down to single granules and back out', () => {
    let v = { start: 0, end: disk }
    for (let i = 0; i < 100; i++) v = zoomView(v, 0.5, 3 * GiB, disk, g)
    expect(viewSpan(v)).toBe(MIN_GRANULES * g)
    expect(cellsFor(v, 1200, g)).toBe(MIN_GRANULES) // one cell per granule
    for (let i = 0; i < 100; i++) v = zoomView(v, 2, 3 * GiB, disk, g)
    expect(v).toEqual({ start: 0, end: disk })
  })

  it('pans by bytes and stops at both ends', () => {
    const v = { start: 1 * GiB, end: 2 * GiB }
    expect(panView(v, 256 * MiB, disk, g)).toEqual({ start: 1 * GiB + 256 * MiB, end: 2 * GiB + 256 * MiB })
    expect(panView(v, -5 * GiB, disk, g)).toEqual({ start: 0, end: 1 * GiB })
    expect(panView(v, 5 * TiB, disk, g)).toEqual({ start: disk - 1 * GiB, end: disk })
  })

  it('frames an extent with a margin', () => {
    const v = viewAround(10 * MiB, 4 * MiB, disk, g)
    expect(v.start).toBeLessThan(10 * MiB)
    expect(v.end).toBeGreaterThan(14 * MiB)
    expect(viewSpan(v)).toBe(6 * MiB)
  })
})

describe('offsets, pixels and cells', () => {
  it('maps pixels to offsets and back', () => {
    const v = { start: 1 * GiB, end: 2 * GiB }
    expect(xToOffset(0, v, 1000)).toBe(1 * GiB)
    expect(xToOffset(500, v, 1000)).toBe(1.5 * GiB)
    expect(xToOffset(1000, v, 1000)).toBe(2 * GiB - 1) // clamped inside the view
    expect(offsetToX(1.25 * GiB, v, 1000)).toBe(250)
  })

  it('cuts cells exactly as the engine does', () => {
    // engine: cell i covers [start + floor(i*len/N), start + floor((i+1)*len/N))
    const v = { start: 0, end: 1000 }
    expect(cellRange(v, 3, 0)).toEqual({ offset: 0, length: 333 })
    expect(cellRange(v, 3, 1)).toEqual({ offset: 333, length: 333 })
    expect(cellRange(v, 3, 2)).toEqual({ offset: 666, length: 334 })
  })

  it('stays exact when i*len passes 2^53', () => {
    const len = 2 ** 52 + 7
    const b = cellBoundary(0, len, 4093, 4000)
    expect(b).toBe(Number((4000n * BigInt(len)) / 4093n))
  })

  it('finds the cell under a pixel and the cell holding an offset', () => {
    expect(cellAtX(0, 800, 100)).toBe(0)
    expect(cellAtX(799.9, 800, 100)).toBe(99)
    expect(cellAtX(-3, 800, 100)).toBe(0)
    expect(cellAtX(900, 800, 100)).toBe(99)
    const v = { start: 0, end: 1000 }
    expect(cellOfOffset(332, v, 3)).toBe(0)
    expect(cellOfOffset(333, v, 3)).toBe(1)
    expect(cellOfOffset(999, v, 3)).toBe(2)
  })

  it('cellOfOffset is the inverse of cellRange for any view', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 1, max: 2 ** 45 }), fc.integer({ min: 1, max: 4000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (start, len, cells, t) => {
        const v = { start, end: start + len }
        const o = start + Math.floor(t * len)
        const i = cellOfOffset(o, v, cells)
        const r = cellRange(v, cells, i)
        expect(o).toBeGreaterThanOrEqual(r.offset)
        expect(o).toBeLessThan(r.offset + Math.max(1, r.length))
      },
    ))
  })

  it('gives neighbouring cells shared pixel edges covering the width', () => {
    let prev = 0
    for (let i = 0; i < 7; i++) {
      const [a, b] = cellPixels(i, 7, 100)
      expect(a).toBe(prev)
      prev = b
    }
    expect(prev).toBe(100)
  })

  it('asks for one cell per granule when granules fit, else one per pixel, never sub-byte cells', () => {
    expect(cellsFor({ start: 0, end: 100 * 64 * KiB }, 1200, 64 * KiB)).toBe(100)
    expect(cellsFor({ start: 0, end: 1 * TiB }, 1200, 64 * KiB)).toBe(1200)
    expect(cellsFor({ start: 0, end: 300 }, 1200, 512)).toBe(300)
  })
})

describe('heatRequest', () => {
  it('cuts whole index blocks when a pixel covers a block, so no cell edge needs a read', () => {
    const disk = 2 * TiB
    const g = 512
    const block = INDEX_BLOCK_BITS * g
    const r = heatRequest({ start: 0, end: disk }, 1440, g)
    expect(r.start).toBe(0)
    expect(r.cells).toBeLessThanOrEqual(1440)
    expect(r.cells).toBeGreaterThan(1400)
    expect(r.end).toBeGreaterThanOrEqual(disk)
    for (let i = 0; i <= r.cells; i++) expect(cellBoundary(r.start, r.end, r.cells, i) % block).toBe(0)
  })

  it('covers an unaligned zoomed view with block-aligned cells that end at most one cell past it', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 2 ** 44 }), fc.integer({ min: 1, max: 2 ** 44 }), fc.integer({ min: 100, max: 4000 }), fc.integer({ min: 9, max: 20 }),
      (start, len, w, gb) => {
        const g = 2 ** gb
        const v = { start, end: start + len }
        const r = heatRequest(v, w, g)
        expect(r.start).toBeLessThanOrEqual(v.start)
        expect(r.end).toBeGreaterThanOrEqual(v.end)
        expect(r.cells).toBeLessThanOrEqual(w)
        const block = INDEX_BLOCK_BITS * g
        if (len >= w * block) {
          const cell = (r.end - r.start) / r.cells
          expect(cell % block).toBe(0)
          expect(r.start % block).toBe(0)
          expect(r.end - v.end).toBeLessThan(cell)
        } else {
          expect(r).toEqual({ start: v.start, end: v.end, cells: cellsFor(v, w, g), snapped: false })
        }
      },
    ))
  })
})

describe('ruler', () => {
  it('labels offsets in the largest binary unit that stays exact', () => {
    expect(tickLabel(0)).toBe('0')
    expect(tickLabel(1 * TiB)).toBe('1 TiB')
    expect(tickLabel(18 * MiB + 256 * KiB)).toBe('18.25 MiB')
    expect(tickLabel(18 * MiB + 64 * KiB)).toBe('18496 KiB')
    expect(tickLabel(1536)).toBe('1.5 KiB')
  })

  it('places power-of-two ticks at least the minimum spacing apart', () => {
    const ticks = rulerTicks({ start: 0, end: 2 * TiB }, 1000, 90)
    expect(ticks[0]).toEqual({ offset: 0, x: 0, label: '0' })
    const step = ticks[1]!.offset - ticks[0]!.offset
    expect(Math.log2(step) % 1).toBe(0)
    expect(ticks[1]!.x - ticks[0]!.x).toBeGreaterThanOrEqual(90)
    expect(ticks.at(-1)!.offset).toBeLessThanOrEqual(2 * TiB)
  })

  it('starts at the first multiple of the step inside a zoomed view', () => {
    const ticks = rulerTicks({ start: 3 * MiB + 5, end: 4 * MiB }, 1000, 100)
    expect(ticks[0]!.offset).toBeGreaterThanOrEqual(3 * MiB + 5)
    for (const t of ticks) expect(t.x).toBeGreaterThanOrEqual(0)
  })
})

describe('colours', () => {
  it('shows clean cells in the track colour and any dirt visibly', () => {
    expect(rampPosition(0)).toBe(0)
    expect(heatColor(0, 'light')).toEqual([0xe6, 0xea, 0xef])
    expect(heatColor(1e-9, 'light')).not.toEqual(heatColor(0, 'light'))
    expect(heatColor(1, 'dark')).toEqual([0xff, 0xe0, 0x8a])
  })

  it('darkens monotonically with the dirty fraction on the light theme', () => {
    const lum = (c: readonly number[]) => c[0]! + c[1]! + c[2]!
    let last = Infinity
    for (const f of [0.001, 0.01, 0.1, 0.3, 0.6, 1]) {
      const l = lum(heatColor(f, 'light'))
      expect(l).toBeLessThan(last)
      last = l
    }
  })
})

describe('cellUnderX and cellsMeeting', () => {
  it('finds the cell under a pixel when the cells are the view, and by byte when they are wider', () => {
    const view = { start: 0, end: 1000 }
    expect(cellUnderX(25, 100, view, { view, cells: 10 }, 1000)).toEqual({ index: 2, offset: 200, length: 100 })
    // block-aligned cells wider than the view: 4 cells of 500 over [0, 2000)
    expect(cellUnderX(60, 100, view, { view: { start: 0, end: 2000 }, cells: 4 }, 1000)).toEqual({ index: 1, offset: 500, length: 500 })
    // the last cell is clipped to the disk
    expect(cellUnderX(99, 100, view, { view: { start: 0, end: 1200 }, cells: 4 }, 1000)).toEqual({ index: 3, offset: 900, length: 100 })
  })

  it('gives the cells that meet a byte range', () => {
    const c = { view: { start: 0, end: 1000 }, cells: 10 }
    expect(cellsMeeting(c, 150, 420, 1000)).toEqual({ first: 1, last: 5 })
    expect(cellsMeeting(c, 0, 5000, 1000)).toEqual({ first: 0, last: 10 })
  })
})
