// qbm diff against QEMU: every set operation equals the same operation computed from
// nbdinfo --map (through qemu-nbd -B) of A and B, on fixtures with several granularities.
import { describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { TESTDATA, nbdDirtyExtents, qbm } from '../test-support/tools.js'

type Ext = { offset: number; length: number }

/** Reference set operation over two merged extent lists, by sweeping boundaries. */
function setOp(a: Ext[], b: Ext[], op: string): Ext[] {
  const pts = [...new Set([...a, ...b].flatMap((e) => [e.offset, e.offset + e.length]))].sort((x, y) => x - y)
  const inside = (l: Ext[], x: number): boolean => l.some((e) => e.offset <= x && x < e.offset + e.length)
  const out: Ext[] = []
  for (let i = 0; i + 1 < pts.length; i++) {
    const x = pts[i]!
    const ia = inside(a, x), ib = inside(b, x)
    const keep = op === 'union' ? ia || ib : op === 'intersect' ? ia && ib : op === 'minus' ? ia && !ib : ia !== ib
    if (!keep) continue
    const last = out[out.length - 1]
    if (last && last.offset + last.length === x) last.length += pts[i + 1]! - x
    else out.push({ offset: x, length: pts[i + 1]! - x })
  }
  return out
}

const CASES: Array<[string, string, string]> = [
  ['granularities', 'g-512', 'g-64k'],
  ['granularities', 'g-1m', 'g-4k'],
  ['granularities', 'g-2g', 'g-512'],
  ['cs512-g512', 'g512', 'g4k'],
  ['refcount-bits-1', 'b0', 'fine'],
]

describe('qbm diff equals set operations on nbdinfo --map', () => {
  for (const [fixture, a, b] of CASES) {
    it(`${fixture}: ${a} vs ${b}`, () => {
      const img = join(TESTDATA, 'images', `${fixture}.qcow2`)
      const ea = nbdDirtyExtents(img, a)
      const eb = nbdDirtyExtents(img, b)
      expect(ea.length + eb.length).toBeGreaterThan(0)
      for (const op of ['union', 'intersect', 'minus', 'xor']) {
        const r = qbm(['diff', img, a, b, '--op', op, '--output=json'])
        expect(r.stderr).toBe('')
        expect(r.code).toBe(0)
        expect(JSON.parse(r.stdout), op).toEqual(setOp(ea, eb, op))
      }
    })
  }
  it('refuses an unknown operation with a one-line usage error', () => {
    const r = qbm(['diff', join(TESTDATA, 'images', 'granularities.qcow2'), 'g-512', 'g-4k', '--op', 'and'])
    expect(r.code).toBe(1)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/--op must be one of/)
  })
})
