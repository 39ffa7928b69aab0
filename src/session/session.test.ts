import { copyFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Plan, commitPlan } from '../engine/index.js'
import { NodeFileDevice } from '../io/node-file.js'
import { TESTDATA, nbdDirtyExtents, qemuImgCheck, qemuImgInfo, sh, tempDir } from '../test-support/tools.js'
import { type MapRun, splitByMap } from '../test-support/reference.js'
import type { OpenSource } from './api.js'
import type { OpenedSource, SessionHost } from './host.js'
import { EngineSession } from './session.js'

const IMAGES = join(TESTDATA, 'images')

/** A host over files in a directory, named by id = file name; backing files resolved in the same directory. */
function dirHost(dir: string, opts: { refuse?: string; resolve?: boolean; slowReadsMs?: number } = {}): SessionHost & { commits: number } {
  const host = {
    commits: 0,
    async open(source: OpenSource): Promise<OpenedSource> {
      if (source.kind !== 'host') throw new Error('only host sources here')
      const file = NodeFileDevice.open(join(dir, source.id))
      const ms = opts.slowReadsMs
      // A slow disk: every read waits, so a cancel lands between reads.
      const device = ms === undefined ? file : {
        get size() { return file.size },
        read: async (o: number, n: number) => { await new Promise((r) => setTimeout(r, ms)); return file.read(o, n) },
        close: () => file.close(),
      }
      return { device, name: source.id, fileName: source.id, writable: true, writeMode: 'in-place' as const }
    },
    ...(opts.resolve ? { resolveBacking: (_of: OpenSource, bf: string): OpenSource => ({ kind: 'host', id: bf }) } : {}),
    editsRefused: () => opts.refuse,
    async commit(source: OpenSource, _o: OpenedSource, plan: Plan, onProgress: (d: number, t: number, step: string) => void) {
      if (source.kind !== 'host') throw new Error('only host sources here')
      const dev = NodeFileDevice.open(join(dir, source.id), 'rw')
      try { await commitPlan(dev, plan, { onProgress }) } finally { dev.close() }
      host.commits++
    },
  }
  return host
}

const host = (id: string): OpenSource => ({ kind: 'host', id })

let dir: { path: string; cleanup: () => void }
beforeAll(() => {
  dir = tempDir('qbm-session-')
  for (const f of ['cs64k-basic.qcow2', 'backing-base.qcow2', 'backing-overlay.qcow2', 'in-use-killed.qcow2', 'many-bitmaps.qcow2']) {
    copyFileSync(join(IMAGES, f), join(dir.path, f))
  }
  // 128 bitmap data clusters (512 B granularity, one write per 256 MiB): long enough to cancel.
  const writes = Array.from({ length: 128 }, (_, i) => `-c 'write ${i * 256}M 512'`).join(' ')
  sh(`qemu-img create -q -f qcow2 big.qcow2 32G && qemu-img bitmap --add -g 512 big.qcow2 fine && qemu-io -f qcow2 ${writes} big.qcow2 >/dev/null`, dir.path)
})
afterAll(() => dir.cleanup())

