import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  BLOCK_GRANULES, MAX_CELL_CSS_PX, type MapCanvas, type MapGrid, type MapOrder, type MapView, type Segment, allowedCellBytes, cellOfByte,
  cellOrigins, cellXY, clampMapView, fitWhole, gridRange, hitCell, indexAt, layoutMap, mapCellRange, panMap, rangeOutline, rectRange,
  rowRange, rowSpanBytes, usedHeightPx, zoomMap,
} from './layout.js'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const TiB = 1024 * GiB
/** The map's pane at a 1280×800 window (the centre column, measured in e2e). */
const PANE: MapCanvas = { width: 908, height: 300, minPx: 1 }
const ORDERS: MapOrder[] = ['rows', 'hilbert']

describe('allowedCellBytes', () => {
  it('gives whole granules below a block and whole blocks from a block up', () => {
    const g = 64 * KiB
    const block = g * BLOCK_GRANULES
    expect(allowedCellBytes(1, g)).toBe(g)
    expect(allowedCellBytes(g + 1, g)).toBe(2 * g)
    expect(allowedCellBytes(g + 1, g, 'down')).toBe(g)
    expect(allowedCellBytes(block + 1, g)).toBe(2 * block)
    expect(allowedCellBytes(3 * block - 1, g, 'down')).toBe(2 * block)
    expect(allowedCellBytes(block - 1, g, 'up')).toBe(block)
  })
})

describe('fitWhole', () => {
  it('shows a 256 TiB disk at 64 KiB granules in at least 250,000 block-aligned cells', () => {
    const v = fitWhole(PANE, 'rows', 256 * TiB, 64 * KiB)
    const g = layoutMap(v, PANE, 'rows', 256 * TiB)
    expect(g.count).toBeGreaterThanOrEqual(250_000)
    expect(v.cellBytes % (64 * KiB * BLOCK_GRANULES)).toBe(0)
    expect(g.count * g.cellBytes).toBeGreaterThanOrEqual(256 * TiB)
    expect(v.cellBytes).toBe(1 * GiB) // 4 blocks of 256 MiB
  })

  it('shows a 2 TiB disk in at least 250,000 cells of whole granules', () => {
    for (const order of ORDERS) {
      const v = fitWhole(PANE, order, 2 * TiB, 64 * KiB)
      const g = layoutMap(v, PANE, order, 2 * TiB)
      expect(g.count).toBeGreaterThanOrEqual(order === 'rows' ? 250_000 : 0.85 * 250_000)
      expect(v.cellBytes % (64 * KiB)).toBe(0)
      expect(g.count * g.cellBytes).toBeGreaterThanOrEqual(2 * TiB)
    }
  })

  it('makes granule cells larger on a disk with fewer granules than the pane has pixels', () => {
    const v = fitWhole(PANE, 'rows', 256 * MiB, 64 * KiB) // 4096 granules
    expect(v.cellBytes).toBe(64 * KiB)
    expect(v.cellPx).toBeGreaterThan(1)
    const g = layoutMap(v, PANE, 'rows', 256 * MiB)
    expect(g.count).toBe(4096)
    expect(layoutMap({ ...v, cellPx: v.cellPx + 1 }, PANE, 'rows', 256 * MiB).capacity).toBeLessThan(4096)
  })
})

