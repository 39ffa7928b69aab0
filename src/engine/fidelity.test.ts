/**
 * Fidelity with QEMU 7.2 where qbm used to differ (issue 10 "Fidelity debts"; docs/format.md §9).
 * Each case is a committed fixture plus a patch at a named offset, judged by the real tools:
 * `qemu-img info` (does QEMU's normal open refuse it, which bitmaps does it list), `nbdinfo
 * --map` through `qemu-nbd -r -B NAME` (what QEMU exports), `qemu-img check` (exit code and
 * counts), and, for edits, `qemu-img check` after the write.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { NodeFileDevice } from '../io/node-file.js'
import { type Image, ConstraintError, checkImage, commitPlan, describeImage, openImage, planEdits } from './index.js'
import { DirEntryField, HeaderField } from './qcow2/constants.js'
import { L1_ENTRY_SIZE, clusterType, entryOffset, isCopied } from './qcow2/mapping.js'
import { fixturePath, smallFixtures } from '../test-support/fixtures.js'
import { nbdDirtyExtents, qbm, qemuImg, requireTool, tempDir } from '../test-support/tools.js'

let tmp: ReturnType<typeof tempDir>
beforeAll(() => {
  for (const t of ['qemu-img', 'qemu-nbd', 'nbdinfo']) requireTool(t)
  tmp = tempDir('qbm-fidelity-')
})
afterAll(() => tmp?.cleanup())

/** A copy of committed fixture `name`, patched by `patch` (which returns what it did). */
async function patched(name: string, as: string, patch: (img: Image, bytes: Uint8Array, view: DataView) => string): Promise<{ path: string; what: string }> {
  const f = smallFixtures().find((x) => x.name === name)
  if (!f) throw new Error(`no fixture ${name}`)
  const path = join(tmp.path, as)
  copyFileSync(fixturePath(f), path)
  const bytes = new Uint8Array(readFileSync(path))
  const what = await withImage(path, (img) => patch(img, bytes, new DataView(bytes.buffer)))
  writeFileSync(path, bytes)
  return { path, what }
}

async function withImage<T>(path: string, fn: (img: Image) => T | Promise<T>, mode: 'r' | 'rw' = 'r'): Promise<T> {
  const dev = NodeFileDevice.open(path, mode)
  try {
    return await fn(await openImage(dev))
  } finally {
    dev.close()
  }
}

/** qemu-img check's exit code and the counts it prints. */
function qemuCheck(path: string): { code: number; errors: number; leaks: number } {
  const r = qemuImg(['check', '-f', 'qcow2', path])
  const n = (re: RegExp): number => Number(re.exec(r.stdout)?.[1] ?? 0)
  return { code: r.code, errors: n(/^(\d+) errors were found/m), leaks: n(/^(\d+) leaked clusters were found/m) }
}

/** The names `qemu-img info` lists, or undefined when QEMU refuses the image. */
function qemuInfoBitmaps(path: string): string[] | undefined {
  const r = qemuImg(['info', '-f', 'qcow2', '--output=json', path])
  if (r.code !== 0) return undefined
  const j = JSON.parse(r.stdout) as { 'format-specific'?: { data?: { bitmaps?: Array<{ name: string }> } } }
  return (j['format-specific']?.data?.bitmaps ?? []).map((b) => b.name)
}

/** An edit must be refused with the file left byte-identical. */
async function expectEditRefused(path: string): Promise<void> {
  const before = readFileSync(path)
  await expect(withImage(path, async (img) => planEdits(img, [{ op: 'add', name: 'refused' }]), 'rw')).rejects.toBeInstanceOf(ConstraintError)
  expect(Buffer.compare(readFileSync(path), before), 'the refused edit left the file byte-identical').toBe(0)
}

describe('a bitmap table past the end of the file', () => {
  // QEMU reads zeros there: the image opens and the bitmap is exported empty; qemu-img check
  // counts the reference past the end as a corruption.
  for (const [fixture, bitmap] of [['cs4k-basic', 'b0'], ['cs512-g512', 'g512']] as const) {
    it(`${fixture}: '${bitmap}' opens, reads as empty as nbdinfo shows, and the check and the gate agree with QEMU`, async () => {
      let entryOffset = 0
      let tablePast = 0
      const { path, what } = await patched(fixture, `table-past-eof-${fixture}.qcow2`, (img, _b, v) => {
        const b = img.bitmaps.find((x) => x.name === bitmap)!
        entryOffset = b.entry.offset + DirEntryField.bitmapTableOffset
        const cs = img.header.clusterSize
        tablePast = (Math.ceil(img.fileSize / cs) + 16) * cs
        v.setBigUint64(entryOffset, BigInt(tablePast))
        return `bitmap_table_offset of '${bitmap}' at 0x${entryOffset.toString(16)} = 0x${tablePast.toString(16)}`
      })
      // QEMU opens it and lists the bitmap; it exports it with no dirty extent.
      expect(qemuInfoBitmaps(path), what).toContain(bitmap)
      expect(nbdDirtyExtents(path, bitmap)).toEqual([])
      // qbm: the same reading, a warning naming the field and its offset, never "QEMU refuses".
      const s = await withImage(path, (img) => describeImage(img))
      const b = s.bitmaps.find((x) => x.name === bitmap)!
      expect(s.qemuRefuses).toEqual([])
      expect(b.status).toBe('ok')
      expect(b.dirtyBytes).toBe(0)
      expect(b.findings).toContainEqual(expect.objectContaining({ severity: 'warning', field: 'bitmap_table_offset', offset: entryOffset }))
      const map = qbm(['map', path, bitmap, '--output=json'])
      expect(map.code, map.stderr).toBe(0)
      expect(JSON.parse(map.stdout)).toEqual([])
      const info = qbm(['info', path])
      expect(info.code).toBe(0)
      expect(info.stdout + info.stderr).not.toMatch(/refuse/i)
      // The check: as qemu-img check (one corruption for the table past the end).
      const q = qemuCheck(path)
      expect(q.code).toBe(2)
      const r = await withImage(path, (img) => checkImage(img))
      expect([r.exitCode, r.corruptions, r.leaks]).toEqual([q.code, q.errors, q.leaks])
      expect(qbm(['check', path]).code).toBe(q.code)
      // The gate refuses to write to it.
      await expectEditRefused(path)
    })
  }
})