describe('engine session (no worker, no transport)', () => {
  it('opens, scans with progress events tagged by job id, and lists what nbdinfo exports', async () => {
    const events: Array<[number, number, number]> = []
    const s = new EngineSession(dirHost(dir.path), (job, d, t) => events.push([job, d, t]))
    const r = await s.open(host('cs64k-basic.qcow2'), 7)
    const info = qemuImgInfo(join(dir.path, 'cs64k-basic.qcow2')).json!
    expect(r.summary.bitmaps.map((b) => b.name)).toEqual(info['format-specific']!.data!.bitmaps!.map((b) => b.name))
    const b = r.summary.bitmaps.find((x) => x.status === 'ok' && x.dataBytes > 0)!
    const scan = await s.scan(b.index, 11)
    expect(events.length).toBeGreaterThan(0)
    expect(events.every(([job]) => job === 11)).toBe(true)
    const [, done, total] = events[events.length - 1]!
    expect(done).toBe(total)
    const want = nbdDirtyExtents(join(dir.path, 'cs64k-basic.qcow2'), b.name)
    expect(scan.extentCount).toBe(want.length)
    expect(await s.extentPage(b.index, 0, 1 << 20)).toEqual(want)
    const csv = new TextDecoder().decode(await s.exportExtents(b.index, 'csv'))
    expect(csv.trim().split('\n').slice(1)).toEqual(want.map((x) => `${x.offset},${x.length},${x.offset + x.length}`))
    s.dispose()
  })

  it('splits each extent of a page by allocation in one sweep, as qemu-img map does', async () => {
    const s = new EngineSession(dirHost(dir.path), () => undefined)
    const r = await s.open(host('cs64k-basic.qcow2'))
    const map = JSON.parse(sh('qemu-img map --output=json -U cs64k-basic.qcow2', dir.path)) as MapRun[]
    let checked = 0
    for (const b of r.summary.bitmaps.filter((x) => x.status === 'ok' && x.dataBytes > 0)) {
      await s.scan(b.index)
      const page = await s.extentPage(b.index, 0, 1 << 20)
      const want = page.map((e) => { const x = splitByMap([e], map); return { data: x.data, zero: x.zero, unallocated: x.unallocated } })
      expect(await s.extentSplits(b.index, 0, page.length)).toEqual(want)
      expect(await s.extentSplits(b.index, 1, 2)).toEqual(want.slice(1, 3))
      checked += page.length
    }
    expect(checked).toBeGreaterThan(2)
    s.dispose()
  })

  it('heatmapPreview: all NaN before a scan, the exact heatmap (complete) after it', async () => {
    const s = new EngineSession(dirHost(dir.path), () => undefined)
    const r = await s.open(host('cs64k-basic.qcow2'))
    const b = r.summary.bitmaps.find((x) => x.status === 'ok' && x.dataBytes > 0)!
    const L = r.summary.diskLength
    const before = await s.heatmapPreview(b.index, 0, L, 64)
    expect(before.complete).toBe(false)
    expect([...before.counts].every(Number.isNaN)).toBe(true)
    await s.scan(b.index)
    const after = await s.heatmapPreview(b.index, 0, L, 64)
    expect(after.complete).toBe(true)
    expect([...after.counts]).toEqual([...await s.heatmap(b.index, 0, L, 64)])
    s.dispose()
  })

  it('errors leave as plain ErrorInfo objects, with codes', async () => {
    const s = new EngineSession(dirHost(dir.path), () => undefined)
    const e = await s.scan(0).catch((x: unknown) => x)
    expect(e).toEqual({ code: 'Error', message: 'no image is open' })
    expect(e).not.toBeInstanceOf(Error)
    await s.open(host('cs64k-basic.qcow2'))
    await expect(s.heatmap(99, 0, 1, 1)).rejects.toEqual({ code: 'Error', message: 'no bitmap number 99' })
    s.dispose()
  })

  it('a cancelled job stops with AbortError, and dispose() cancels jobs in flight', async () => {
    const s = new EngineSession(dirHost(dir.path, { slowReadsMs: 20 }), () => undefined)
    await s.open(host('big.qcow2'))
    const p = s.sha256(0, 5)
    await new Promise((r) => setTimeout(r, 30))
    await s.cancel(5)
    await expect(p).rejects.toMatchObject({ code: 'AbortError' })
    const q = s.sha256(0, 6)
    await new Promise((r) => setTimeout(r, 30))
    s.dispose()
    await expect(q).rejects.toMatchObject({ code: 'AbortError' })
  })

  it('follows a backing chain the host resolves, without the user opening the base', async () => {
    const s = new EngineSession(dirHost(dir.path, { resolve: true }), () => undefined)
    const r = await s.open(host('backing-overlay.qcow2'))
    const b = r.summary.bitmaps[0]!
    const est = await s.estimate(b.index)
    expect(est.layerNames).toEqual(['backing-overlay.qcow2', 'backing-base.qcow2'])
    expect(est.backingMissing).toBeUndefined()
    // Without a resolver the base is missing, and says so.
    const t = new EngineSession(dirHost(dir.path), () => undefined)
    await t.open(host('backing-overlay.qcow2'))
    expect((await t.estimate(b.index)).backingMissing).toBe('backing-base.qcow2')
    s.dispose(); t.dispose()
  })

  it('plans and commits through the host, then shows the image as QEMU now reads it', async () => {
    const h = dirHost(dir.path)
    const s = new EngineSession(h, () => undefined)
    await s.open(host('cs64k-basic.qcow2'))
    const review = await s.planEdits({ edits: [{ op: 'add', name: 'from-session', granularity: 65536 }] })
    expect(review.writeMode).toBe('in-place')
    const progress: string[] = []
    const t = new EngineSession(h, (_j, _d, _t, step) => { if (step) progress.push(step) })
    await t.open(host('cs64k-basic.qcow2'))
    const rv = await t.planEdits({ edits: [{ op: 'add', name: 'from-session', granularity: 65536 }] })
    const after = await t.commitPlan(rv.planId, 3)
    expect(h.commits).toBe(1)
    expect(after.summary.bitmaps.map((b) => b.name)).toContain('from-session')
    const file = join(dir.path, 'cs64k-basic.qcow2')
    expect(qemuImgCheck(file)).toBe(0)
    expect(qemuImgInfo(file).json!['format-specific']!.data!.bitmaps!.map((b) => b.name)).toContain('from-session')
    // The other session's plan was made from the old file; the plan id is its own.
    expect(progress.length).toBeGreaterThan(0)
    s.dispose(); t.dispose()
  })

  it('resolves what edits name by id: another open image (merge) and a comparison (set-ranges); the plan says what each does', async () => {
    copyFileSync(join(IMAGES, 'cs64k-basic.qcow2'), join(dir.path, 'twin.qcow2'))
    const h = dirHost(dir.path)
    const s = new EngineSession(h, () => undefined)
    const set = await s.openSet([host('twin.qcow2'), host('cs64k-basic.qcow2')])
    await s.activate(1)
    const cmp = await s.algebra({ image: 1, bitmap: 0 }, { image: 2, bitmap: 0 }, 'union')
    expect(set.images).toHaveLength(2)
    const review = await s.planEdits({
      edits: [
        { op: 'add', name: 'u', granularity: 65536, disabled: true },
        { op: 'set-ranges', name: 'u', resultId: cmp.id, what: 'b0 ∪ b0' },
        { op: 'merge', name: 'u', source: 'b0', sourceImageId: 2 },
        { op: 'copy', name: 'u', newName: 'u2' },
      ],
    })
    expect(review.summary[1]).toMatch(/^Set in 'u' every granule dirty in b0 ∪ b0 .*\. \d.* in \d+ ranges?\.$/)
    expect(review.summary[2]).toBe("Merge 'b0' (from another open image) into 'u': every granule dirty in either becomes dirty in 'u'.")
    expect(review.result.map((b) => b.name)).toEqual(['b0', 'u', 'u2'])
    await s.commitPlan(review.planId)
    const file = join(dir.path, 'twin.qcow2')
    expect(qemuImgCheck(file)).toBe(0)
    expect(nbdDirtyExtents(file, 'u')).toEqual(nbdDirtyExtents(file, 'b0'))
    expect(nbdDirtyExtents(file, 'u2')).toEqual(nbdDirtyExtents(file, 'b0'))
    expect(nbdDirtyExtents(file, 'b0').length).toBeGreaterThan(0)
    // An id nothing is known by is refused, and nothing is planned.
    await expect(s.planEdits({ edits: [{ op: 'set-ranges', name: 'b0', resultId: 99, what: 'x' }] })).rejects.toThrow(/comparison is gone/)
    await expect(s.planEdits({ edits: [{ op: 'merge', name: 'b0', source: 'b0', sourceImageId: 9 }] })).rejects.toThrow(/image 9 is not open/)
    s.dispose()
  })

  it('a host that refuses edits refuses the plan and the commit, and writes nothing', async () => {
    const file = join(dir.path, 'in-use-killed.qcow2')
    const before = readFileSync(file)
    const s = new EngineSession(dirHost(dir.path, { refuse: 'the server is read-only' }), () => undefined)
    await s.open(host('in-use-killed.qcow2'))
    await expect(s.planEdits({ edits: [{ op: 'add', name: 'x' }] })).rejects.toMatchObject({ code: 'ConstraintError', message: 'the server is read-only' })
    await expect(s.commitPlan(1)).rejects.toMatchObject({ code: 'ConstraintError' })
    expect(readFileSync(file).equals(before)).toBe(true)
    s.dispose()
  })
})
