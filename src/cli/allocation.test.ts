// Allocation map and incremental-backup estimate against QEMU: `qbm map --allocation` equals
// `qemu-img map --output=json` (data / zero / present / depth, byte for byte) on every fixture
// QEMU opens, and `qbm estimate` equals the split of nbdinfo's dirty extents by qemu-img map.
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TESTDATA, nbdDirtyExtents, qbm, qemuImg, requireTool, run, tempDir } from '../test-support/tools.js'
import { type MapRun, splitByMap } from '../test-support/reference.js'

type Run = MapRun

/** Merge adjacent runs with the same state, ignoring host offsets (qemu-img splits on them). */
function normalize(runs: Run[]): Array<[number, number, string]> {
  const out: Array<[number, number, string]> = []
  for (const r of runs) {
    const key = `${r.depth}/${r.present}/${r.zero}/${r.data}`
    const last = out[out.length - 1]
    if (last && last[2] === key && last[0] + last[1] === r.start) last[1] += r.length
    else out.push([r.start, r.length, key])
  }
  return out
}

const fixtures = (JSON.parse(readFileSync(join(TESTDATA, 'fixtures.json'), 'utf8')) as Array<{ name: string; file: string; qemuOpens: boolean; large?: boolean }>)
  .filter((f) => f.qemuOpens && !f.large)

describe('qbm map --allocation equals qemu-img map', () => {
  for (const f of fixtures) {
    it(f.name, () => {
      const dir = join(TESTDATA, 'images')
      const q = qemuImg(['map', '--output=json', '-U', f.file], dir)
      expect(q.code, q.stderr).toBe(0)
      const r = qbm(['map', f.file, '--allocation', '--output=json'], { cwd: dir })
      expect(r.stderr).toBe('')
      expect(normalize(JSON.parse(r.stdout))).toEqual(normalize(JSON.parse(q.stdout)))
    })
  }
})

describe('qbm estimate', () => {
  it('splits dirty bytes into data, zero and unallocated like qemu-img map does (fstrim case)', () => {
    requireTool('qemu-io')
    const t = tempDir()
    try {
      const img = join(t.path, 'trim.qcow2')
      expect(qemuImg(['create', '-f', 'qcow2', img, '64M']).code).toBe(0)
      expect(run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 16M', img]).code).toBe(0)
      expect(qemuImg(['bitmap', '--add', img, 'inc']).code).toBe(0)
      // After the checkpoint: new data, zero writes and discards (what fstrim sends) are all dirty.
      const io = run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 2 1M 1M', '-c', 'write -z 4M 2M', '-c', 'discard 8M 3M', '-c', 'write -P 3 40M 512k', img])
      expect(io.code, io.stderr).toBe(0)
      const dirty = nbdDirtyExtents(img, 'inc')
      const map: Run[] = JSON.parse(qemuImg(['map', '--output=json', img]).stdout)
      const s = splitByMap(dirty, map)
      const want = { dirtyBytes: s.dirty, dataBytes: s.data, zeroBytes: s.zero, unallocatedBytes: s.unallocated }
      expect(want.zeroBytes + want.unallocatedBytes).toBeGreaterThan(0)
      const r = qbm(['estimate', img, 'inc', '--output=json'])
      expect(r.stderr).toBe('')
      expect(JSON.parse(r.stdout)).toEqual({ bitmap: 'inc', ...want })
      console.log(`estimate (fstrim case): ${JSON.stringify(want)}`)
    } finally {
      t.cleanup()
    }
  })

  it('on an in-use bitmap says the next backup is full, exits 0 and prints the allocated data qemu-img map reports', () => {
    requireTool('qemu-io')
    const t = tempDir()
    try {
      const img = join(t.path, 'crashed.qcow2')
      expect(qemuImg(['create', '-f', 'qcow2', img, '64M']).code).toBe(0)
      expect(run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 3M', '-c', 'write -z 8M 1M', img]).code).toBe(0)
      expect(qemuImg(['bitmap', '--add', img, 'inc']).code).toBe(0)
      // A writer killed without closing the image leaves the bitmap in use (spec §10).
      run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 2 20M 5M', '-c', 'sigraise 9', img])
      const info = JSON.parse(qemuImg(['info', '--output=json', '-U', img]).stdout) as { 'format-specific': { data: { bitmaps: Array<{ name: string; flags: string[] }> } } }
      expect(info['format-specific'].data.bitmaps.find((b) => b.name === 'inc')?.flags).toContain('in-use')
      const map: Run[] = JSON.parse(qemuImg(['map', '--output=json', '-U', img]).stdout)
      const data = map.filter((r) => r.data).reduce((n, r) => n + r.length, 0)
      expect(data).toBe(8 * 1024 * 1024) // 3 MiB before the checkpoint, 5 MiB after; the zero write holds no data
      const j = qbm(['estimate', img, 'inc', '--output=json'])
      expect(j.code, j.stderr).toBe(0)
      const got = JSON.parse(j.stdout) as { inUse: boolean; nextBackup: string; fullBytes: number; storedBits: { dirtyBytes: number } }
      expect(got).toMatchObject({ bitmap: 'inc', inUse: true, nextBackup: 'full', fullBytes: data })
      expect(got.storedBits.dirtyBytes).toBe(0) // the stale stored bits: nothing at its last clean save
      const h = qbm(['estimate', img, 'inc'])
      expect(h.code).toBe(0)
      expect(h.stdout).toContain('the next backup from this checkpoint is a full one')
      expect(h.stdout).toContain(`(${data.toLocaleString('en-US')} bytes)`)
      expect(h.stderr).toContain('is in use')
    } finally {
      t.cleanup()
    }
  })
})
