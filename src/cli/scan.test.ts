// `qbm scan` as a process: the Prometheus output read by Prometheus' reference parser
// (prometheus_client) with values from qemu-img info, qemu-img check and nbdinfo; label values
// with quotes, backslashes and newlines round-trip; --output-file replaces the file by rename;
// human and json output and exit codes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startQemuNbd } from '../test-support/host.js'
import { writeCheckpointDir } from '../test-support/libvirt-checkpoints.js'
import { type PromFamily, parseExposition, samplesOf } from '../test-support/prometheus.js'
import { makeQemuImage } from '../test-support/qemu-images.js'
import { TESTDATA, nbdDirtyExtents, qbm, qemuImg, qemuImgInfo, tempDir } from '../test-support/tools.js'

let t: { path: string; cleanup: () => void }
let images: string
let weirdDir: string
const WEIRD_BITMAP = 'we"ird\\name\nline2 ü'

beforeAll(() => {
  t = tempDir('qbm-scan-')
  images = join(t.path, 'images')
  weirdDir = join(images, 'sub "q" \\ back\nslash')
  mkdirSync(weirdDir, { recursive: true })
  makeQemuImage(images, 'a.qcow2', {
    size: 32 << 20, bitmaps: [{ name: 'daily' }, { name: 'weekly', granularity: 4096 }], writes: ['write 0 64k', 'write 8M 1M'],
  })
  copyFileSync(join(TESTDATA, 'images', 'in-use-mixed.qcow2'), join(images, 'b-in-use.qcow2'))
  copyFileSync(join(TESTDATA, 'images', 'corrupt-leaked-cluster.qcow2'), join(images, 'c-leaks.qcow2'))
  makeQemuImage(weirdDir, 'w.qcow2', { size: 4 << 20, bitmaps: [{ name: WEIRD_BITMAP }], writes: ['write 0 4k'] })
  writeFileSync(join(images, 'readme.txt'), 'no image here')
})
afterAll(() => t?.cleanup())

const key = (labels: Record<string, string>): string => JSON.stringify(Object.entries(labels).sort())
function value(fams: PromFamily[], name: string, labels: Record<string, string>): number | undefined {
  return samplesOf(fams, name).find((s) => key(s.labels) === key(labels))?.value
}

