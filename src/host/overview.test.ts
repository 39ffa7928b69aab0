// The host overview against QEMU: bitmap names, flags and granularity as `qemu-img info
// --output=json` reports them, dirty bytes as `nbdinfo --map` through `qemu-nbd -B` counts them,
// the check status as `qemu-img check`'s exit code; a corrupt image gives an error row and the
// scan goes on; cancellation and progress; a real qemu-nbd holding an image is named.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFileSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AbortError } from '../engine/index.js'
import { buildCatalog } from './catalog.js'
import { readLockTable } from './locks.js'
import { type OverviewRow, buildOverview, needsAttention } from './overview.js'
import { makeQemuImage } from '../test-support/qemu-images.js'
import { attachLoop, padTo, roundUp, startQemuNbd } from '../test-support/host.js'
import { TESTDATA, nbdDirtyExtents, qemuImg, qemuImgCheck, qemuImgInfo, tempDir } from '../test-support/tools.js'

let t: { path: string; cleanup: () => void }
let rows: OverviewRow[]
const byName = (name: string): OverviewRow => rows.find((r) => r.path.endsWith('/' + name))!

beforeAll(async () => {
  t = tempDir('qbm-overview-')
  makeQemuImage(t.path, 'two.qcow2', {
    size: 64 << 20,
    bitmaps: [{ name: 'daily', granularity: 65536 }, { name: 'fine', granularity: 4096, disabled: true }],
    writes: ['write 0 64k', 'write 1M 300k', 'write 40M 4k'],
  })
  makeQemuImage(t.path, 'none.qcow2', { size: 8 << 20, bitmaps: [] })
  for (const f of ['in-use-mixed.qcow2', 'corrupt-leaked-cluster.qcow2']) copyFileSync(join(TESTDATA, 'images', f), join(t.path, f))
  writeFileSync(join(t.path, 'broken.qcow2'), Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb]), Buffer.alloc(200, 0xff)]))
  rows = await buildOverview(buildCatalog([t.path], { recursive: false }).entries)
})
afterAll(() => t?.cleanup())

describe('buildOverview', () => {
  it('lists every image, the unreadable one with its error, in catalog order', () => {
    expect(rows.map((r) => r.path.split('/').pop())).toEqual(['broken.qcow2', 'corrupt-leaked-cluster.qcow2', 'in-use-mixed.qcow2', 'none.qcow2', 'two.qcow2'])
    const broken = byName('broken.qcow2')
    expect(broken.error).toMatch(/^qcow2 header at 0x4: version is not 2 or 3/)
    expect(broken.virtualSize).toBeNull()
    expect(needsAttention(broken)).toBe(true)
  })

  it('agrees with qemu-img info on sizes and bitmaps, and with nbdinfo on dirty bytes', () => {
    for (const name of ['two.qcow2', 'none.qcow2', 'in-use-mixed.qcow2']) {
      const r = byName(name)
      const info = qemuImgInfo(r.path).json!
      expect(r.error).toBeNull()
      expect(r.virtualSize).toBe(info['virtual-size'])
      const want = info['format-specific']?.data?.bitmaps ?? []
      expect(r.bitmaps.map((b) => ({ name: b.name, granularity: b.granularity, flags: b.flags }))).toEqual(want)
      expect(r.bitmapCount).toBe(want.length)
      expect(r.inUseCount).toBe(want.filter((b) => b.flags.includes('in-use')).length)
    }
    const two = byName('two.qcow2')
    for (const b of two.bitmaps) {
      const dirty = nbdDirtyExtents(two.path, b.name).reduce((a, x) => a + x.length, 0)
      expect(b.dirtyBytes).toBe(dirty)
      expect(b.dirtyPercent).toBeCloseTo((100 * dirty) / (64 << 20), 10)
    }
    expect(two.maxDirtyPercent).toBe(Math.max(...two.bitmaps.map((b) => b.dirtyPercent!)))
    expect(two.bitmaps.find((b) => b.name === 'fine')!.enabled).toBe(false)
  })

  it("gives qemu-img check's verdict for each image", () => {
    const want: Record<number, string> = { 0: 'clean', 2: 'errors', 3: 'leaks' }
    for (const name of ['two.qcow2', 'none.qcow2', 'in-use-mixed.qcow2', 'corrupt-leaked-cluster.qcow2']) {
      const r = byName(name)
      expect(r.check?.status, name).toBe(want[qemuImgCheck(r.path)])
    }
    expect(byName('corrupt-leaked-cluster.qcow2').check!.leaks).toBeGreaterThan(0)
  })

  it('needs attention exactly for the in-use, leaking and unreadable images', () => {
    expect(rows.filter(needsAttention).map((r) => r.path.split('/').pop())).toEqual(['broken.qcow2', 'corrupt-leaked-cluster.qcow2', 'in-use-mixed.qcow2'])
  })

  it('skips the check when asked, reports progress, and stops when cancelled', async () => {
    const entries = buildCatalog([t.path], { recursive: false }).entries
    const seen: Array<[number, number]> = []
    const noCheck = await buildOverview(entries, { check: false, onProgress: (d, n) => seen.push([d, n]) })
    expect(noCheck.every((r) => r.check === null)).toBe(true)
    expect(seen).toEqual(entries.map((_, i) => [i + 1, entries.length]))
    const signal = { aborted: false }
    const p = buildOverview(entries, { signal, onProgress: (d) => { if (d === 2) signal.aborted = true } })
    await expect(p).rejects.toBeInstanceOf(AbortError)
  })
})

