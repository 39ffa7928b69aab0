// The host catalog's rules, on a directory tree of QEMU-made images: qcow2 by magic, not by
// extension; one level, or every level with recursive; symlinks out of a PATH skipped; loops
// walked once; an explicit symlink PATH taken; ids stable; a reopened entry must be the same file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFileSync, mkdirSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildCatalog, entryId, openEntry } from './catalog.js'
import { makeQemuImage } from '../test-support/qemu-images.js'
import { requireTool, run, tempDir } from '../test-support/tools.js'

let t: { path: string; cleanup: () => void }
let root: string
let outside: string

beforeAll(() => {
  t = tempDir('qbm-catalog-')
  root = join(t.path, 'images')
  outside = join(t.path, 'outside')
  for (const d of [root, outside, join(root, 'sub'), join(root, 'sub', 'deeper')]) mkdirSync(d, { recursive: true })
  const spec = { size: 1 << 20, options: 'cluster_size=4096', bitmaps: [{ name: 'b0' }], writes: ['write 0 4k'] }
  makeQemuImage(root, 'vm-disk', spec) // no extension: found by its magic
  makeQemuImage(root, 'b.qcow2', spec)
  makeQemuImage(join(root, 'sub'), 'c.qcow2', spec)
  makeQemuImage(join(root, 'sub', 'deeper'), 'd.img', spec)
  makeQemuImage(outside, 'o.qcow2', spec)
  writeFileSync(join(root, 'fake.qcow2'), 'not an image at all\n') // extension only: ignored
  requireTool('qemu-img')
  run('qemu-img', ['create', '-q', '-f', 'raw', join(root, 'raw.img'), '1M']) // raw: ignored
  // qcow2 magic, then a header qbm cannot read: listed (the overview reports the error)
  writeFileSync(join(root, 'corrupt.qcow2'), Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb]), Buffer.alloc(100, 0xff)]))
  symlinkSync(join(outside, 'o.qcow2'), join(root, 'link-out.qcow2'))
  symlinkSync('b.qcow2', join(root, 'link-in.qcow2')) // inside: the same file as b.qcow2, listed once
  symlinkSync('..', join(root, 'sub', 'loop')) // a directory loop inside the PATH
  symlinkSync('self', join(root, 'self')) // a symlink to itself (ELOOP)
  symlinkSync('nowhere.qcow2', join(root, 'dangling.qcow2'))
  run('mkfifo', [join(root, 'fifo')]) // never opened: opening a FIFO would block
  symlinkSync(join(outside, 'o.qcow2'), join(t.path, 'explicit-link'))
})
afterAll(() => t?.cleanup())

const rel = (p: string): string => p.slice(t.path.length + 1)