describe('cells and pixels', () => {
  const grid = (order: MapOrder): MapGrid => layoutMap(fitWhole(PANE, order, 2 * TiB + 5 * MiB, 64 * KiB), PANE, order, 2 * TiB + 5 * MiB)

  it('covers the disk with contiguous cells, the last one clipped to the disk', () => {
    for (const order of ORDERS) {
      const g = grid(order)
      let at = 0
      for (const i of [0, 1, 2, g.count - 2, g.count - 1]) {
        const r = mapCellRange(g, i)
        if (i < 3) { expect(r.offset).toBe(at); at += r.length }
        expect(r.length).toBeGreaterThan(0)
      }
      const last = mapCellRange(g, g.count - 1)
      expect(last.offset + last.length).toBe(2 * TiB + 5 * MiB)
      expect(gridRange(g)).toEqual({ start: 0, end: 2 * TiB + 5 * MiB })
    }
  })

  it('cellXY and indexAt are inverses, and every cell has its own square of pixels', () => {
    for (const order of ORDERS) {
      const g = layoutMap({ start: 0, cellBytes: 64 * KiB, cellPx: 3, whole: false }, { width: 200, height: 90, minPx: 1 }, order, 1 * TiB)
      const seen = new Set<number>()
      const origins = cellOrigins(g, 200)
      for (let i = 0; i < g.capacity; i++) {
        const { col, row } = cellXY(g, i)
        expect(indexAt(g, col, row)).toBe(i)
        expect(origins[i]).toBe(row * 3 * 200 + col * 3)
        seen.add(origins[i]!)
        expect(hitCell(g, col * 3 + 2, row * 3 + 1)).toBe(i)
      }
      expect(seen.size).toBe(g.capacity)
    }
  })

  it('finds no cell past the disk or outside the grid', () => {
    const g = layoutMap({ start: 0, cellBytes: 64 * KiB, cellPx: 1, whole: false }, PANE, 'rows', 100 * 64 * KiB)
    expect(g.count).toBe(100)
    expect(hitCell(g, 99, 0)).toBe(99)
    expect(hitCell(g, 100, 0)).toBe(-1)
    expect(hitCell(g, 5000, 0)).toBe(-1)
    expect(cellOfByte(g, 64 * KiB * 7 + 3)).toBe(7)
  })

  it('the canvas ends at the last row holding disk bytes', () => {
    const g = layoutMap({ start: 0, cellBytes: 64 * KiB, cellPx: 4, whole: false }, { width: 400, height: 400, minPx: 1 }, 'rows', 250 * 64 * KiB)
    expect(g.cols).toBe(100)
    expect(usedHeightPx(g)).toBe(3 * 4) // 250 cells: three rows
    const big = layoutMap({ start: 0, cellBytes: 64 * KiB, cellPx: 4, whole: false }, { width: 400, height: 400, minPx: 1 }, 'rows', 1 * TiB)
    expect(usedHeightPx(big)).toBe(400)
  })

  it('a row of cells is one contiguous range; a rectangle spans its first to its last cell', () => {
    const g = layoutMap({ start: 4 * GiB, cellBytes: 1 * MiB, cellPx: 2, whole: false }, { width: 200, height: 100, minPx: 1 }, 'rows', 1 * TiB)
    expect(g.cols).toBe(100)
    expect(rowSpanBytes(g)).toBe(100 * MiB)
    expect(rowRange(g, 3)).toEqual({ start: 4 * GiB + 300 * MiB, end: 4 * GiB + 400 * MiB })
    expect(rectRange(g, 10, 2, 5, 4)).toEqual({ start: 4 * GiB + (2 * 100 + 5) * MiB, end: 4 * GiB + (4 * 100 + 10 + 1) * MiB })
  })
})

describe('zoomMap and panMap', () => {
  const disk = 2 * TiB
  const gran = 64 * KiB

  it('refines the cells step by step down to single granules, then enlarges them, and back out to the whole disk', () => {
    for (const order of ORDERS) {
      let v: MapView = fitWhole(PANE, order, disk, gran)
      const whole = v
      let steps = 0
      while (v.cellBytes > gran) {
        const before = v.cellBytes
        v = zoomMap(v, -1, 400, 150, PANE, order, disk, gran)
        expect(v.cellBytes).toBeLessThan(before)
        expect(v.start % v.cellBytes).toBe(0)
        steps++
        expect(steps).toBeLessThan(40)
      }
      expect(v.cellBytes).toBe(gran)
      const px = v.cellPx
      v = zoomMap(v, -1, 400, 150, PANE, order, disk, gran)
      expect(v.cellPx).toBe(px * 2)
      for (let i = 0; i < 20; i++) v = zoomMap(v, -1, 400, 150, PANE, order, disk, gran)
      expect(v.cellPx).toBe(MAX_CELL_CSS_PX)
      for (let i = 0; i < 60 && !v.whole; i++) v = zoomMap(v, 1, 400, 150, PANE, order, disk, gran)
      expect(v).toEqual(whole)
    }
  })

  it('keeps the byte under the pointer under it (within a cell) when zooming in', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: PANE.width - 1 }), fc.integer({ min: 0, max: PANE.height - 1 }), fc.integer({ min: 0, max: 12 }), (x, y, depth) => {
      let v = fitWhole(PANE, 'rows', disk, gran)
      for (let i = 0; i < depth; i++) v = zoomMap(v, -1, x, y, PANE, 'rows', disk, gran)
      const g = layoutMap(v, PANE, 'rows', disk)
      fc.pre(hitCell(g, x, y) >= 0) // the pointer is on a cell
      const before = mapCellRange(g, hitCell(g, x, y))
      const across = x / g.cellPx - Math.floor(x / g.cellPx)
      const mid = before.offset + Math.floor(across * g.cellBytes)
      const n = zoomMap(v, -1, x, y, PANE, 'rows', disk, gran)
      const ng = layoutMap(n, PANE, 'rows', disk)
      const i = hitCell(ng, x, y)
      // Near the disk's ends the view cannot move further: the byte stays on the map.
      const at = cellOfByte(ng, mid)
      expect(at).toBeGreaterThanOrEqual(0)
      expect(at).toBeLessThan(ng.count)
      // Unless the view had to stop at an end of the disk, the byte is in the cell under the pointer.
      if (i >= 0 && n.start > 0 && n.start + ng.capacity * n.cellBytes < disk) expect(at).toBe(i)
    }), { numRuns: 200 })
  })

  it('pans by whole rows and stops at both ends of the disk', () => {
    let v = zoomMap(fitWhole(PANE, 'rows', disk, gran), -1, 0, 0, PANE, 'rows', disk, gran)
    const g = layoutMap(v, PANE, 'rows', disk)
    expect(v.start).toBe(0)
    expect(panMap(v, -1, PANE, 'rows', disk, gran)).toBe(v)
    const down = panMap(v, 1, PANE, 'rows', disk, gran)
    expect(down.start).toBe(rowSpanBytes(g))
    v = panMap(v, 1e9, PANE, 'rows', disk, gran)
    const end = layoutMap(v, PANE, 'rows', disk)
    expect(gridRange(end).end).toBe(disk)
    expect(v.start + end.capacity * v.cellBytes).toBeGreaterThanOrEqual(disk)
    expect(v.start + end.capacity * v.cellBytes - disk).toBeLessThan(v.cellBytes)
  })

  it('clampMapView keeps start on the cell grid and inside the disk', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 48 }), fc.integer({ min: 9, max: 26 }), fc.double({ min: -1e15, max: 1e16, noNaN: true }), fc.integer({ min: 1, max: 2 ** 40 }), (d, gb, start, cb) => {
      const g = 2 ** gb
      const v = clampMapView({ start: Math.round(start), cellBytes: cb, cellPx: 1, whole: false }, PANE, 'rows', d, g)
      expect(v.start % v.cellBytes).toBe(0)
      expect(v.start).toBeGreaterThanOrEqual(0)
      expect(v.start === 0 || v.start < d).toBe(true)
      expect(v.cellBytes % g).toBe(0)
    }))
  })
})

