// libvirt's checkpoint directory against QEMU-made images: one healthy checkpoint, one whose
// bitmap was removed with qemu-img ("bitmap not found in backing chain"), one bitmap no
// checkpoint refers to ("Bitmap already exists"), matched to the image through a symlinked
// source path; a disk with checkpoint='no' and a domain whose source is not scanned report
// nothing; a malformed file is named with its line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildCatalog } from './catalog.js'
import { CheckpointIndex, readCheckpointDir } from './libvirt.js'
import { buildOverview, needsAttention, type OverviewRow } from './overview.js'
import { writeCheckpointDir } from '../test-support/libvirt-checkpoints.js'
import { makeQemuImage } from '../test-support/qemu-images.js'
import { TESTDATA, qemuImg, qemuImgInfo, tempDir } from '../test-support/tools.js'

let t: { path: string; cleanup: () => void }
let cpDir: string
let rows: OverviewRow[]
const row = (name: string): OverviewRow => rows.find((r) => r.path.endsWith('/' + name))!

beforeAll(async () => {
  t = tempDir('qbm-libvirt-')
  const images = join(t.path, 'images')
  mkdirSync(images)
  makeQemuImage(images, 'vm1-vda.qcow2', {
    size: 16 << 20, bitmaps: [{ name: 'cp1' }, { name: 'cp2' }, { name: 'backup-old' }], writes: ['write 0 64k'],
  })
  const rm = qemuImg(['bitmap', '--remove', join(images, 'vm1-vda.qcow2'), 'cp2'])
  expect(rm.stderr).toBe('')
  makeQemuImage(images, 'vm1-vdb.qcow2', { size: 16 << 20, bitmaps: [{ name: 'other-tool' }] })
  copyFileSync(join(TESTDATA, 'images', 'in-use-mixed.qcow2'), join(images, 'vm3.qcow2'))
  // libvirt names the source by a path that is a symlink to the scanned file
  symlinkSync(images, join(t.path, 'pool'))
  cpDir = join(t.path, 'checkpoint')
  const vm1 = { vda: { file: join(t.path, 'pool', 'vm1-vda.qcow2') }, vdb: { file: join(t.path, 'pool', 'vm1-vdb.qcow2') } }
  const vm3 = { sda: { file: join(images, 'vm3.qcow2') } }
  writeCheckpointDir(cpDir, [
    { domain: 'vm1', name: 'cp1', creationTime: 1700000001, disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'no' }], sources: vm1 },
    { domain: 'vm1', name: 'cp2', parent: 'cp1', creationTime: 1700000002, disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'no' }], sources: vm1 },
    { domain: 'vm2', name: 'elsewhere', creationTime: 1700000003, disks: [{ name: 'vda', checkpoint: 'bitmap' }], sources: { vda: { file: '/nonexistent/vm2.qcow2' } } },
    { domain: 'vm3', name: 'c3a', creationTime: 1700000004, disks: [{ name: 'sda', checkpoint: 'bitmap', bitmap: 'stale' }], sources: vm3 },
    { domain: 'vm3', name: 'c3b', parent: 'c3a', creationTime: 1700000005, disks: [{ name: 'sda', checkpoint: 'bitmap', bitmap: 'fresh' }], sources: vm3 },
  ])
  writeFileSync(join(cpDir, 'vm2', 'broken.xml'), '<domaincheckpoint>\n  <name>x</name>\n  <disks>\n</domaincheckpoint>\n')
  writeFileSync(join(cpDir, 'vm2', 'notes.txt'), 'not a checkpoint file')
  const libvirt = readCheckpointDir(cpDir)
  rows = await buildOverview(buildCatalog([images], { recursive: false }).entries, { checkpoints: new CheckpointIndex(libvirt) })
})
afterAll(() => t?.cleanup())

describe('readCheckpointDir', () => {
  it('reads DIR/DOMAIN/*.xml and names a malformed file with its line', () => {
    const l = readCheckpointDir(cpDir)
    expect(l.files.map((f) => [f.domain, f.checkpoint.name])).toEqual([['vm1', 'cp1'], ['vm1', 'cp2'], ['vm2', 'elsewhere'], ['vm3', 'c3a'], ['vm3', 'c3b']])
    expect(l.errors).toEqual([{ path: join(cpDir, 'vm2', 'broken.xml'), message: expect.stringMatching(/^malformed XML at line 4, column \d+: /) }])
  })
  it('throws when the directory cannot be read', () => {
    expect(() => readCheckpointDir(join(t.path, 'missing'))).toThrow(/ENOENT/)
  })
})

describe('checkpoint cross-check in the overview', () => {
  it('finds exactly the stale checkpoint and the bitmap without a checkpoint', () => {
    const info = qemuImgInfo(row('vm1-vda.qcow2').path).json!
    expect(info['format-specific']?.data?.bitmaps?.map((b) => b.name)).toEqual(['cp1', 'backup-old'])
    const r = row('vm1-vda.qcow2')
    expect(r.checkpoints.length).toBe(1)
    const c = r.checkpoints[0]!
    expect([c.domain, c.disk, c.checkpoints, c.healthy]).toEqual(['vm1', 'vda', 2, 1])
    expect(c.mismatches.map((m) => [m.checkpoint, m.bitmap, m.state, m.symptom])).toEqual([
      ['cp2', 'cp2', 'missing', 'bitmap not found in backing chain'],
      [null, 'backup-old', 'no-checkpoint', 'Bitmap already exists'],
    ])
    expect(r.checkpointMismatches).toBe(2)
    expect(needsAttention(r)).toBe(true)
  })
  it("reports nothing for a disk with checkpoint='no'", () => {
    const r = row('vm1-vdb.qcow2')
    expect(r.checkpoints).toEqual([])
    expect(needsAttention(r)).toBe(false)
  })
  it('reports the in-use bitmap of a checkpoint', () => {
    const r = row('vm3.qcow2')
    expect(r.checkpoints.map((c) => [c.domain, c.disk, c.healthy, c.mismatches.map((m) => [m.checkpoint, m.bitmap, m.state])])).toEqual([
      ['vm3', 'sda', 1, [['c3a', 'stale', 'in-use']]],
    ])
  })
})