describe('snapshots_offset with nb_snapshots = 0', () => {
  // QEMU validates the location even without snapshots (qcow2_validate_table): bit 63 or an
  // unaligned offset fail; bit 62 or 54 pass, and qemu-img check is clean.
  for (const bit of [62, 54]) {
    it(`bit ${bit} set: QEMU opens it, the check is clean, and qbm edits it`, async () => {
      const { path, what } = await patched('cs64k-basic', `snap-bit${bit}.qcow2`, (_img, _b, v) => {
        expect(v.getUint32(HeaderField.nbSnapshots)).toBe(0)
        v.setBigUint64(HeaderField.snapshotsOffset, 1n << BigInt(bit))
        return `snapshots_offset at 0x${HeaderField.snapshotsOffset.toString(16)} = 2^${bit}`
      })
      expect(qemuInfoBitmaps(path), what).toEqual(['b0'])
      expect(qemuCheck(path).code).toBe(0)
      const s = await withImage(path, (img) => describeImage(img, { counts: false }))
      expect(s.qemuRefuses).toEqual([])
      expect(qbm(['check', path]).code).toBe(0)
      await withImage(path, async (img) => commitPlan(img.device as NodeFileDevice, await planEdits(img, [{ op: 'add', name: 'after' }])), 'rw')
      expect(qemuCheck(path).code).toBe(0)
      expect(qemuInfoBitmaps(path)).toEqual(['b0', 'after'])
      const v = new DataView(readFileSync(path).buffer)
      expect(v.getBigUint64(HeaderField.snapshotsOffset), 'the header rewrite keeps the field').toBe(1n << BigInt(bit))
    })
  }

  for (const [label, value] of [['bit 63 set', 1n << 63n], ['unaligned (512 with 64 KiB clusters)', 512n]] as const) {
    it(`${label}: QEMU refuses it and its check fails; qbm says so and does not edit`, async () => {
      const { path } = await patched('cs64k-basic', `snap-${value}.qcow2`, (_img, _b, v) => {
        v.setBigUint64(HeaderField.snapshotsOffset, value)
        return ''
      })
      expect(qemuInfoBitmaps(path)).toBeUndefined()
      expect(qemuCheck(path).code).toBe(1)
      const img = await withImage(path, (i) => i)
      expect(img.findings).toContainEqual(expect.objectContaining({ severity: 'refusal', field: 'snapshots_offset', offset: HeaderField.snapshotsOffset, normalOnly: true }))
      expect(qbm(['check', path]).code).toBe(1)
      await expectEditRefused(path)
    })
  }
})

describe('the edit gate runs QEMU\'s OFLAG_COPIED pass', () => {
  it('a data cluster whose COPIED flag is cleared: qemu-img check finds it, and the edit is refused', async () => {
    let at = 0
    const { path, what } = await patched('cs4k-basic', 'copied.qcow2', (img, bytes, v) => {
      // the first normal cluster of the first L2 table
      const l2 = entryOffset(v.getUint32(img.header.l1TableOffset), v.getUint32(img.header.l1TableOffset + 4))
      for (let p = l2; p < l2 + img.header.clusterSize; p += 8) {
        const hi = v.getUint32(p), lo = v.getUint32(p + 4)
        if (clusterType(hi, lo, false, false) === 'normal' && isCopied(hi)) { at = p; break }
      }
      expect(at).toBeGreaterThan(0)
      bytes[at] = bytes[at]! & 0x7f
      return `COPIED flag of the L2 entry at 0x${at.toString(16)} cleared (L1 entry size ${L1_ENTRY_SIZE})`
    })
    const q = qemuCheck(path)
    expect(q.code, what).toBe(2)
    expect(q.errors).toBe(1)
    const r = await withImage(path, (img) => checkImage(img))
    expect([r.exitCode, r.corruptions]).toEqual([2, 1])
    expect(r.findings.some((f) => f.kind === 'error' && f.message.startsWith('ERROR OFLAG_COPIED data cluster'))).toBe(true)
    await expectEditRefused(path)
  })
})
