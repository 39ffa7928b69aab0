/**
 * The Hilbert curve over a side×side square (side a power of two): distance along the curve ↔
 * cell position. The curve starts at (0, 0) and ends at (side - 1, 0), so squares placed left to
 * right join end to start. Neighbouring distances are always neighbouring cells, and a run of
 * consecutive distances fills a compact blob rather than a thin line: byte ranges that are close
 * on the disk stay close on the map.
 */

/** Position of distance d (0 ≤ d < side²) on the curve. */
export function hilbertPoint(side: number, d: number): { x: number; y: number } {
  let x = 0
  let y = 0
  let t = d
  for (let s = 1; s < side; s *= 2) {
    const rx = 1 & (t >>> 1)
    const ry = 1 & (t ^ rx)
    if (ry === 0) {
      if (rx === 1) {
        x = s - 1 - x
        y = s - 1 - y
      }
      const tmp = x
      x = y
      y = tmp
    }
    x += s * rx
    y += s * ry
    t = Math.floor(t / 4)
  }
  return { x, y }
}

/** Distance along the curve of the cell at (x, y), 0 ≤ x, y < side. */
export function hilbertDistance(side: number, x: number, y: number): number {
  let d = 0
  for (let s = side >>> 1; s > 0; s >>>= 1) {
    const rx = (x & s) > 0 ? 1 : 0
    const ry = (y & s) > 0 ? 1 : 0
    d += s * s * ((3 * rx) ^ ry)
    if (ry === 0) {
      if (rx === 1) {
        x = side - 1 - x
        y = side - 1 - y
      }
      const tmp = x
      x = y
      y = tmp
    }
  }
  return d
}
