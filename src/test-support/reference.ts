/**
 * Independent reference computations the tests compare qbm against, built only from what QEMU's
 * tools print (nbdinfo --map extents, qemu-img map runs). Deliberately naive: O(n·m) sweeps, no
 * engine code. Shared by the Vitest suites and the Playwright e2e.
 */

export interface Ext { offset: number; length: number }

/** A set operation over two merged extent lists, by sweeping every boundary. */
export function setOp(a: Ext[], b: Ext[], op: string): Ext[] {
  const pts = [...new Set([...a, ...b].flatMap((e) => [e.offset, e.offset + e.length]))].sort((x, y) => x - y)
  const inside = (l: Ext[], x: number): boolean => l.some((e) => e.offset <= x && x < e.offset + e.length)
  const out: Ext[] = []
  for (let i = 0; i + 1 < pts.length; i++) {
    const x = pts[i]!
    const ia = inside(a, x)
    const ib = inside(b, x)
    const keep = op === 'union' ? ia || ib : op === 'intersect' ? ia && ib : op === 'minus' ? ia && !ib : ia !== ib
    if (!keep) continue
    const last = out[out.length - 1]
    if (last && last.offset + last.length === x) last.length += pts[i + 1]! - x
    else out.push({ offset: x, length: pts[i + 1]! - x })
  }
  return out
}

/** A run of `qemu-img map --output=json`. */
export interface MapRun { start: number; length: number; depth: number; present: boolean; zero: boolean; data: boolean; offset?: number }

export interface Split { dirty: number; data: number; zero: number; unallocated: number }

/** Split byte ranges by qemu-img map: allocated data / present but zero / not present. */
export function splitByMap(ranges: Ext[], map: MapRun[]): Split {
  const s: Split = { dirty: 0, data: 0, zero: 0, unallocated: 0 }
  for (const d of ranges) {
    s.dirty += d.length
    for (const m of map) {
      const a = Math.max(d.offset, m.start)
      const b = Math.min(d.offset + d.length, m.start + m.length)
      if (b <= a) continue
      if (m.data) s.data += b - a
      else if (m.present) s.zero += b - a
      else s.unallocated += b - a
    }
  }
  return s
}
