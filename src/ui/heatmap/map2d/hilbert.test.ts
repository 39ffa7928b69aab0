import { describe, expect, it } from 'vitest'
import { hilbertDistance, hilbertPoint } from './hilbert.js'

describe('the Hilbert curve', () => {
  it('visits every cell of a square once, each step to a neighbouring cell', () => {
    for (const side of [1, 2, 4, 8, 64]) {
      const seen = new Set<string>()
      let prev: { x: number; y: number } | null = null
      for (let d = 0; d < side * side; d++) {
        const p = hilbertPoint(side, d)
        expect(p.x).toBeGreaterThanOrEqual(0)
        expect(p.y).toBeLessThan(side)
        seen.add(`${p.x},${p.y}`)
        if (prev) expect(Math.abs(p.x - prev.x) + Math.abs(p.y - prev.y)).toBe(1)
        prev = p
      }
      expect(seen.size).toBe(side * side)
    }
  })

  it('starts at the top-left corner and ends at the top-right one, so squares join left to right', () => {
    for (const side of [2, 16, 256]) {
      expect(hilbertPoint(side, 0)).toEqual({ x: 0, y: 0 })
      expect(hilbertPoint(side, side * side - 1)).toEqual({ x: side - 1, y: 0 })
    }
  })

  it('hilbertDistance inverts hilbertPoint', () => {
    for (const side of [2, 8, 128]) {
      for (let d = 0; d < side * side; d += 7) {
        const p = hilbertPoint(side, d)
        expect(hilbertDistance(side, p.x, p.y)).toBe(d)
      }
    }
  })

  it('keeps a quarter of the curve inside one quadrant (locality)', () => {
    const side = 32
    const q = (side * side) / 4
    for (let k = 0; k < 4; k++) {
      const xs = new Set<string>()
      for (let d = k * q; d < (k + 1) * q; d++) {
        const p = hilbertPoint(side, d)
        xs.add(`${Math.floor(p.x / (side / 2))},${Math.floor(p.y / (side / 2))}`)
      }
      expect(xs.size).toBe(1)
    }
  })
})
