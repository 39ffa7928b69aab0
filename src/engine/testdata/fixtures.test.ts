/**
 * The oracle suite (issue 2 "Tests"): for every fixture, `qbm` against QEMU's LIVE tools on
 * the same file, plus the QMP sha256 stored by make-fixtures.sh (QEMU needs a full system
 * emulator for it). The large set (4 TiB, 64 TiB, 2 MiB clusters) is generated at test time.
 *
 * - `qbm info --output=json`: names, granularities and flags equal `qemu-img info`'s bitmaps
 *   (QEMU lists none when it ignores the extension: autoclear bit 0 clear, or v2).
 * - `qbm map IMG NAME --output=json` equals the merged dirty extents of `nbdinfo --map` through
 *   `qemu-nbd -r -B NAME`, for every bitmap QEMU can export; qbm's dirtyBytes is their sum.
 * - `qbm info --sha256` equals QEMU's x-debug-block-dirty-bitmap-sha256.
 * - qbm says QEMU refuses the image exactly when `qemu-img info` fails; for corrupt fixtures
 *   the error names the patched field and its offset.
 * - `qbm check` exits as `qemu-img check` does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NodeFileDevice } from '../../io/node-file.js'
import { describeImage, openImage, type ImageSummary } from '../index.js'
import {
  type Fixture, buildLargeFixtures, fixturePath, qemuStyleName, smallFixtures,
} from '../../test-support/fixtures.js'
import { nbdDirtyExtents, qbm, qemuImg, tempDir } from '../../test-support/tools.js'

type QbmInfo = ImageSummary & { image: string }

const memo = new Map<string, unknown>()
/** Tool runs are shared between the tests of one fixture (same file, same answer). */
function once<T>(key: string, f: () => T): T {
  if (!memo.has(key)) memo.set(key, f())
  return memo.get(key) as T
}

function qbmJson<T>(args: string[], cwd: string): T {
  return once(`qbm ${cwd} ${args.join(' ')}`, () => qbmJsonUncached<T>(args, cwd))
}

