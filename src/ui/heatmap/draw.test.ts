import { describe, expect, it } from 'vitest'
import { heatColor, overlayColor } from './colors.js'
import { cellEdges, columnFractions, overlayColumns, paint, paintOverlay } from './draw.js'

const heat = { view: { start: 0, end: 1000 }, cells: 10, counts: new Float64Array([0, 100, 50, 0, 0, 0, 0, 0, 0, 100]) }

describe('painting cells', () => {
  it('gives each column the dirty fraction of its cell', () => {
    const f = columnFractions(heat, { start: 0, end: 1000 }, 20)
    expect([...f.subarray(0, 6)]).toEqual([0, 0, 1, 1, 0.5, 0.5])
  })

  it('places cells fetched for another view by their bytes, leaving uncovered columns empty', () => {
    // showing [500, 1500): the heat covers only the first half of the columns
    const f = columnFractions(heat, { start: 500, end: 1500 }, 10)
    expect([...f.subarray(0, 5)]).toEqual([0, 0, 0, 0, 1])
    expect([...f.subarray(5)]).toEqual([-1, -1, -1, -1, -1])
  })

  it('shows the dirtiest cell when several share a column', () => {
    const f = columnFractions(heat, { start: 0, end: 1000 }, 2)
    expect([...f]).toEqual([1, 1])
  })

  it('measures the last cell only up to the end of the disk', () => {
    const h = { view: { start: 0, end: 1000 }, cells: 2, counts: new Float64Array([0, 300]) }
    expect(columnFractions(h, { start: 0, end: 800 }, 8, 800)[7]).toBeCloseTo(1)
  })

  it('marks granule edges only at granule-level zoom', () => {
    expect(cellEdges(heat, heat.view, 100)).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90])
    expect(cellEdges(heat, heat.view, 30)).toEqual([])
  })

  it('fills every row with the same colours', () => {
    const px = new Uint8ClampedArray(20 * 3 * 4)
    paint(px, 20, 3, heat, heat.view, 1000, 'light', [1, 2, 3], [9, 9, 9])
    const full = heatColor(1, 'light')
    expect([...px.subarray(2 * 4, 2 * 4 + 3)]).toEqual([...full])
    expect([...px.subarray(2 * 20 * 4 + 2 * 4, 2 * 20 * 4 + 2 * 4 + 3)]).toEqual([...full])
    expect([...px.subarray(0, 3)]).toEqual([...heatColor(0, 'light')])
  })
})

describe('overlay drawing', () => {
  const view = { start: 0, end: 4096 }
  const o = {
    view, cells: 4,
    dirtyData: new Float64Array([1024, 0, 0, 512]),
    dirtyZero: new Float64Array([0, 1024, 0, 0]),
    dirtyUnallocated: new Float64Array([0, 0, 0, 256]),
    cleanData: new Float64Array([0, 0, 1024, 0]),
  }
  it('sums each category per column: one cell per column, or several cells in one', () => {
    const one = overlayColumns(o, view, 4)
    expect([...one.bytes]).toEqual([1024, 1024, 1024, 1024])
    expect([...one.sums.dirtyData]).toEqual([1024, 0, 0, 512])
    expect([...one.sums.dirtyUnallocated]).toEqual([0, 0, 0, 256])
    const two = overlayColumns(o, view, 2)
    expect([...two.bytes]).toEqual([2048, 2048])
    expect([...two.sums.dirtyData]).toEqual([1024, 512])
    expect([...two.sums.dirtyZero]).toEqual([1024, 0])
    expect([...two.sums.cleanData]).toEqual([0, 1024])
  })
  it('paints a fully dirty-data column in the data colour top to bottom, and the zero column in its own', () => {
    const w = 4, h = 10
    const px = new Uint8ClampedArray(w * h * 4)
    paintOverlay(px, w, h, o, view, 4096, 'light', [1, 2, 3])
    const at = (x: number, y: number): number[] => [...px.slice((y * w + x) * 4, (y * w + x) * 4 + 3)]
    const data = [...overlayColor('dirtyData', 'light')]
    const zero = [...overlayColor('dirtyZero', 'light')]
    for (let y = 0; y < h; y++) expect(at(0, y)).toEqual(data)
    for (let y = 0; y < h; y++) expect(at(1, y)).toEqual(zero)
    expect(at(2, 0)).toEqual([...overlayColor('cleanData', 'light')]) // clean allocated: faint, whole height
    expect(at(3, h - 1)).toEqual(data) // partly dirty: data at the bottom
    expect(at(3, 0)).toEqual([...heatColor(0, 'light')]) // clean, unallocated above
  })
})
