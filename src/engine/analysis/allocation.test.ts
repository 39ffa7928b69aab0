/**
 * splitByAllocation sweeps the allocation runs once alongside the extents. It must give exactly
 * what asking the allocation map about every extent separately gives, on every openable fixture
 * and bitmap (fragmented allocation, zero clusters, compressed, extended L2, external data files
 * the CLI test resolves; here: each image on its own), and on synthetic extent lists that jump
 * far, touch, and end at the disk's end.
 */
import { describe, expect, it } from 'vitest'
import { NodeFileDevice } from '../../io/node-file.js'
import { fixturePath, smallFixtures } from '../../test-support/fixtures.js'
import { openImage } from '../index.js'
import { readerFor, readable } from '../describe.js'
import { AllocationMap, type DirtySplit, kindOf, splitByAllocation } from './allocation.js'
import { type Extent, allExtents } from './extents.js'

async function naive(m: AllocationMap, extents: Extent[]): Promise<DirtySplit> {
  const s: DirtySplit = { dirty: 0, data: 0, zero: 0, unallocated: 0 }
  for (const e of extents) {
    s.dirty += e.length
    for await (const r of m.runs(e.offset, e.offset + e.length)) s[kindOf(r)] += r.length
  }
  return s
}

async function* iter(list: Extent[]): AsyncGenerator<Extent> { yield* list }

describe('splitByAllocation (one sweep) equals the per-extent split', () => {
  const fx = smallFixtures().filter((f) => f.qemuOpens && !f.tags.includes('external-data') && f.bitmaps.length > 0)
  it('has fixtures', () => { expect(fx.length).toBeGreaterThan(10) })
  it.each(fx.map((f) => [f.name, f] as const))('%s', async (_n, f) => {
    const dev = NodeFileDevice.open(fixturePath(f))
    try {
      const img = await openImage(dev)
      let m: AllocationMap
      try { m = await AllocationMap.open(img) } catch { return }
      const L = img.header.diskLength
      for (const b of img.bitmaps.filter(readable)) {
        const list: Extent[] = []
        for await (const e of allExtents(readerFor(img, b))) list.push(e)
        expect(await splitByAllocation(m, iter(list))).toEqual(await naive(m, list))
      }
      // synthetic: many small extents, far jumps, the very end of the disk
      const cs = img.header.clusterSize
      const synth: Extent[] = []
      for (let o = 0; o + 3 * cs < L && synth.length < 200; o += 7 * cs + 512) synth.push({ offset: o + 512, length: cs + 1024 })
      if (L > 4096) synth.push({ offset: L - 4096, length: 4096 })
      expect(await splitByAllocation(m, iter(synth))).toEqual(await naive(m, synth))
    } finally {
      dev.close()
    }
  })
})

describe('allocation map over more L2 tables than its cache holds', () => {
  it('equals qemu-img map, also with two walks interleaved (buffers of evicted tables are reused only when no walk reads them)', async () => {
    const { join } = await import('node:path')
    const { run, tempDir } = await import('../../test-support/tools.js')
    const tmp = tempDir('qbm-alloc-')
    try {
      const p = join(tmp.path, 'many-l2.qcow2')
      expect(run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', p, '8G']).code).toBe(0)
      // 4 KiB clusters: one L2 table covers 2 MiB; 200 writes 37 MiB apart need 200 tables (> 64)
      const cmds: string[] = []
      for (let i = 0; i < 200; i++) cmds.push('-c', `write -q ${i * 37 * 1024 * 1024 + (i % 5) * 4096} ${i % 3 === 0 ? '8k' : '4k'}`)
      for (let i = 0; i < 200; i += 7) cmds.push('-c', `write -q -z ${i * 37 * 1024 * 1024} 4k`)
      // a second island in the tables of even i (1.5 MiB in): a walk paused after the first
      // island has entries of the same table still to read
      for (let i = 0; i < 200; i += 2) cmds.push('-c', `write -q ${i * 37 * 1024 * 1024 + 1536 * 1024} 4k`)
      const w = run('qemu-io', ['-f', 'qcow2', ...cmds, p])
      expect(w.code, w.stderr).toBe(0)
      const q = run('qemu-img', ['map', '--output=json', '-f', 'qcow2', p])
      expect(q.code, q.stderr).toBe(0)
      const want = (JSON.parse(q.stdout) as Array<{ start: number; length: number; present: boolean; zero: boolean; data: boolean; offset?: number }>)
        .map((x) => ({ start: x.start, length: x.length, present: x.present, zero: x.zero, data: x.data, offset: x.data ? x.offset : undefined }))
      const dev = NodeFileDevice.open(p)
      try {
        const m = await AllocationMap.open(await openImage(dev))
        const strip = (r: { start: number; length: number; present: boolean; zero: boolean; data: boolean; offset?: number }): typeof want[number] =>
          ({ start: r.start, length: r.length, present: r.present, zero: r.zero, data: r.data, offset: r.data ? r.offset : undefined })
        const one: typeof want = []
        for await (const r of m.runs()) one.push(strip(r))
        expect(one).toEqual(want)
        // two walks, one from the start and one from the middle, stepped alternately
        const half = Math.floor(m.diskLength / 2 / 4096) * 4096
        const a = m.runs(0, half)
        const b = m.runs(half)
        const ra: typeof want = []
        const rb: typeof want = []
        // Step `a` into its first table with data and leave it suspended there; walk all of `b`
        // (more tables than the cache holds: a's table is evicted while a still reads it);
        // then finish `a`.
        for (;;) {
          const x = await a.next()
          if (x.done) break
          ra.push(strip(x.value))
          if (x.value.data) break
        }
        for (let y = await b.next(); !y.done; y = await b.next()) rb.push(strip(y.value))
        for (let x = await a.next(); !x.done; x = await a.next()) ra.push(strip(x.value))
        const joined = [...ra, ...rb]
        // the split at `half` may cut one run in two: merge it back
        const merged: typeof want = []
        for (const r of joined) {
          const last = merged[merged.length - 1]
          if (last && last.start + last.length === r.start && last.present === r.present && last.zero === r.zero && last.data === r.data && !r.data) last.length += r.length
          else merged.push({ ...r })
        }
        const wantMerged: typeof want = []
        for (const r of want) {
          const last = wantMerged[wantMerged.length - 1]
          if (last && last.start + last.length === r.start && last.present === r.present && last.zero === r.zero && last.data === r.data && !r.data) last.length += r.length
          else wantMerged.push({ ...r })
        }
        expect(merged.filter((r) => r.data)).toEqual(wantMerged.filter((r) => r.data))
        expect(merged.reduce((n, r) => n + r.length, 0)).toBe(m.diskLength)
      } finally {
        dev.close()
      }
    } finally {
      tmp.cleanup()
    }
  })
})