function qbmJsonUncached<T>(args: string[], cwd: string): T {
  const r = qbm(args, { cwd })
  if (r.code !== 0) throw new Error(`qbm ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout) as T
}

/** What qemu-img info lists for this image right now (undefined: QEMU cannot open it). */
type LiveInfo = { bitmaps: Fixture['bitmaps']; virtualSize: number; clusterSize: number } | undefined
function liveQemuInfo(f: Fixture): LiveInfo {
  return once(`qemu-img info ${f.dir} ${f.file}`, () => liveQemuInfoUncached(f))
}

function liveQemuInfoUncached(f: Fixture): LiveInfo {
  const r = qemuImg(['info', '--output=json', f.file], f.dir)
  if (r.code !== 0) return undefined
  const j = JSON.parse(r.stdout) as { 'virtual-size': number; 'cluster-size': number; 'format-specific'?: { data?: { bitmaps?: Fixture['bitmaps'] } } }
  return { bitmaps: j['format-specific']?.data?.bitmaps ?? [], virtualSize: j['virtual-size'], clusterSize: j['cluster-size'] }
}

/** Bitmaps QEMU can export over NBD: it opens the image, lists the bitmap, not in use, name addressable. */
function exportable(f: Fixture, live: { bitmaps: Fixture['bitmaps'] } | undefined): string[] {
  if (!live) return []
  const seen = new Set<string>()
  const out: string[] = []
  for (const b of live.bitmaps) {
    if (b.flags.includes('in-use') || b.name.includes('\ufffd') || seen.has(b.name)) continue
    seen.add(b.name)
    out.push(b.name)
  }
  return out
}

/** Every message qbm gives about the image, to look for a field name or offset. */
function allMessages(s: ImageSummary): string[] {
  return [
    ...(s.bitmapsError ? [s.bitmapsError.message] : []),
    ...s.qemuRefuses, ...s.warnings,
    ...s.bitmaps.flatMap((b) => [...b.problems, ...b.warnings]),
  ]
}

function oracleCases(fixtures: () => Fixture[]): void {
  it('qbm info: names, granularities and flags equal qemu-img info (live)', () => {
    for (const f of fixtures()) {
      const live = liveQemuInfo(f)
      expect(live !== undefined, `${f.name}: qemu-img info opens it (manifest says ${f.qemuOpens})`).toBe(f.qemuOpens)
      const info = qbmJson<QbmInfo>(['info', '--output=json', f.file], f.dir)
      if (!live) continue
      // QEMU reports the disk length floor(size/512)*512 as its virtual size (docs/format.md §1.1).
      expect([info.diskLength, info.clusterSize], `${f.name}: disk length and cluster size`).toEqual([live.virtualSize, live.clusterSize])
      // QEMU lists nothing when it ignores the extension (autoclear bit 0 clear, or v2).
      const listed = info.bitmaps.filter((b) => b.status !== 'untrusted')
      expect(listed.map((b) => ({ name: qemuStyleName(b.name), granularity: b.granularity, flags: b.flags })), f.name)
        .toEqual(live.bitmaps.map((b) => ({ name: b.name, granularity: b.granularity, flags: b.flags })))
    }
  })

  it('qbm map equals nbdinfo --map through qemu-nbd -r -B NAME, and dirtyBytes is their sum', () => {
    let compared = 0
    for (const f of fixtures()) {
      const live = liveQemuInfo(f)
      const names = exportable(f, live)
      if (names.length === 0) continue
      const info = qbmJson<QbmInfo>(['info', '--output=json', f.file], f.dir)
      for (const name of names) {
        const want = nbdDirtyExtents(f.file, name, f.dir)
        const got = qbmJson<Array<{ offset: number; length: number }>>(['map', f.file, name, '--output=json'], f.dir)
        expect(got, `${f.name} ${name}`).toEqual(want)
        const b = info.bitmaps.find((x) => x.name === name)!
        expect(b.dirtyBytes, `${f.name} ${name} dirtyBytes`).toBe(want.reduce((s, e) => s + e.length, 0))
        expect(b.extentCount, `${f.name} ${name} extentCount`).toBe(want.length)
        if (f.extents?.[name]) expect(want, `${f.name} ${name}: manifest extents are stale`).toEqual(f.extents[name])
        compared++
      }
    }
    expect(compared).toBeGreaterThan(0)
  })

  it('qbm info --sha256 equals QEMU x-debug-block-dirty-bitmap-sha256', () => {
    let compared = 0
    for (const f of fixtures()) {
      const names = Object.keys(f.sha256)
      if (names.length === 0) continue
      const info = qbmJson<QbmInfo>(['info', '--sha256', '--output=json', f.file], f.dir)
      for (const name of names) {
        // QEMU skips a later in_use duplicate: the first entry with the name is the one it loaded.
        const b = info.bitmaps.find((x) => qemuStyleName(x.name) === name)
        expect(b, `${f.name}: qbm lists ${name}`).toBeDefined()
        expect(b!.sha256, `${f.name} ${name}`).toBe(f.sha256[name])
        compared++
      }
    }
    expect(compared).toBeGreaterThan(0)
  })

  it('qbm flags the image as refused by QEMU exactly when qemu-img info fails', async () => {
    for (const f of fixtures()) {
      const live = liveQemuInfo(f)
      const dev = NodeFileDevice.open(fixturePath(f))
      try {
        const s = await describeImage(await openImage(dev))
        const invalid = s.bitmaps.filter((b) => b.status === 'invalid').map((b) => `${b.name}: ${b.problems.join('; ')}`)
        const ctx = `${f.name} (qemu: ${f.qemuError ?? 'opens'}; qbm refuses: ${JSON.stringify(s.qemuRefuses)}; invalid: ${JSON.stringify(invalid)})`
        expect(s.qemuRefuses.length > 0, ctx).toBe(live === undefined)
        if (live) expect(invalid, ctx).toEqual([])
      } finally {
        dev.close()
      }
    }
  })

  it('qbm check exits as qemu-img check does', () => {
    for (const f of fixtures()) {
      const want = qemuImg(['check', f.file], f.dir).code
      expect(want, `${f.name}: manifest qemuCheckExit`).toBe(f.qemuCheckExit)
      const got = qbm(['check', f.file], { cwd: f.dir })
      expect(got.code, `${f.name}: qbm check said ${got.stdout.slice(-400)}${got.stderr}`).toBe(want)
    }
  })
}

describe('small fixtures (committed)', () => {
  oracleCases(smallFixtures)

  const corrupt = smallFixtures().filter((f) => f.patch && f.tags.includes('corrupt') && f.patch.structure !== 'refcount_block')
  it.each(corrupt.map((f) => [f.name, f] as const))('%s: the error names the patched field and its offset', async (_n, f) => {
    const dev = NodeFileDevice.open(fixturePath(f))
    try {
      const s = await describeImage(await openImage(dev))
      const msgs = allMessages(s)
      const field = f.patch!.field
      const at = `at 0x${f.patch!.offset.toString(16)}:`
      const ctx = `${f.name}: ${f.description}\npatched ${field} at ${f.patch!.offset}; qbm says:\n  ${msgs.join('\n  ')}`
      expect(msgs.some((m) => m.includes(field) && m.includes(at)), ctx).toBe(true)
    } finally {
      dev.close()
    }
  })

  it('every fixture file listed in the manifest exists and has the recorded size', async () => {
    const { statSync } = await import('node:fs')
    const fx = smallFixtures()
    expect(fx.length).toBeGreaterThan(40)
    for (const f of fx) expect(statSync(fixturePath(f)).size, f.name).toBe(f.fileSize)
  })
})

describe('large fixtures (generated at test time)', () => {
  let tmp: ReturnType<typeof tempDir>
  let large: Fixture[] = []
  beforeAll(() => {
    tmp = tempDir('qbm-large-')
    large = buildLargeFixtures(tmp.path)
  }, 900_000)
  afterAll(() => tmp?.cleanup())

  it('includes the 4 TiB and 64 TiB images', () => {
    const sizes = large.map((f) => f.virtualSize)
    expect(sizes).toContain(4 * 2 ** 40)
    expect(sizes).toContain(64 * 2 ** 40)
  })

  oracleCases(() => large)
})