describe('an image held by QEMU', () => {
  it('names the qemu-nbd holding it, read-write or read-only, and skips the check', async () => {
    const dir = join(t.path, 'held')
    mkdirSync(dir)
    for (const f of ['rw.qcow2', 'ro.qcow2']) copyFileSync(byName('two.qcow2').path, join(dir, f))
    const rw = startQemuNbd(join(dir, 'rw.qcow2'), t.path)
    const ro = startQemuNbd(join(dir, 'ro.qcow2'), t.path, { readOnly: true })
    try {
      const held = await buildOverview(buildCatalog([dir], { recursive: false }).entries, { locks: readLockTable() })
      const [r1, r2] = [held.find((r) => r.path.endsWith('/ro.qcow2'))!, held.find((r) => r.path.endsWith('/rw.qcow2'))!]
      expect([r1.holder?.pid, r1.holder?.program, r1.holder?.write]).toEqual([ro.pid, 'qemu-nbd', false])
      expect([r2.holder?.pid, r2.holder?.program, r2.holder?.write]).toEqual([rw.pid, 'qemu-nbd', true])
      expect(r2.holderText).toBe(`qemu-nbd (pid ${rw.pid})`)
      for (const r of [r1, r2]) {
        expect(r.error).toBeNull()
        expect(r.check?.status).toBe('skipped')
        expect(needsAttention(r)).toBe(true)
      }
      // read-write, QEMU has marked its bitmaps in use in the file; qemu-img info -U agrees
      const info = qemuImgInfoShared(r2.path)
      expect(r2.bitmaps.map((b) => [b.name, b.flags])).toEqual(info.map((b) => [b.name, b.flags]))
    } finally {
      rw.stop()
      ro.stop()
    }
    const after = await buildOverview(buildCatalog([dir], { recursive: false }).entries, { locks: readLockTable() })
    expect(after.map((r) => r.holder)).toEqual([null, null])
  })
})

describe('a block device', () => {
  it('reads a loop device holding a qcow2 image, and names the qemu-nbd holding the device', async () => {
    const img = join(t.path, 'loop.qcow2')
    copyFileSync(byName('two.qcow2').path, img)
    padTo(img, roundUp(statSync(img).size, 512))
    const loop = attachLoop(img)
    try {
      const [row] = await buildOverview(buildCatalog([loop.dev], { recursive: false }).entries, { locks: readLockTable() })
      expect(row!.kind).toBe('block')
      expect(row!.error).toBeNull()
      expect(row!.bitmaps.map((b) => [b.name, b.dirtyBytes])).toEqual(byName('two.qcow2').bitmaps.map((b) => [b.name, b.dirtyBytes]))
      expect(row!.check?.status).toBe('clean')
      expect(row!.holder).toBeNull()
      const nbd = startQemuNbd(loop.dev, t.path, { readOnly: true })
      try {
        const [held] = await buildOverview(buildCatalog([loop.dev], { recursive: false }).entries, { locks: readLockTable() })
        expect(held!.holderText).toBe(`qemu-nbd (pid ${nbd.pid})`)
      } finally {
        nbd.stop()
      }
    } finally {
      loop.detach()
    }
  })
})

function qemuImgInfoShared(path: string): Array<{ name: string; flags: string[] }> {
  const r = qemuImg(['info', '-U', '--output=json', path])
  expect(r.code).toBe(0)
  return (JSON.parse(r.stdout) as { 'format-specific': { data: { bitmaps: Array<{ name: string; flags: string[] }> } } })['format-specific'].data.bitmaps
}