describe('buildCatalog', () => {
  it('lists the qcow2 files of a directory by magic, one level deep', () => {
    const c = buildCatalog([root], { recursive: false })
    expect(c.entries.map((e) => rel(e.path))).toEqual(['images/b.qcow2', 'images/corrupt.qcow2', 'images/vm-disk'])
    for (const e of c.entries) {
      expect(e.kind).toBe('file')
      expect(e.realPath).toBe(realpathSync(e.path))
      expect(e.id).toBe(entryId(e.realPath))
      expect(e.id).toMatch(/^[0-9a-f]{16}$/)
    }
    const errs = Object.fromEntries(c.errors.map((e) => [rel(e.path), e.message]))
    expect(errs['images/link-out.qcow2']).toMatch(/^skipped: a symlink to .*outside\/o\.qcow2, outside /)
    expect(errs['images/self']).toMatch(/symlink loop/)
    expect(errs['images/dangling.qcow2']).toMatch(/no such file/)
    // nothing else is reported: the text file, the raw image and the FIFO are simply not images
    expect(Object.keys(errs).sort()).toEqual(['images/dangling.qcow2', 'images/link-out.qcow2', 'images/self'])
  })

  it('descends with recursive, and walks a directory loop once', () => {
    const c = buildCatalog([root], { recursive: true })
    expect(c.entries.map((e) => rel(e.path))).toEqual([
      'images/b.qcow2', 'images/corrupt.qcow2', 'images/sub/c.qcow2', 'images/sub/deeper/d.img', 'images/vm-disk',
    ])
    const loop = c.errors.find((e) => rel(e.path) === 'images/sub/loop')
    expect(loop?.message).toMatch(/already walked/)
    expect(buildCatalog([root], { recursive: true, maxDepth: 2 }).entries.map((e) => rel(e.path))).not.toContain('images/sub/deeper/d.img')
  })

  it('takes an explicit symlink PATH: its target is what was asked for', () => {
    const c = buildCatalog([join(t.path, 'explicit-link')], { recursive: false })
    expect(c.errors).toEqual([])
    expect(c.entries.length).toBe(1)
    expect(c.entries[0]!.path).toBe(join(t.path, 'explicit-link'))
    expect(c.entries[0]!.realPath).toBe(realpathSync(join(outside, 'o.qcow2')))
  })

  it('reports an explicit PATH that is not a qcow2 image, or does not exist', () => {
    const c = buildCatalog([join(root, 'fake.qcow2'), join(root, 'raw.img'), join(root, 'missing'), join(root, 'fifo')], { recursive: false })
    expect(c.entries).toEqual([])
    expect(c.errors.map((e) => [rel(e.path), e.message])).toEqual([
      ['images/fake.qcow2', expect.stringMatching(/^not a qcow2 image \(it starts with 6e6f7420/)],
      ['images/raw.img', expect.stringMatching(/^not a qcow2 image \(it starts with 00000000/)],
      ['images/missing', expect.stringMatching(/no such file/)],
      ['images/fifo', 'not an image file, a directory or a block device'],
    ])
  })

  it('lists a file found twice once, and keeps ids across rescans', () => {
    const a = buildCatalog([root, join(root, 'b.qcow2'), join(root, 'link-in.qcow2')], { recursive: false })
    expect(a.entries.filter((e) => e.realPath.endsWith('/b.qcow2')).length).toBe(1)
    const b = buildCatalog([root], { recursive: false })
    expect(b.entries.map((e) => e.id)).toEqual(buildCatalog([root], { recursive: false }).entries.map((e) => e.id))
  })

  it('stops after maxEntries directory entries, saying so', () => {
    const c = buildCatalog([root], { recursive: true, maxEntries: 3 })
    expect(c.entries.length).toBeLessThanOrEqual(3)
    expect(c.errors.some((e) => /stopped: more than 3 directory entries/.test(e.message))).toBe(true)
  })
})

describe('openEntry', () => {
  it('opens the very file the scan found, and refuses a replaced file or a swapped-in symlink', () => {
    const dir = join(t.path, 'swap')
    mkdirSync(dir)
    copyFileSync(join(root, 'b.qcow2'), join(dir, 'x.qcow2'))
    const [e] = buildCatalog([dir], { recursive: false }).entries
    const dev = openEntry(e!, 'r')
    try {
      expect(dev.size).toBe(e!.sizeBytes)
      expect(Buffer.from(dev.readSync(0, 4)).toString('hex')).toBe('514649fb')
    } finally {
      dev.close()
    }
    // another file now lives at the path: refused
    copyFileSync(join(root, 'vm-disk'), join(dir, 'y.qcow2'))
    renameSync(join(dir, 'y.qcow2'), join(dir, 'x.qcow2'))
    expect(() => openEntry(e!, 'r')).toThrow(/no longer the file the scan found/)
    // a symlink now lives at the path: O_NOFOLLOW refuses it
    rmSync(join(dir, 'x.qcow2'))
    symlinkSync(join(outside, 'o.qcow2'), join(dir, 'x.qcow2'))
    expect(() => openEntry(e!, 'r')).toThrow(/ELOOP|symbolic link/)
  })
})

describe('block devices', () => {
  it('lists a loop device holding a qcow2 image, sized from /sys', () => {
    requireTool('losetup')
    const img = join(t.path, 'loop.qcow2')
    copyFileSync(join(root, 'b.qcow2'), img)
    run('truncate', ['-s', '1M', img]) // a loop device's size is a multiple of 512
    const r = run('losetup', ['-f', '--show', img])
    expect(r.stderr).toBe('')
    const loop = r.stdout.trim()
    try {
      const c = buildCatalog([loop], { recursive: false })
      expect(c.errors).toEqual([])
      expect(c.entries.length).toBe(1)
      expect(c.entries[0]!.kind).toBe('block')
      expect(c.entries[0]!.sizeBytes).toBe(1 << 20)
      const dev = openEntry(c.entries[0]!, 'r')
      try {
        expect(dev.size).toBe(1 << 20)
      } finally {
        dev.close()
      }
    } finally {
      run('losetup', ['-d', loop])
    }
  })
})