/** Edges between cells in [i0, i1] and cells outside, by brute force over the grid. */
function bruteOutline(g: MapGrid, i0: number, i1: number): Set<string> {
  const inside = (c: number, r: number): boolean => { const i = indexAt(g, c, r); return i >= i0 && i <= i1 }
  const out = new Set<string>()
  for (let r = 0; r < g.rows; r++) {
    for (let c = 0; c < g.cols; c++) {
      if (!inside(c, r)) continue
      if (!inside(c, r - 1)) out.add(`h${c},${r}`)
      if (!inside(c, r + 1)) out.add(`h${c},${r + 1}`)
      if (!inside(c - 1, r)) out.add(`v${c},${r}`)
      if (!inside(c + 1, r)) out.add(`v${c + 1},${r}`)
    }
  }
  return out
}

/** Unit edges a set of segments draws. */
function unitEdges(segs: Segment[]): Set<string> {
  const out = new Set<string>()
  for (const [x1, y1, x2, y2] of segs) {
    if (y1 === y2) for (let x = Math.min(x1, x2); x < Math.max(x1, x2); x++) out.add(`h${x},${y1}`)
    else for (let y = Math.min(y1, y2); y < Math.max(y1, y2); y++) out.add(`v${x1},${y}`)
  }
  return out
}

describe('rangeOutline', () => {
  it('draws exactly the edges between the range and the rest, in both orders', () => {
    for (const order of ORDERS) {
      const g = layoutMap({ start: 0, cellBytes: 1, cellPx: 1, whole: false }, { width: 37, height: 19, minPx: 1 }, order, 10_000)
      fc.assert(fc.property(fc.integer({ min: 0, max: g.count - 1 }), fc.integer({ min: 0, max: g.count - 1 }), (a, b) => {
        const i0 = Math.min(a, b)
        const i1 = Math.max(a, b)
        expect(unitEdges(rangeOutline(g, i0, i1 + 1))).toEqual(bruteOutline(g, i0, i1))
      }), { numRuns: 150 })
    }
  })

  it('outlines the cells a byte range touches, even a range inside one cell', () => {
    const g = layoutMap({ start: 0, cellBytes: 1 * MiB, cellPx: 1, whole: false }, { width: 10, height: 10, minPx: 1 }, 'rows', 1 * GiB)
    expect(unitEdges(rangeOutline(g, 5 * MiB + 10, 5 * MiB + 20))).toEqual(bruteOutline(g, 5, 5))
    expect(rangeOutline(g, 5 * MiB, 5 * MiB)).toEqual([])
  })
})
