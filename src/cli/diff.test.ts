// qbm diff against QEMU: every set operation equals the same operation computed from
// nbdinfo --map (through qemu-nbd -B) of A and B, on fixtures with several granularities.
import { describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { TESTDATA, nbdDirtyExtents, qbm } from '../test-support/tools.js'
import { setOp } from '../test-support/reference.js'

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

describe('qbm diff --save NAME: the result as a new bitmap, for QEMU', () => {
  it('every operation, saved: qemu-img check is clean, the new bitmap is disabled at the finer granularity, nbdinfo shows exactly the result', async () => {
    const { copyFileSync, mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { execFileSync } = await import('node:child_process')
    const dir = mkdtempSync(join(tmpdir(), 'qbm-diff-save-'))
    try {
      const src = join(TESTDATA, 'images', 'granularities.qcow2')
      const [a, b] = ['g-1m', 'g-4k']
      const ea = nbdDirtyExtents(src, a)
      const eb = nbdDirtyExtents(src, b)
      for (const op of ['union', 'intersect', 'minus', 'xor']) {
        const img = join(dir, `${op}.qcow2`)
        copyFileSync(src, img)
        const r = qbm(['diff', img, a, b, '--op', op, '--save', `r-${op}`, '--output=json'])
        expect(r.code, r.stderr).toBe(0)
        const want = setOp(ea, eb, op)
        expect(JSON.parse(r.stdout)).toEqual(want)
        execFileSync('qemu-img', ['check', img], { stdio: 'pipe' })
        const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', img], { encoding: 'utf8' })) as { 'format-specific': { data: { bitmaps: Array<{ name: string; granularity: number; flags: string[] }> } } }
        expect(info['format-specific'].data.bitmaps.find((x) => x.name === `r-${op}`)).toEqual({ name: `r-${op}`, granularity: 4096, flags: [] })
        expect(nbdDirtyExtents(img, `r-${op}`), op).toEqual(want)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
  it('refuses a taken name and leaves the file as it was', async () => {
    const { copyFileSync, mkdtempSync, readFileSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const dir = mkdtempSync(join(tmpdir(), 'qbm-diff-save-'))
    try {
      const img = join(dir, 'g.qcow2')
      copyFileSync(join(TESTDATA, 'images', 'granularities.qcow2'), img)
      const before = readFileSync(img)
      const r = qbm(['diff', img, 'g-1m', 'g-4k', '--op', 'minus', '--save', 'g-512'])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/Bitmap already exists: g-512/)
      expect(readFileSync(img).equals(before)).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
