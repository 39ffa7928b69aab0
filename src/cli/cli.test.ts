/**
 * The `qbm` CLI's habits (issue 2 "CLI"): qemu-img style one-line errors and exit codes,
 * size suffixes, `map --all` covering the disk, human and JSON outputs that agree. Expected
 * values come from QEMU (nbdinfo over qemu-nbd, qemu-io's size parser) or from the fixture
 * manifest's patch records, never from qbm itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Fixture, fixturePath, smallFixtures } from '../test-support/fixtures.js'
import { makeQemuImage } from '../test-support/qemu-images.js'
import { nbdDirtyExtents, qbm, qemuImgInfo, qemuParseSize, run, tempDir } from '../test-support/tools.js'

let tmp: ReturnType<typeof tempDir>
let img: string // QEMU-made image with bitmaps b0 (64 KiB) and fine (512 B)
const DISK = 8 * 1024 * 1024 + 1536 // a last granule of 1536 bytes for b0

beforeAll(() => {
  tmp = tempDir('qbm-cli-')
  img = makeQemuImage(tmp.path, 'img.qcow2', {
    size: DISK, options: 'cluster_size=4096',
    bitmaps: [{ name: 'b0', granularity: 65536 }, { name: 'fine', granularity: 512 }],
    writes: ['write 0 512', 'write 65000 1000', `write ${1 << 20} 192k`, 'write 3000000 4096', `write ${DISK - 512} 512`],
  }).path
})
afterAll(() => tmp.cleanup())

/** One line on stderr, `qbm: ...`, no stack trace, exit 1. */
function expectOneLineError(r: { code: number; stdout: string; stderr: string }, ctx: string): string {
  expect(r.code, `${ctx}: exit code (stderr: ${r.stderr})`).toBe(1)
  const lines = r.stderr.split('\n').filter((l) => l !== '')
  expect(lines, `${ctx}: stderr`).toHaveLength(1)
  expect(lines[0], ctx).toMatch(/^qbm: /)
  expect(r.stderr, ctx).not.toMatch(/\n\s+at .*:\d+:\d+/)
  return lines[0]!
}