describe('qbm scan --output=prometheus', () => {
  it("is read by Prometheus' reference parser, with qemu-img's and nbdinfo's values", () => {
    const r = qbm(['scan', '-r', images, '--output=prometheus'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0) // attention is in the metrics, not the exit code
    const fams = parseExposition(r.stdout)
    // every family is a documented qbm_ gauge, and no series appears twice
    for (const f of fams) {
      expect(f.name).toMatch(/^qbm_[a-z_]+$/)
      expect(f.type).toBe('gauge')
      expect(f.help.length).toBeGreaterThan(10)
      const keys = f.samples.map((s) => key(s.labels))
      expect(new Set(keys).size).toBe(keys.length)
    }
    expect(r.stdout).toMatch(/^# HELP qbm_image_info /)
    const paths = ['a.qcow2', 'b-in-use.qcow2', 'c-leaks.qcow2'].map((f) => join(images, f)).concat(join(weirdDir, 'w.qcow2'))
    expect(samplesOf(fams, 'qbm_image_info').map((s) => s.labels.path).sort()).toEqual([...paths].sort())
    for (const path of paths) {
      const info = qemuImgInfo(path).json!
      const bitmaps = info['format-specific']?.data?.bitmaps ?? []
      expect(value(fams, 'qbm_image_virtual_size_bytes', { path })).toBe(info['virtual-size'])
      expect(value(fams, 'qbm_image_bitmaps', { path })).toBe(bitmaps.length)
      expect(value(fams, 'qbm_image_bitmaps_in_use', { path })).toBe(bitmaps.filter((b) => b.flags.includes('in-use')).length)
      expect(value(fams, 'qbm_image_lock_held', { path })).toBe(0)
      for (const b of bitmaps) {
        expect(value(fams, 'qbm_bitmap_in_use', { path, bitmap: b.name })).toBe(b.flags.includes('in-use') ? 1 : 0)
        expect(value(fams, 'qbm_bitmap_granularity_bytes', { path, bitmap: b.name })).toBe(b.granularity)
      }
      const check = JSON.parse(qemuImg(['check', '--output=json', path]).stdout) as { leaks?: number; corruptions?: number }
      expect(value(fams, 'qbm_image_check_leaks', { path })).toBe(check.leaks ?? 0)
      expect(value(fams, 'qbm_image_check_errors', { path })).toBe(check.corruptions ?? 0)
    }
    const a = join(images, 'a.qcow2')
    for (const name of ['daily', 'weekly']) {
      const dirty = nbdDirtyExtents(a, name).reduce((s, x) => s + x.length, 0)
      expect(value(fams, 'qbm_bitmap_dirty_bytes', { path: a, bitmap: name })).toBe(dirty)
    }
    // the label value with a quote, backslashes and a newline reads back exactly
    const w = join(weirdDir, 'w.qcow2')
    expect(value(fams, 'qbm_bitmap_dirty_bytes', { path: w, bitmap: WEIRD_BITMAP })).toBe(nbdDirtyExtents(w, WEIRD_BITMAP).reduce((s, x) => s + x.length, 0))
    expect(value(fams, 'qbm_image_needs_attention', { path: a })).toBe(0)
    expect(value(fams, 'qbm_image_needs_attention', { path: join(images, 'b-in-use.qcow2') })).toBe(1)
    expect(value(fams, 'qbm_image_needs_attention', { path: join(images, 'c-leaks.qcow2') })).toBe(1)
    expect(value(fams, 'qbm_scan_images', {})).toBe(4)
    expect(value(fams, 'qbm_scan_duration_seconds', {})).toBeGreaterThan(0)
    expect(Math.abs(value(fams, 'qbm_scan_timestamp_seconds', {})! - Date.now() / 1000)).toBeLessThan(60)
  })

  it('counts checkpoint mismatches and lists each one', () => {
    const a = join(images, 'a.qcow2')
    const cpDir = join(t.path, 'cp')
    writeCheckpointDir(cpDir, [
      { domain: 'vm', name: 'daily', creationTime: 1, disks: [{ name: 'vda', checkpoint: 'bitmap' }], sources: { vda: { file: a } } },
      { domain: 'vm', name: 'gone', creationTime: 2, disks: [{ name: 'vda', checkpoint: 'bitmap' }], sources: { vda: { file: a } } },
    ])
    const r = qbm(['scan', images, '--output=prometheus', '--libvirt-checkpoint-dir', cpDir, '--no-check'])
    expect(r.stderr).toBe('')
    const fams = parseExposition(r.stdout)
    expect(value(fams, 'qbm_image_checkpoint_mismatches', { path: a })).toBe(2)
    expect(value(fams, 'qbm_image_checkpoint_mismatches', { path: join(images, 'b-in-use.qcow2') })).toBe(0)
    expect(samplesOf(fams, 'qbm_checkpoint_mismatch').map((s) => [s.labels.checkpoint, s.labels.bitmap, s.labels.state])).toEqual([
      ['gone', 'gone', 'missing'], ['', 'weekly', 'no-checkpoint'],
    ])
    expect(value(fams, 'qbm_scan_checkpoint_files', {})).toBe(2)
    expect(samplesOf(fams, 'qbm_image_check_errors')).toEqual([]) // --no-check
  })

  it('reports the qemu-nbd holding an image', () => {
    const dir = join(t.path, 'held')
    mkdirSync(dir)
    const img = join(dir, 'h.qcow2')
    copyFileSync(join(images, 'a.qcow2'), img)
    const nbd = startQemuNbd(img, t.path)
    try {
      const fams = parseExposition(qbm(['scan', dir, '--output=prometheus']).stdout)
      expect(value(fams, 'qbm_image_lock_held', { path: img })).toBe(1)
      expect(value(fams, 'qbm_image_lock_holder_info', { path: img, program: 'qemu-nbd', pid: String(nbd.pid), mode: 'write' })).toBe(1)
      expect(value(fams, 'qbm_image_needs_attention', { path: img })).toBe(1)
      expect(samplesOf(fams, 'qbm_image_check_errors')).toEqual([]) // not checked under a running QEMU
      const human = qbm(['scan', dir])
      expect(human.stdout).toMatch(new RegExp(`^!\\s+\\S+h\\.qcow2\\s.*\\sqemu-nbd \\(pid ${nbd.pid}\\)\\s+skipped\\s`, 'm'))
    } finally {
      nbd.stop()
    }
  })

  it('--output-file replaces the file by rename and leaves no temp file', () => {
    const dir = join(t.path, 'textfile')
    mkdirSync(dir)
    const file = join(dir, 'qbm.prom')
    writeFileSync(file, 'old\n')
    const before = statSync(file).ino
    const r = qbm(['scan', images, '--output=prometheus', '--output-file', file])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('')
    expect(statSync(file).ino).not.toBe(before)
    expect(readdirSync(dir)).toEqual(['qbm.prom'])
    expect(samplesOf(parseExposition(readFileSync(file, 'utf8')), 'qbm_scan_images')[0]!.value).toBe(3)
    const bad = qbm(['scan', images, '--output=prometheus', '--output-file', join(t.path, 'no-such-dir', 'x.prom')])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/^qbm: .*no-such-dir\/x\.prom: cannot write: ENOENT/)
  })
})

describe('qbm scan, human and json', () => {
  it('prints a table with attention marks and exits 2 when an image needs attention', () => {
    const r = qbm(['scan', images])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(2)
    const lines = r.stdout.split('\n')
    expect(lines[0]).toMatch(/^\s+PATH\s+KIND\s+VIRTUAL\s+FILE\s+BITMAPS\s+IN USE\s+MAX DIRTY\s+HELD BY\s+CHECK\s+CHECKPOINTS$/)
    expect(lines.find((l) => l.includes('/a.qcow2'))).toMatch(/^ {3}\S*a\.qcow2\s+file\s+32 MiB\s+\S+ \S+\s+2\s+0\s+\d+\.\d\d%\s+-\s+clean\s+-$/)
    expect(lines.find((l) => l.includes('/b-in-use.qcow2'))).toMatch(/^!/)
    expect(lines.find((l) => l.includes('/c-leaks.qcow2'))).toMatch(/^!.*\d+ leaks?/)
    expect(r.stdout).toMatch(/bitmap weekly: granularity 4 KiB, flags auto, ok, 1.06 MiB \(1,114,112 bytes\) dirty, 3\.32%\n/)
    expect(r.stdout).toMatch(/\n3 images, 2 need attention/)
    expect(qbm(['scan', join(images, 'a.qcow2')]).code).toBe(0)
  })

  it('gives the overview rows as JSON, with what was not scanned', () => {
    const r = qbm(['scan', images, join(images, 'readme.txt'), '--output=json'])
    expect(r.code).toBe(2)
    const j = JSON.parse(r.stdout) as { images: Array<{ path: string; bitmaps: Array<{ name: string }> }>; errors: Array<{ path: string; message: string }> }
    expect(j.images.map((x) => x.path.split('/').pop())).toEqual(['a.qcow2', 'b-in-use.qcow2', 'c-leaks.qcow2'])
    expect(j.images[0]!.bitmaps.map((b) => b.name)).toEqual(['daily', 'weekly'])
    expect(j.errors).toEqual([{ path: join(images, 'readme.txt'), message: expect.stringMatching(/^not a qcow2 image/) }])
  })

  it('refuses bad arguments', () => {
    expect(qbm(['scan']).stderr).toMatch(/^qbm: 'scan' expects at least one PATH/)
    expect(qbm(['scan', images, '--output=xml']).stderr).toMatch(/--output must be human, json or prometheus/)
    const r = qbm(['scan', images, '--libvirt-checkpoint-dir', join(t.path, 'nope')])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/cannot read the libvirt checkpoint directory/)
  })
})
