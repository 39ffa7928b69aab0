/**
 * Planner and header rewrite corner cases, checked against QEMU 7.2 where QEMU has a say:
 * in-use bitmaps whose stored bits cannot be kept, refcounts past the end of the file, QEMU's
 * count and directory limits, a directory of thousands of entries, a header area that barely
 * fits (long backing file name with 512-byte clusters), and unknown header fields, unknown
 * extensions and autoclear bits (docs/format.md §1.4, §3.3, §5.5, §8).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConstraintError, type Edit, commitPlan, openImage, planEdits } from '../index.js'
import { MemoryDevice } from '../../io/memory.js'
import { loadRefcounts, setRefcountEntry, getRefcountEntry } from '../qcow2/refcount.js'
import { decodeExtensions } from '../qcow2/extensions.js'
import { buildImage, qemuImgCreate } from '../../test-support/edit-images.js'
import { checkImage, mustTool, nbdMap, qbmState, qemuInfo, sha256File } from '../../test-support/edit-oracle.js'
import { qbm, tempDir } from '../../test-support/tools.js'

const KiB = 1024
const MiB = 1024 * KiB

const tmp = tempDir('qbm-plan-')
afterAll(() => tmp.cleanup())
let seq = 0
const freshDir = (l: string): string => { const d = join(tmp.path, `${++seq}-${l}`); mkdirSync(d, { recursive: true }); return d }

const u64 = (b: Uint8Array, o: number): number => Number(new DataView(b.buffer, b.byteOffset).getBigUint64(o))
const setU64 = (b: Uint8Array, o: number, v: bigint): void => new DataView(b.buffer, b.byteOffset).setBigUint64(o, v)

async function memImage(path: string): Promise<{ dev: MemoryDevice; img: Awaited<ReturnType<typeof openImage>> }> {
  const dev = new MemoryDevice(new Uint8Array(readFileSync(path)))
  return { dev, img: await openImage(dev) }
}

describe('clear-in-use keep refuses stored bits QEMU would reject or that may be overwritten', () => {
  async function inUseImage(label: string): Promise<{ path: string; tableOffset: number; dataOffset: number; dir: string }> {
    const dir = freshDir(label)
    const b = await buildImage(dir, { name: 'i.qcow2', size: 64 * MiB, clusterSize: 64 * KiB, bitmaps: [{ name: 'a', granularity: 512, writes: [[0, MiB]] }], inUse: { writes: [[2 * MiB, MiB]] } })
    const { img } = await memImage(b.path)
    const a = img.bitmaps[0]!
    expect(a.status).toBe('in-use')
    return { path: b.path, tableOffset: a.tableOffset, dataOffset: a.table[0]!, dir }
  }

  it('a table entry with reserved bits: every edit refused (the image fails its check), drop-all repairs it', async () => {
    const { path, tableOffset, dataOffset, dir } = await inUseImage('bad-entry')
    const bytes = new Uint8Array(readFileSync(path))
    setU64(bytes, tableOffset, BigInt(dataOffset) | 2n)
    writeFileSync(path, bytes)
    expect(checkImage(path).code, 'qemu-img check fails on the patched image').toBe(1)
    const before = sha256File(path)
    for (const mode of ['keep', 'dirty', 'empty']) {
      const r = qbm(['bitmap', `--clear-in-use=${mode}`, '--force', 'i.qcow2', 'a'], { cwd: dir })
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/cannot edit: the image cannot be checked .*invalid entry 0.*--drop-all-bitmaps/)
      expect(sha256File(path)).toBe(before)
    }
    const { img } = await memImage(path)
    await expect(planEdits(img, [{ op: 'clear-in-use', name: 'a', mode: 'keep' }], { force: true })).rejects.toBeInstanceOf(ConstraintError)

    expect(qbm(['repair', 'i.qcow2', '--drop-all-bitmaps'], { cwd: dir }).code).toBe(0)
    // the cluster the bad entry pointed to is freed only if nothing else references it: a leak at most
    expect([0, 3]).toContain(checkImage(path).code)
    expect(qemuInfo(path).bitmaps).toEqual([])
  })

  it('a data cluster whose refcount is 0: keep refused', async () => {
    const { path, dataOffset, dir } = await inUseImage('rc0')
    const bytes = new Uint8Array(readFileSync(path))
    const dev = new MemoryDevice(bytes)
    const img = await openImage(dev)
    const rc = await loadRefcounts(dev, img.header)
    const cs = img.header.clusterSize
    const c = dataOffset / cs
    const blockOff = rc.reftable[Math.floor(c / rc.entriesPerBlock)]!
    const block = bytes.subarray(blockOff, blockOff + cs)
    expect(getRefcountEntry(block, img.header.refcountOrder, c % rc.entriesPerBlock)).toBe(1)
    setRefcountEntry(block, img.header.refcountOrder, c % rc.entriesPerBlock, 0)
    writeFileSync(path, bytes)
    const before = sha256File(path)
    const r = qbm(['bitmap', '--clear-in-use=keep', '--force', 'i.qcow2', 'a'], { cwd: dir })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/fails its check with 1 corruption .*refcount=0 reference=1/)
    expect(sha256File(path)).toBe(before)
  })
})

describe('allocator', () => {
  it('never hands out a cluster past the end of the file that still has a refcount', async () => {
    const dir = freshDir('past-eof')
    const b = await buildImage(dir, { name: 'e.qcow2', size: 16 * MiB, clusterSize: 4096, refcountBits: 16, bitmaps: [{ name: 'a', writes: [[0, 4096]] }] })
    const bytes = new Uint8Array(readFileSync(b.path))
    const { img } = await memImage(b.path)
    const cs = img.header.clusterSize
    const rc = await loadRefcounts(img.device, img.header)
    // A writer that died after counting two new clusters but before writing them.
    const eofCluster = Math.ceil(bytes.length / cs)
    for (const c of [eofCluster, eofCluster + 1]) {
      const slot = Math.floor(c / rc.entriesPerBlock)
      expect(rc.reftable[slot], 'covered by an existing refcount block').toBeGreaterThan(0)
      setRefcountEntry(bytes.subarray(rc.reftable[slot]!, rc.reftable[slot]! + cs), img.header.refcountOrder, c % rc.entriesPerBlock, 1)
    }
    writeFileSync(b.path, bytes)
    expect(checkImage(b.path).code).toBe(0) // qemu-img check does not look past the end of the file
    const m = await memImage(b.path)
    const plan = await planEdits(m.img, [{ op: 'add', name: 'n', granularity: 512 }, { op: 'merge', name: 'n', source: 'a' }])
    for (const w of plan.writes) {
      const c = Math.floor(w.offset / cs)
      expect([eofCluster, eofCluster + 1], `${w.what} at cluster ${c}`).not.toContain(c)
    }
    await commitPlan(m.dev, plan)
    writeFileSync(b.path, m.dev.bytes())
    const c = checkImage(b.path)
    expect(c.code, c.output).toBe(3) // now inside the file: the two clusters show as leaks, nothing is shared
    expect(nbdMap(b.path, 'n')).toEqual([{ offset: 0, length: 4096 }])
  })
})

describe('hostile refcount tables', () => {
  it('every reftable entry aimed at one live refcount block: memory stays bounded, the edit is refused, the file unchanged', async () => {
    const dir = freshDir('far-refblocks')
    const b = await buildImage(dir, { name: 'f.qcow2', size: 16 * MiB, clusterSize: 65536, refcountBits: 1, bitmaps: [{ name: 'a', writes: [[0, 4096]] }] })
    const bytes = new Uint8Array(readFileSync(b.path))
    const { img } = await memImage(b.path)
    const h = img.header
    const first = new DataView(bytes.buffer).getBigUint64(h.refcountTableOffset)
    // 1-bit refcounts, 64 KiB clusters: each block covers 2^19 clusters (32 GiB). Naively, 8,192
    // entries would mean 8,192 * 2^19 counts = 32 GiB of Float64Array.
    const entries = (h.refcountTableClusters * h.clusterSize) / 8
    expect(entries).toBeGreaterThanOrEqual(8192)
    for (let i = 1; i < entries; i++) new DataView(bytes.buffer).setBigUint64(h.refcountTableOffset + i * 8, first)
    writeFileSync(b.path, bytes)
    const before = sha256File(b.path)
    const m = await memImage(b.path)
    const rss0 = process.memoryUsage().rss
    const rc = await loadRefcounts(m.img.device, m.img.header)
    expect(rc.counts.length).toBeLessThanOrEqual(rc.entriesPerBlock)
    expect(rc.problems[0]?.message).toMatch(/refcount table at 0x[0-9a-f]+: entry\[1\] points to a refcount block .* past the end of the file/)
    expect(process.memoryUsage().rss - rss0).toBeLessThan(256 * MiB)
    const r = qbm(['bitmap', '--add', 'f.qcow2', 'x'], { cwd: dir })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/cannot edit/)
    expect(sha256File(b.path)).toBe(before)
  })
})

describe("QEMU's limits on the directory", () => {
  it('65535 bitmaps at most', async () => {
    const p = join(freshDir('count'), 'c.qcow2')
    qemuImgCreate(p, 64 * MiB, ['cluster_size=65536'])
    const { img } = await memImage(p)
    const edits: Edit[] = []
    for (let i = 0; i < 65536; i++) edits.push({ op: 'add', name: `b${i}`, granularity: MiB })
    await expect(planEdits(img, edits)).rejects.toThrow(/already has 65535 bitmaps/)
  })
  it('directory of at most 67,107,840 bytes (1023-byte names: 64,034 entries fit)', async () => {
    const p = join(freshDir('dirsize'), 'd.qcow2')
    qemuImgCreate(p, 64 * MiB, ['cluster_size=65536'])
    const { img } = await memImage(p)
    const edits: Edit[] = []
    for (let i = 0; i < 64035; i++) edits.push({ op: 'add', name: String(i).padStart(1023, 'n'), granularity: MiB })
    await expect(planEdits(img, edits)).rejects.toThrow(/bitmap n+64034 failed: the bitmap directory would be 67108680 bytes, over QEMU's 67107840/)
  })
  it('2000 bitmaps in one plan (directory over many 512-byte clusters): QEMU loads them all', async () => {
    const dir = freshDir('many')
    const p = join(dir, 'm.qcow2')
    qemuImgCreate(p, 8 * MiB, ['cluster_size=512', 'refcount_bits=8'])
    const m = await memImage(p)
    const edits: Edit[] = []
    for (let i = 0; i < 2000; i++) edits.push({ op: 'add', name: `bitmap-${i}`, granularity: 512 << (i % 12), disabled: i % 3 === 0 })
    await commitPlan(m.dev, await planEdits(m.img, edits))
    writeFileSync(p, m.dev.bytes())
    let c = checkImage(p)
    expect(c.code, c.output).toBe(0)
    const info = qemuInfo(p).bitmaps
    expect(info).toHaveLength(2000)
    expect(info.find((b) => b.name === 'bitmap-1999')).toEqual({ name: 'bitmap-1999', granularity: 512 << (1999 % 12), flags: ['auto'] })
    // remove every other one, through the CLI's engine path again
    const m2 = await memImage(p)
    await commitPlan(m2.dev, await planEdits(m2.img, edits.filter((_, i) => i % 2 === 1).map((e) => ({ op: 'remove', name: e.name }))))
    writeFileSync(p, m2.dev.bytes())
    c = checkImage(p)
    expect(c.code, c.output).toBe(0)
    expect(qemuInfo(p).bitmaps).toHaveLength(1000)
    mustTool('qemu-io', ['-f', 'qcow2', '-c', 'write 0 1M'], p)
    expect(checkImage(p).code).toBe(0)
  })
})

describe('header rewrite (docs/format.md §1.4)', () => {
  it('512-byte clusters: a long backing file name that still fits is kept; one that does not is refused', async () => {
    const dir = freshDir('longname')
    // header 112 + backing format ext 16 + bitmaps ext 32 + end 8 = 168: 344 bytes left for the name
    for (const [len, fits] of [[344, true], [345, false]] as const) {
      const name = `${'d/'.repeat((len - 'base.qcow2'.length) / 2 | 0)}${len % 2 ? 'xbase.qcow2' : 'base.qcow2'}`
      expect(name.length).toBe(len)
      mkdirSync(join(dir, name, '..'), { recursive: true })
      qemuImgCreate(join(dir, name), 16 * MiB, ['cluster_size=65536'])
      const p = join(dir, `o${len}.qcow2`)
      mustTool('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', '-b', name, '-F', 'qcow2'], p, [String(16 * MiB)])
      const before = sha256File(p)
      const r = qbm(['bitmap', '--add', `o${len}.qcow2`, 'x'], { cwd: dir })
      if (fits) {
        expect(r.code, r.stderr).toBe(0)
        const j = qemuInfo(p)
        expect((j.json as { 'backing-filename'?: string })['backing-filename']).toBe(name)
        expect(j.bitmaps.map((b) => b.name)).toEqual(['x'])
        expect(checkImage(p).code).toBe(0)
        const q = await qbmState(p)
        expect(q.bitmaps.map((b) => b.name)).toEqual(['x'])
      } else {
        expect(r.code).toBe(1)
        expect(r.stderr).toMatch(/would not fit in cluster 0/)
        expect(sha256File(p)).toBe(before)
      }
    }
  })

  it('unknown header fields and extensions are kept byte-exact, unknown autoclear bits cleared, bit 1 kept', async () => {
    const dir = freshDir('unknown')
    const p = join(dir, 'u.qcow2')
    qemuImgCreate(p, 16 * MiB, ['cluster_size=65536', 'data_file=u.data', 'data_file_raw=on'])
    mustTool('qemu-img', ['bitmap', '--add'], p, ['a'])
    const b = new Uint8Array(readFileSync(p))
    const view = new DataView(b.buffer)
    const hl = view.getUint32(100)
    expect(hl).toBe(112)
    // walk the extensions to the end record
    let pos = hl
    while (view.getUint32(pos) !== 0) pos += 8 + Math.ceil(view.getUint32(pos + 4) / 8) * 8
    const exts = b.slice(hl, pos)
    const unknownField = new TextEncoder().encode('UNKNOWN!')
    const unknownExt = new Uint8Array(16)
    new DataView(unknownExt.buffer).setUint32(0, 0x7a7a7a7a)
    new DataView(unknownExt.buffer).setUint32(4, 5)
    unknownExt.set(new TextEncoder().encode('hello'), 8)
    const area = new Uint8Array(65536 - hl)
    area.set(unknownField, 0)
    area.set(exts, 8)
    area.set(unknownExt, 8 + exts.length)
    b.set(area, hl)
    view.setUint32(100, hl + 8)
    setU64(b, 88, BigInt(u64(b, 88)) | (1n << 5n)) // an autoclear bit nobody knows
    writeFileSync(p, b)
    expect(checkImage(p).code).toBe(0)

    const r = qbm(['bitmap', '--add', 'u.qcow2', 'x'], { cwd: dir })
    expect(r.code, r.stderr).toBe(0)
    const after = new Uint8Array(readFileSync(p))
    const av = new DataView(after.buffer)
    expect(av.getUint32(100)).toBe(120)
    expect(after.slice(112, 120)).toEqual(unknownField)
    expect(BigInt(u64(after, 88))).toBe(3n) // bitmaps + raw external data; bit 5 cleared
    const { img } = await memImage(p)
    const unk = decodeExtensions(img.header, img.cluster0).find((e) => e.type === 0x7a7a7a7a)
    expect(unk && new TextDecoder().decode(unk.data)).toBe('hello')
    expect(checkImage(p).code).toBe(0)
    expect(qemuInfo(p).bitmaps.map((x) => x.name)).toEqual(['a', 'x'])
    // QEMU agrees: its own rewrite keeps them the same way
    mustTool('qemu-img', ['bitmap', '--add'], p, ['y'])
    const q = new Uint8Array(readFileSync(p))
    expect(q.slice(112, 120)).toEqual(unknownField)
    const { img: img2 } = await memImage(p)
    expect(decodeExtensions(img2.header, img2.cluster0).some((e) => e.type === 0x7a7a7a7a)).toBe(true)
  })
})

describe('set-ranges (qbm\'s own edit: the granules of byte ranges)', () => {
  it('sets every granule meeting the ranges, keeps what was set, clips to the disk; QEMU reads the result', async () => {
    const dir = freshDir('set-ranges')
    const b = await buildImage(dir, { name: 's.qcow2', size: 16 * MiB, clusterSize: 65536, bitmaps: [{ name: 'a', granularity: 4096, writes: [[0, 4096]] }] })
    const { img, dev } = await memImage(b.path)
    const ranges = new Float64Array([100, 200, 8192, 3 * 4096 + 1, 5 * MiB, 5 * MiB + 65536, 16 * MiB - 10, 17 * MiB])
    const results = [ranges, new Float64Array([MiB, MiB + 1])]
    const plan = await planEdits(img, [
      { op: 'add', name: 'n', granularity: 4096, disabled: true },
      { op: 'set-ranges', name: 'n', resultId: 0, what: 'a test' },
      { op: 'set-ranges', name: 'a', resultId: 1, what: 'one byte' },
    ], { sources: { ranges: (id) => results[id] } })
    await commitPlan(dev, plan)
    writeFileSync(b.path, dev.bytes())
    expect(checkImage(b.path).code).toBe(0)
    expect(nbdMap(b.path, 'n')).toEqual([
      { offset: 0, length: 4096 }, { offset: 8192, length: 8192 }, { offset: 5 * MiB, length: 65536 }, { offset: 16 * MiB - 4096, length: 4096 },
    ])
    expect(nbdMap(b.path, 'a')).toEqual([{ offset: 0, length: 4096 }, { offset: MiB, length: 4096 }])
  })
})