function json<T>(args: string[]): T {
  const r = qbm(args)
  if (r.code !== 0) throw new Error(`qbm ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout) as T
}

interface MapRow { offset: number; length: number; dirty?: boolean }

describe('usage errors', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown command', ['frobnicate'], /unknown command/],
    ['unknown option', ['info', 'x.qcow2', '--bogus'], /unknown option '--bogus'/],
    ['missing argument', ['map', 'x.qcow2'], /expects/],
    ['too many arguments', ['info', 'a.qcow2', 'b.qcow2'], /expects/],
    ['bad --output', ['info', 'x.qcow2', '--output=xml'], /--output must be human or json/],
    ['option without its value', ['heatmap', 'x.qcow2', 'b0', '--cells'], /needs a value/],
    ['flag given a value', ['info', 'x.qcow2', '--sha256=yes'], /takes no value/],
    ['option given twice', ['map', 'x.qcow2', 'b0', '--all', '--all'], /given twice/],
    ['cells zero', ['heatmap', 'IMG', 'b0', '--cells', '0'], /--cells/],
    ['cells not a number', ['heatmap', 'IMG', 'b0', '--cells', 'many'], /--cells/],
  ]
  it.each(cases)('%s: exit 1, one line on stderr, no stack trace', (name, args, msg) => {
    const line = expectOneLineError(qbm(args.map((a) => (a === 'IMG' ? img : a))), name)
    expect(line).toMatch(msg)
  })

  it('--help prints the usage and exits 0; no command at all exits 1', () => {
    const h = qbm(['--help'])
    expect(h.code).toBe(0)
    expect(h.stdout).toMatch(/^usage: qbm/)
    for (const c of ['info', 'map', 'heatmap', 'check']) expect(h.stdout).toContain(`  ${c} IMAGE`)
    const none = qbm([])
    expect(none.code).toBe(1)
    expect(none.stderr + none.stdout).not.toMatch(/\n\s+at .*:\d+:\d+/)
  })
})

describe('errors about files', () => {
  it('a file that does not exist', () => {
    const line = expectOneLineError(qbm(['info', join(tmp.path, 'nope.qcow2')]), 'missing file')
    expect(line).toContain('nope.qcow2')
    expect(line).toMatch(/no such file|ENOENT/i)
  })

  it('a file that is not qcow2: the magic at 0x0', () => {
    const p = join(tmp.path, 'text.img')
    writeFileSync(p, 'this is not a disk image at all, just some text\n'.repeat(10))
    const line = expectOneLineError(qbm(['info', p]), 'text file')
    expect(line).toMatch(new RegExp(`^qbm: ${p}: qcow2 header at 0x0: magic .*not a qcow2 image`))
  })

  it('an empty file and a raw image', () => {
    const e = join(tmp.path, 'empty.img')
    writeFileSync(e, new Uint8Array(0))
    expect(expectOneLineError(qbm(['info', e]), 'empty file')).toMatch(/too small to be a qcow2 image/)
    const raw = join(tmp.path, 'disk.raw')
    writeFileSync(raw, new Uint8Array(1 << 20))
    expect(expectOneLineError(qbm(['map', raw, 'b0']), 'raw file')).toMatch(/not a qcow2 image/)
  })

  it('a directory', () => {
    const d = join(tmp.path, 'adir')
    mkdirSync(d)
    expectOneLineError(qbm(['info', d]), 'directory')
  })

  it('a bitmap that does not exist', () => {
    expect(expectOneLineError(qbm(['map', img, 'nosuch']), 'no bitmap')).toBe(`qbm: ${img}: Dirty bitmap 'nosuch' not found`)
  })

  // Fixtures whose bitmaps extension itself is unusable (not merely disagreeing with the
  // directory, where qbm still reads the entries): no bitmap can be found, the error is the
  // extension's, in the form `qbm: IMAGE: <structure> at 0x<offset>: <field> <problem>`.
  const extBroken = (): Fixture[] => smallFixtures().filter((f) => f.patch && f.tags.includes('extension') && !f.tags.includes('directory') && !f.qemuOpens)
  it('corrupt images: `qbm: IMAGE: <structure> at 0x…: <problem>` naming the patched field and offset', () => {
    const fx = extBroken()
    expect(fx.length).toBeGreaterThan(3)
    for (const f of fx) {
      const line = expectOneLineError(qbm(['map', fixturePath(f), 'b0']), f.name)
      const m = /^qbm: (.+?): (.+?) at 0x([0-9a-f]+): (.+)$/.exec(line)
      expect(m, `${f.name}: ${line}`).not.toBeNull()
      expect(m![1]).toBe(fixturePath(f))
      expect(Number.parseInt(m![3]!, 16), `${f.name}: ${line}`).toBe(f.patch!.offset)
      expect(m![4], `${f.name}: ${line}`).toContain(f.patch!.field)
    }
  })

  it('a corrupt header field (patched in a copy): cluster_bits', () => {
    const f = smallFixtures().find((x) => x.name === 'cs4k-basic')!
    const p = join(tmp.path, 'bad-cluster-bits.qcow2')
    copyFileSync(fixturePath(f), p)
    const b = new Uint8Array(readFileSync(p))
    new DataView(b.buffer, b.byteOffset).setUint32(20, 40)
    writeFileSync(p, b)
    expect(qemuImgInfo(p).code).not.toBe(0)
    // Spec §1.1: cluster_bits is the u32 at byte 20 (0x14); QEMU accepts 9..21.
    const line = expectOneLineError(qbm(['info', p]), 'cluster_bits 40')
    expect(line.startsWith(`qbm: ${p}: qcow2 header at 0x14: cluster_bits `), line).toBe(true)
    expect(line).toMatch(/\b40\b/)
  })
})

describe('map', () => {
  it('--output=json equals nbdinfo for both bitmaps', () => {
    for (const name of ['b0', 'fine']) expect(json<MapRow[]>(['map', img, name, '--output=json'])).toEqual(nbdDirtyExtents(img, name))
  })

  it('--all covers the whole disk exactly, alternating clean and dirty, dirty runs as without --all', () => {
    const subjects: Array<[string, string, number]> = [[img, 'b0', DISK], [img, 'fine', DISK]]
    for (const f of smallFixtures().filter((x) => ['odd-size', 'fully-dirty', 'empty-bitmap', 'cs512-g512', 'granularities'].includes(x.name))) {
      for (const b of f.bitmaps) subjects.push([fixturePath(f), b.name, f.virtualSize!])
    }
    for (const [path, name, disk] of subjects) {
      const ctx = `${path} ${name}`
      const rows = json<MapRow[]>(['map', path, name, '--all', '--output=json'])
      expect(rows.reduce((s, r) => s + r.length, 0), ctx).toBe(disk)
      let pos = 0
      rows.forEach((r, i) => {
        expect(r.offset, ctx).toBe(pos)
        expect(r.length, ctx).toBeGreaterThan(0)
        if (i > 0) expect(r.dirty, ctx).not.toBe(rows[i - 1]!.dirty)
        pos += r.length
      })
      expect(rows.filter((r) => r.dirty).map(({ offset, length }) => ({ offset, length })), ctx).toEqual(nbdDirtyExtents(path, name))
    }
  })

  it('human output lists the same runs as JSON (with and without --all)', () => {
    for (const all of [false, true]) {
      for (const name of ['b0', 'fine']) {
        const extra = all ? ['--all'] : []
        const want = json<MapRow[]>(['map', img, name, '--output=json', ...extra])
        const h = qbm(['map', img, name, ...extra])
        expect(h.code).toBe(0)
        const rows = h.stdout.trim().split('\n').filter(Boolean).map((l) => {
          const m = /^\s*(\d+)\s+(\d+)\s+([01])\s+(dirty|clean)$/.exec(l)
          expect(m, l).not.toBeNull()
          expect(m![3] === '1', l).toBe(m![4] === 'dirty')
          return all ? { offset: Number(m![1]), length: Number(m![2]), dirty: m![4] === 'dirty' } : { offset: Number(m![1]), length: Number(m![2]) }
        })
        expect(rows).toEqual(want)
      }
    }
  })
})

describe('heatmap', () => {
  /** Dirty bytes of [a, b) from QEMU's extents. */
  function oracleDirty(ext: MapRow[], a: number, b: number): number {
    return ext.reduce((s, e) => s + Math.max(0, Math.min(b, e.offset + e.length) - Math.max(a, e.offset)), 0)
  }
  interface Heat { start: number; end: number; cells: number; granularity: number; counts: Array<{ offset: number; length: number; dirty: number }> }

  it.each([
    ['1M', '192k', 3], ['64k', '1M', 16], ['0', '8M', 8], ['1.5k', '63.5k', 5], ['8M', '1536', 3], ['3000000', '4096', 7], ['0x100000', '0x30000', 4],
  ])('--start %s --length %s (sizes as qemu-img parses them), cells %i, against nbdinfo', (start, length, cells) => {
    const s0 = qemuParseSize(start)!, l0 = qemuParseSize(length)!
    for (const name of ['b0', 'fine']) {
      const ext = nbdDirtyExtents(img, name)
      const h = json<Heat>(['heatmap', img, name, '--start', start, '--length', length, '--cells', String(cells), '--output=json'])
      expect(h.start).toBe(s0)
      expect(h.end).toBe(Math.min(DISK, s0 + l0))
      expect(h.counts).toHaveLength(cells)
      let pos = s0
      for (const [i, c] of h.counts.entries()) {
        expect(c.offset).toBe(s0 + Math.floor((i * (h.end - s0)) / cells))
        expect(c.offset).toBe(pos)
        pos += c.length
        expect(c.dirty, `${name} cell ${i} [${c.offset}, +${c.length})`).toBe(oracleDirty(ext, c.offset, c.offset + c.length))
      }
      expect(pos).toBe(h.end)
    }
  })

  it('rejects a bad size and a start past the disk with one line', () => {
    expect(expectOneLineError(qbm(['heatmap', img, 'b0', '--start', '12q']), 'bad size')).toMatch(/invalid size '12q'/)
    expect(expectOneLineError(qbm(['heatmap', img, 'b0', '--length', '1.5']), 'fraction of a byte')).toMatch(/invalid size '1.5'/)
    expect(expectOneLineError(qbm(['heatmap', img, 'b0', '--start', '1G']), 'start past end')).toMatch(/--start/)
  })

  it('human output shows the same cells as JSON', () => {
    const want = json<Heat>(['heatmap', img, 'fine', '--cells', '33', '--output=json'])
    const h = qbm(['heatmap', img, 'fine', '--cells', '33'])
    expect(h.code).toBe(0)
    const rows = h.stdout.trim().split('\n').map((l) => {
      const m = /^\s*(\d+)\s.*\s(\d+) dirty \(/.exec(l)
      expect(m, l).not.toBeNull()
      return { offset: Number(m![1]), dirty: Number(m![2]) }
    })
    expect(rows).toEqual(want.counts.map((c) => ({ offset: c.offset, dirty: c.dirty })))
  })
})

describe('info', () => {
  interface Info { virtualSize: number; diskLength: number; clusterSize: number; version: number; refcountBits: number; bitmaps: Array<{ name: string; granularity: number; flags: string[]; dirtyBytes: number; status: string; extentCount: number; sha256?: string }> }

  it('JSON has the fields the issue names, with values from qemu-img info and nbdinfo', () => {
    const q = qemuImgInfo(img).json!
    const s = json<Info>(['info', img, '--output=json'])
    expect(s.virtualSize).toBe(q['virtual-size'])
    expect(s.clusterSize).toBe(q['cluster-size'])
    expect(s.version).toBe(3)
    expect(s.refcountBits).toBe(16)
    expect(s.bitmaps.map((b) => ({ name: b.name, granularity: b.granularity, flags: b.flags })))
      .toEqual(q['format-specific']!.data!.bitmaps!.map((b) => ({ name: b.name, granularity: b.granularity, flags: b.flags })))
    for (const b of s.bitmaps) {
      const ext = nbdDirtyExtents(img, b.name)
      expect(b.dirtyBytes).toBe(ext.reduce((a, e) => a + e.length, 0))
      expect(b.extentCount).toBe(ext.length)
      expect(b.sha256).toBeUndefined()
    }
    for (const b of json<Info>(['info', img, '--output=json', '--sha256']).bitmaps) expect(b.sha256).toMatch(/^[0-9a-f]{64}$/)
  })

  it('human output agrees with JSON (names, granularity, flags, dirty bytes, extents, sha256)', () => {
    for (const f of [img, ...smallFixtures().filter((x) => ['in-use-mixed', 'names-long-utf8', 'odd-size'].includes(x.name)).map(fixturePath)]) {
      const s = json<Info>(['info', f, '--output=json', '--sha256'])
      const h = qbm(['info', f, '--sha256'])
      expect(h.code).toBe(0)
      expect(h.stdout).toContain(`bitmaps: ${s.bitmaps.length}`)
      for (const b of s.bitmaps) {
        expect(h.stdout).toContain(`] ${b.name}\n`)
        expect(h.stdout).toContain(`granularity: `)
        expect(h.stdout).toContain(`(${b.granularity})`)
        expect(h.stdout).toContain(b.dirtyBytes < 1024 ? `dirty: ${b.dirtyBytes} bytes` : `(${b.dirtyBytes.toLocaleString('en-US')} bytes)`)
        expect(h.stdout).toContain(`${b.extentCount} extent`)
        expect(h.stdout).toContain(`sha256: ${b.sha256}`)
        if (b.flags.includes('in-use')) expect(h.stdout).toMatch(/in use \(stale\)/)
      }
    }
  })
})

describe('map and heatmap say when the bits are not what QEMU would export', () => {
  const fx = (name: string): string => fixturePath(smallFixtures().find((f) => f.name === name)!)
  it('an in-use bitmap is labelled stale on stderr; a consistent one next to it is not', () => {
    const stale = qbm(['map', fx('in-use-mixed'), 'stale'])
    expect(stale.code).toBe(0)
    expect(stale.stderr).toMatch(/^qbm: warning: bitmap 'stale' is in use: these are the stale bits/)
    const fresh = qbm(['map', fx('in-use-mixed'), 'fresh'])
    expect(fresh.code).toBe(0)
    expect(fresh.stderr).toBe('')
    const heat = qbm(['heatmap', fx('in-use-mixed'), 'stale', '--cells', '8'])
    expect(heat.stderr).toMatch(/is in use/)
  })
  it('a valid bitmap of an image QEMU refuses says so', () => {
    const r = qbm(['map', fx('corrupt-type'), 'b1'])
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(/QEMU refuses to open .*doesn't satisfy the constraints|QEMU refuses to open/)
  })
})

describe('qbm map --all prints what nbdinfo --map prints, byte for byte', () => {
  // nbdinfo merges nothing: with --all qbm lists the same alternating runs, in nbdinfo's columns
  // ("%10" PRIu64 "  %10" PRIu64 "  %3" PRIu32 "  %s").
  const fx = smallFixtures().filter((f) => f.qemuOpens && Object.keys(f.extents ?? {}).length > 0).slice(0, 6)
  it.each(fx.map((f) => [f.name, f] as const))('%s', (_n, f) => {
    const name = Object.keys(f.extents!)[0]!
    const r = run('nbdinfo', [`--map=qemu:dirty-bitmap:${name}`, '--', '[', 'qemu-nbd', '-r', '-f', 'qcow2', '-B', name, fixturePath(f), ']'])
    expect(r.code, r.stderr).toBe(0)
    const q = qbm(['map', fixturePath(f), name, '--all'])
    expect(q.code, q.stderr).toBe(0)
    expect(q.stdout).toBe(r.stdout)
  })
})

describe('qbm heatmap refuses an empty range', () => {
  it('--length 0 and --start at the disk end are usage errors', () => {
    const f = smallFixtures().find((x) => x.name === 'cs4k-basic')!
    const name = f.bitmaps[0]!.name
    for (const extra of [['--length', '0'], ['--start', String(f.virtualSize)]]) {
      const r = qbm(['heatmap', fixturePath(f), name, ...extra])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/--length must be more than 0|--start must be below the disk length/)
    }
  })
})
