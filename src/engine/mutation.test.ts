/**
 * Hostile input (issue 2 "Hostile input", issue 10 "Hostile input on the write path"): seeded
 * byte- and field-level mutations of every fixture and of a few built images, aimed at metadata
 * (cluster 0, the bitmaps extension, the directory, bitmap tables and data, the reftable and
 * refblocks, the L1 table).
 *
 * Read path: for each mutant, openImage + describeImage (with counts) + extent pages, ranges,
 * heatmaps and the digest of every readable bitmap must either succeed or throw an engine error
 * (FormatError / UnsupportedError / DeviceError / ConstraintError), never a TypeError,
 * RangeError or undefined access; finish within 2 s; and never ask the device for bytes past
 * the end of the file, for more than 64 MiB at once, or for more than 512 MiB in total.
 *
 * Write path: for each mutant, checkImage, the allocation map and the planner (a random edit
 * or repair) under the same rules, and the plan, if any, committed to a copy. "Safe" means:
 * - a refusal (an engine error from the planner) leaves the file byte-identical: no write at all;
 * - a write touches no cluster that guest data or its mapping uses (everything the check counts
 *   as referenced outside the bitmaps, except cluster 0 and the refcount structures, which the
 *   plan rewrites by design), so the guest data is unchanged;
 * - the written image passes qbm's check no worse than before (no corruption, no check error;
 *   clean stays clean);
 * - on a sample of the writes, QEMU agrees: `qemu-img check` on the result is no worse than on
 *   the mutant, and `qemu-img compare` finds the guest data of both identical.
 */
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { MemoryDevice } from '../io/memory.js'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  AllocationMap, ConstraintError, DeviceError, FormatError, UnsupportedError, bitmapSha256, checkImage, commitPlan,
  describeImage, digestLength, extentPage, extentsInRange, heatmap, openImage, planEdits, planRepair, type Edit, type Image,
  type Plan, type Repair,
} from './index.js'
import { loadRefcounts } from './qcow2/refcount.js'
import { requireTool, run } from '../test-support/tools.js'
import { readable, readerFor } from './describe.js'
import { HeaderField } from './qcow2/constants.js'
import { Rng } from '../test-support/prng.js'
import { buildQcow2 } from '../test-support/qcow2-builder.js'
import { randomCase } from '../test-support/random-bitmaps.js'
import { DeadlineExceeded, RecordingDevice, deadlineSignal } from '../test-support/recording-device.js'
import { fixturePath, smallFixtures } from '../test-support/fixtures.js'

const CASE_MS = 2000
const MAX_READ = 64 << 20
const MAX_TOTAL = 512 << 20
const SEED = 20251125

interface Region { name: string; offset: number; length: number }
interface Field { name: string; offset: number; width: 1 | 2 | 4 | 8 }
interface Source { name: string; bytes: Uint8Array; regions: Region[]; fields: Field[]; cs: number }

function isEngineError(e: unknown): boolean {
  return e instanceof FormatError || e instanceof UnsupportedError || e instanceof DeviceError || e instanceof ConstraintError
}

const HEADER_WIDTHS: Record<keyof typeof HeaderField, 1 | 2 | 4 | 8> = {
  magic: 4, version: 4, backingFileOffset: 8, backingFileSize: 4, clusterBits: 4, size: 8, cryptMethod: 4,
  l1Size: 4, l1TableOffset: 8, refcountTableOffset: 8, refcountTableClusters: 4, nbSnapshots: 4,
  snapshotsOffset: 8, incompatibleFeatures: 8, compatibleFeatures: 8, autoclearFeatures: 8,
  refcountOrder: 4, headerLength: 4, compressionType: 1,
}

function u64(b: Uint8Array, off: number): number {
  if (off + 8 > b.length) return 0
  return Number(new DataView(b.buffer, b.byteOffset).getBigUint64(off) & 0x00ffffffffffffffn)
}

/** Metadata regions and field positions of a clean image, found through openImage. */
async function describeSource(name: string, bytes: Uint8Array): Promise<Source> {
  const img = await openImage(new MemoryDevice(bytes))
  const h = img.header
  const cs = h.clusterSize
  const regions: Region[] = [{ name: 'cluster 0', offset: 0, length: Math.min(cs, bytes.length) }]
  const fields: Field[] = []
  for (const [k, off] of Object.entries(HeaderField)) {
    if (h.version === 2 && off >= 72) continue
    fields.push({ name: `header.${k}`, offset: off, width: HEADER_WIDTHS[k as keyof typeof HeaderField] })
  }
  for (const e of img.extensions) {
    fields.push({ name: `ext 0x${e.type.toString(16)}.type`, offset: e.offset, width: 4 }, { name: `ext 0x${e.type.toString(16)}.length`, offset: e.offset + 4, width: 4 })
  }
  const be = img.bitmapsExtension
  if (be) {
    regions.push({ name: 'bitmaps extension', offset: be.offset - 8, length: 32 })
    fields.push(
      { name: 'ext.nb_bitmaps', offset: be.offset, width: 4 }, { name: 'ext.reserved32', offset: be.offset + 4, width: 4 },
      { name: 'ext.bitmap_directory_size', offset: be.offset + 8, width: 8 }, { name: 'ext.bitmap_directory_offset', offset: be.offset + 16, width: 8 },
    )
    regions.push({ name: 'directory', offset: be.bitmapDirectoryOffset, length: be.bitmapDirectorySize })
  }
  for (const b of img.bitmaps) {
    const e = b.entry.offset
    fields.push(
      { name: `dir[${b.index}].bitmap_table_offset`, offset: e, width: 8 }, { name: `dir[${b.index}].bitmap_table_size`, offset: e + 8, width: 4 },
      { name: `dir[${b.index}].flags`, offset: e + 12, width: 4 }, { name: `dir[${b.index}].type`, offset: e + 16, width: 1 },
      { name: `dir[${b.index}].granularity_bits`, offset: e + 17, width: 1 }, { name: `dir[${b.index}].name_size`, offset: e + 18, width: 2 },
      { name: `dir[${b.index}].extra_data_size`, offset: e + 20, width: 4 },
    )
    if (b.tableOffset > 0 && b.tableSize > 0 && b.tableOffset + b.tableSize * 8 <= bytes.length) {
      regions.push({ name: `table ${b.index}`, offset: b.tableOffset, length: b.tableSize * 8 })
      for (let i = 0; i < Math.min(b.tableSize, 8); i++) fields.push({ name: `table ${b.index}[${i}]`, offset: b.tableOffset + 8 * i, width: 8 })
      for (let i = 0; i < Math.min(b.table.length, 4); i++) {
        const off = b.table[i]!
        if (off > 1 && off + cs <= bytes.length) regions.push({ name: `data ${b.index}.${i}`, offset: off, length: cs })
      }
    }
  }
  const rt = h.refcountTableOffset
  if (rt > 0 && rt < bytes.length) {
    const len = Math.min(h.refcountTableClusters * cs, bytes.length - rt)
    regions.push({ name: 'reftable', offset: rt, length: len })
    for (let i = 0; i < Math.min(len / 8, 4); i++) {
      fields.push({ name: `reftable[${i}]`, offset: rt + 8 * i, width: 8 })
      const blk = u64(bytes, rt + 8 * i) & ~0x1ff
      if (blk > 0 && blk + cs <= bytes.length) regions.push({ name: `refblock ${i}`, offset: blk, length: cs })
    }
  }
  if (h.l1TableOffset > 0 && h.l1Size > 0 && h.l1TableOffset < bytes.length) {
    regions.push({ name: 'L1', offset: h.l1TableOffset, length: Math.min(h.l1Size * 8, bytes.length - h.l1TableOffset) })
    fields.push({ name: 'L1[0]', offset: h.l1TableOffset, width: 8 })
  }
  return { name, bytes, regions: regions.filter((r) => r.length > 0), fields: fields.filter((f) => f.offset + f.width <= bytes.length), cs }
}

function boundaryValues(width: 1 | 2 | 4 | 8, src: Source, rng: Rng): bigint {
  const size = BigInt(src.bytes.length)
  const cs = BigInt(src.cs)
  switch (width) {
    case 1: return BigInt(rng.pick([0, 1, 2, 8, 9, 21, 22, 31, 32, 63, 64, 127, 128, 255, rng.int(256)]))
    case 2: return BigInt(rng.pick([0, 1, 2, 1023, 1024, 0x7fff, 0xffff, rng.int(65536)]))
    case 4: return BigInt(rng.pick([0, 1, 2, 3, 4, 7, 8, 24, 104, 112, 1023, 65535, 65536, 0x7fffffff, 0x80000000, 0xffffffff,
      0x8000000, 0x8000001, 67107840, 67107848, src.bytes.length, rng.int(2 ** 32)]))
    case 8: return rng.pick([0n, 1n, 2n, 0xffffffffn, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 56n, 2n ** 63n, 2n ** 64n - 1n,
      size, size + cs, size - cs, (size / cs) * cs, cs, cs * 2n, cs + 8n, cs - 8n, 67107840n, 67107848n, 2n ** 40n,
      (BigInt(rng.int(2 ** 20)) * cs), BigInt(rng.int(2 ** 32)) * 2n ** 20n + BigInt(rng.int(2 ** 20))])
  }
}

function writeField(b: Uint8Array, f: Field, v: bigint): void {
  const dv = new DataView(b.buffer, b.byteOffset)
  if (f.width === 1) dv.setUint8(f.offset, Number(v & 0xffn))
  else if (f.width === 2) dv.setUint16(f.offset, Number(v & 0xffffn))
  else if (f.width === 4) dv.setUint32(f.offset, Number(v & 0xffffffffn))
  else dv.setBigUint64(f.offset, v & 0xffffffffffffffffn)
}

/** Apply one random mutation (sometimes two or three); returns what it did. */
function mutate(src: Source, rng: Rng): { bytes: Uint8Array; what: string } {
  let bytes = src.bytes.slice()
  const what: string[] = []
  const n = rng.bool(0.8) ? 1 : rng.range(2, 3)
  for (let k = 0; k < n; k++) {
    const kind = rng.int(10)
    if (kind < 5 && src.fields.length) {
      const f = rng.pick(src.fields)
      if (f.offset + f.width > bytes.length) continue
      const v = boundaryValues(f.width, src, rng)
      writeField(bytes, f, v)
      what.push(`${f.name}@0x${f.offset.toString(16)} = 0x${v.toString(16)}`)
    } else if (kind < 9) {
      const r = rng.pick(src.regions)
      const off = r.offset + rng.int(r.length)
      if (off >= bytes.length) continue
      const op = rng.int(4)
      if (op === 0) { const bit = rng.int(8); bytes[off] = bytes[off]! ^ (1 << bit); what.push(`${r.name}: flip bit ${bit} at 0x${off.toString(16)}`) }
      else if (op === 1) { const v = rng.int(256); bytes[off] = v; what.push(`${r.name}: byte 0x${off.toString(16)} = 0x${v.toString(16)}`) }
      else if (op === 2) { const v = rng.pick([0, 0xff]); const len = rng.range(1, 16); bytes.fill(v, off, Math.min(bytes.length, off + len)); what.push(`${r.name}: ${len} x 0x${v.toString(16)} at 0x${off.toString(16)}`) }
      else { const junk = rng.bytes(rng.range(1, 24)); bytes.set(junk.subarray(0, Math.max(0, Math.min(junk.length, bytes.length - off))), off); what.push(`${r.name}: ${junk.length} random bytes at 0x${off.toString(16)}`) }
    } else {
      const r = rng.pick(src.regions)
      const cut = Math.min(bytes.length, r.offset + rng.int(r.length + 1))
      bytes = bytes.slice(0, cut)
      what.push(`truncate to 0x${cut.toString(16)} (inside ${r.name})`)
    }
  }
  return { bytes, what: what.join('; ') }
}

interface Outcome { ok: boolean; engineError?: string; failure?: string; ms: number; dev: RecordingDevice }

/** Everything a viewer does with an image, under a deadline. */
async function exercise(bytes: Uint8Array, rng: Rng): Promise<Outcome> {
  const dev = new RecordingDevice(new MemoryDevice(bytes))
  const t0 = Date.now()
  const deadline = t0 + CASE_MS
  dev.deadline = deadline
  const signal = deadlineSignal(deadline)
  try {
    const img: Image = await openImage(dev, { signal })
    const readers = new Map()
    await describeImage(img, { counts: true, signal, readers })
    for (const b of img.bitmaps) {
      if (!readable(b)) continue
      const r = readerFor(img, b, readers)
      await r.scan({ signal })
      const L = r.diskLength
      await extentPage(r, rng.int(r.runCount + 2), rng.range(0, 50), signal)
      await extentPage(r, 0, 10, signal)
      const a = rng.int(L + 1), c = rng.int(L + 1)
      await extentsInRange(r, Math.min(a, c), Math.max(a, c), 100, signal)
      await heatmap(r, 0, L, rng.pick([1, 64, 1000]), signal)
      await heatmap(r, Math.min(a, c), Math.max(a, c), rng.range(1, 300), signal)
      // Hashing costs a full pass (QEMU's limit is 512 MiB of bitmap, seconds of SHA-256):
      // only for bitmaps up to 8 MiB, so the 2 s bound measures the engine, not the hash rate.
      if (rng.bool(0.3) && digestLength(r.nbits) <= 8 << 20) await bitmapSha256(r, { signal })
    }
    return { ok: true, ms: Date.now() - t0, dev }
  } catch (e) {
    const ms = Date.now() - t0
    if (e instanceof DeadlineExceeded || (e as Error)?.name === 'AbortError') return { ok: false, failure: `timed out after ${ms} ms`, ms, dev }
    if (isEngineError(e)) return { ok: true, engineError: (e as Error).name, ms, dev }
    return { ok: false, failure: `${(e as Error)?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack?.split('\n').slice(1, 4).join('\n')}`, ms, dev }
  }
}

async function sources(): Promise<Source[]> {
  const out: Source[] = []
  for (const f of smallFixtures()) {
    const bytes = new Uint8Array(readFileSync(fixturePath(f)))
    try {
      out.push(await describeSource(f.name, bytes))
    } catch (e) {
      if (!isEngineError(e)) throw e
    }
  }
  const rng = new Rng(SEED)
  for (let i = 0; i < 6; i++) {
    const c = randomCase(rng, { allowInUse: true, allowTailBits: true, maxBits: 40_000 })
    out.push(await describeSource(`built ${i} (${c.label})`, buildQcow2(c.options).bytes))
  }
  return out
}

/** The byte ranges of the set-ranges edits. */
const TEST_RANGES = new Float64Array([0, 65536, 2 ** 20, 2 ** 21])

/** A random edit (or repair) for this image, built from its bitmaps' names. */
function pickEdit(img: Image, rng: Rng): { edit?: Edit; repair?: Repair; what: string } {
  const names = img.bitmaps.map((b) => b.name)
  const name = names.length ? rng.pick(names) : 'none'
  const k = rng.int(12)
  const e = (edit: Edit): { edit: Edit; what: string } => ({ edit, what: JSON.stringify(edit) })
  switch (k) {
    case 0: return e({ op: 'add', name: `m${rng.int(100)}`, ...(rng.bool(0.5) ? { granularity: rng.pick([512, 4096, 65536, 2 ** 31]) } : {}) })
    case 1: return e({ op: 'remove', name })
    case 2: return e({ op: 'clear', name })
    case 3: return e({ op: rng.bool(0.5) ? 'enable' : 'disable', name })
    case 4: return e({ op: 'rename', name, newName: `${name}-r` })
    case 5: return e({ op: 'clear-in-use', name, mode: rng.pick(['keep', 'dirty', 'empty'] as const) })
    case 6: return e({ op: 'merge', name, source: names.length ? rng.pick(names) : 'none' })
    case 7: return e({ op: 'set-ranges', name, resultId: 0, what: 'test ranges' })
    case 8: return { repair: 'drop-all-bitmaps', what: 'repair drop-all-bitmaps' }
    case 9: return { repair: 'retrust', what: 'repair retrust' }
    case 10: return { repair: 'fix-autoclear', what: 'repair fix-autoclear' }
    default: return e({ op: 'copy', name, newName: `c${rng.int(100)}` })
  }
}

/** Clusters guest data or its mapping uses: referenced outside the bitmaps, minus cluster 0 and the refcount structures. */
async function mappingClusters(img: Image, signal: { readonly aborted: boolean }): Promise<(c: number) => boolean> {
  let refs: ((c: number) => number) | undefined
  await checkImage(img, { ignoreBitmaps: true, signal, onReferences: (f) => { refs = f } })
  const h = img.header
  const cs = h.clusterSize
  const own = new Set<number>([0])
  for (let k = 0; k < h.refcountTableClusters; k++) own.add(h.refcountTableOffset / cs + k)
  const rc = await loadRefcounts(img.device, h)
  for (const off of rc.reftable) if (off) own.add(off / cs)
  return (c) => !own.has(c) && (refs?.(c) ?? 0) > 0
}

interface WriteOutcome extends Outcome { wrote?: { before: Uint8Array; after: Uint8Array; plan: Plan; qbmBefore: number; qbmAfter: number; external: boolean }; refused?: string; what?: string }

/** The write path under the same deadline: check, allocation map, planner, commit to a copy. */
async function exerciseWrite(bytes: Uint8Array, rng: Rng): Promise<WriteOutcome> {
  const mem = new MemoryDevice(bytes)
  const dev = new RecordingDevice(mem)
  const t0 = Date.now()
  const deadline = t0 + CASE_MS
  dev.deadline = deadline
  const signal = deadlineSignal(deadline)
  let what = ''
  try {
    const img = await openImage(dev, { signal })
    const before = await checkImage(img, { signal, findingLimit: 20 })
    try {
      const map = await AllocationMap.open(img)
      let n = 0
      for await (const r of map.runs(0, img.header.diskLength, signal)) {
        if (r.length <= 0) throw new Error(`allocation run of length ${r.length}`)
        if (++n >= 100_000) break
      }
    } catch (e) {
      if (!isEngineError(e)) throw e
    }
    const pick = pickEdit(img, rng)
    what = pick.what
    let plan: Plan
    try {
      const opts = { signal, force: rng.bool(0.5), sources: { ranges: () => TEST_RANGES } }
      plan = pick.repair ? await planRepair(img, pick.repair, opts) : await planEdits(img, [pick.edit!], opts)
    } catch (e) {
      if (!isEngineError(e)) throw e
      const same = mem.writes === 0 && Buffer.compare(mem.bytes(), bytes) === 0
      if (!same) return { ok: false, failure: `refused (${(e as Error).message}) but the file changed`, ms: Date.now() - t0, dev, what }
      return { ok: true, refused: (e as Error).name, ms: Date.now() - t0, dev, what }
    }
    // Safety of the write: nothing the guest's data or its mapping uses is touched.
    const used = await mappingClusters(img, signal)
    const cs = img.header.clusterSize
    for (const w of [...plan.writes, plan.header, ...plan.frees]) {
      for (let c = Math.floor(w.offset / cs); c <= Math.floor((w.offset + w.data.length - 1) / cs); c++) {
        if (used(c)) return { ok: false, failure: `the plan writes ${w.what} over cluster ${c}, which guest data or its mapping uses`, ms: Date.now() - t0, dev, what }
      }
    }
    const out = new MemoryDevice(bytes)
    await commitPlan(out, plan)
    const after = await checkImage(await openImage(out, { signal }), { signal, findingLimit: 20 })
    const worse = after.corruptions > 0 || after.checkErrors > 0 || after.exitCode === 1 || after.exitCode === 2 || (before.exitCode === 0 && after.exitCode !== 0)
    if (worse) return { ok: false, failure: `the write left check exit ${after.exitCode} (${after.corruptions} corruptions, first: ${after.findings.find((f) => f.kind === 'error')?.message}); before: exit ${before.exitCode}`, ms: Date.now() - t0, dev, what }
    return {
      ok: true, ms: Date.now() - t0, dev, what,
      wrote: { before: bytes, after: out.bytes(), plan, qbmBefore: before.exitCode, qbmAfter: after.exitCode, external: img.backingFile !== undefined || img.dataFile !== undefined },
    }
  } catch (e) {
    const ms = Date.now() - t0
    if (e instanceof DeadlineExceeded || (e as Error)?.name === 'AbortError') return { ok: false, failure: `timed out after ${ms} ms`, ms, dev, what }
    if (isEngineError(e)) return { ok: true, engineError: (e as Error).name, ms, dev, what }
    return { ok: false, failure: `${(e as Error)?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack?.split('\n').slice(1, 4).join('\n')}`, ms, dev, what }
  }
}

/**
 * QEMU's view of a write: qemu-img check before and after, and qemu-img compare of the guest
 * data. When QEMU refuses the mutant for its bitmap metadata (what a drop-all repair is for), the
 * guest data of the mutant is read with autoclear bit 0 cleared, so QEMU ignores the bitmaps.
 * 'unjudged' when QEMU cannot open the mutant even then.
 */
function qemuJudges(dir: string, k: number, w: NonNullable<WriteOutcome['wrote']>): string | undefined | 'unjudged' {
  const a = join(dir, `before-${k}.qcow2`)
  const b = join(dir, `after-${k}.qcow2`)
  writeFileSync(a, w.before)
  writeFileSync(b, w.after)
  const ca = run('qemu-img', ['check', '-f', 'qcow2', a]).code
  const cb = run('qemu-img', ['check', '-f', 'qcow2', b]).code
  if (!(cb === 0 || cb === 3) || (ca === 0 && cb !== 0)) return `qemu-img check: ${ca} before, ${cb} after (qbm: ${w.qbmBefore}, ${w.qbmAfter})`
  let cmp = run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', a, b])
  if (cmp.code === 2 && new DataView(w.before.buffer, w.before.byteOffset).getUint32(HeaderField.version) === 3) {
    const untrusted = w.before.slice()
    const v = new DataView(untrusted.buffer)
    v.setBigUint64(HeaderField.autoclearFeatures, v.getBigUint64(HeaderField.autoclearFeatures) & ~1n)
    writeFileSync(a, untrusted)
    cmp = run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', a, b])
  }
  if (cmp.code === 2 && /Could not open '[^']*before/.test(cmp.stderr)) return 'unjudged'
  if (cmp.code !== 0) return `qemu-img compare: exit ${cmp.code}: ${cmp.stdout}${cmp.stderr}`
  return undefined
}

describe('seeded mutations never crash, hang or over-read', () => {
  it('thousands of byte- and field-level mutations of every fixture', async () => {
    const srcs = await sources()
    expect(srcs.length).toBeGreaterThan(40)
    const rng = new Rng(SEED)
    const perSource = 150
    const failures: string[] = []
    let cases = 0, engineErrors = 0, slowest = 0, maxRead = 0, maxTotal = 0
    const t0 = Date.now()
    for (const src of srcs) {
      // The clean image must pass too.
      const clean = await exercise(src.bytes, new Rng(1))
      if (!clean.ok) failures.push(`${src.name} (unmutated): ${clean.failure}`)
      for (let k = 0; k < perSource; k++) {
        const caseSeed = rng.u32()
        const crng = new Rng(caseSeed)
        const m = mutate(src, crng)
        const o = await exercise(m.bytes, crng)
        cases++
        if (o.engineError) engineErrors++
        slowest = Math.max(slowest, o.ms)
        maxRead = Math.max(maxRead, o.dev.maxRead)
        maxTotal = Math.max(maxTotal, o.dev.bytesRead)
        const problems: string[] = []
        if (!o.ok) problems.push(o.failure!)
        if (o.ms > CASE_MS) problems.push(`took ${o.ms} ms`)
        if (o.dev.badReads.length) problems.push(`read past the end of the ${m.bytes.length}-byte file: ${JSON.stringify(o.dev.badReads.slice(0, 3))}`)
        if (o.dev.maxRead > MAX_READ) problems.push(`single read of ${o.dev.maxRead} bytes`)
        if (o.dev.bytesRead > MAX_TOTAL) problems.push(`read ${o.dev.bytesRead} bytes in total`)
        if (problems.length && failures.length < 40) failures.push(`${src.name} case seed ${caseSeed} [${m.what}]: ${problems.join('; ')}`)
        else if (problems.length) failures.push('…')
      }
    }
    console.log(`mutation test: ${cases} cases over ${srcs.length} images in ${Date.now() - t0} ms; ${engineErrors} engine errors; slowest case ${slowest} ms; largest read ${maxRead} bytes; most bytes read by one case ${maxTotal}; ${failures.length} failures`)
    expect(cases).toBeGreaterThan(3000)
    expect([...new Set(failures)]).toEqual([])
  }, 120_000)

  it('the write path (check, allocation map, planner, commit) on mutants: refusals write nothing, writes are safe', async () => {
    requireTool('qemu-img')
    const srcs = await sources()
    const rng = new Rng(SEED + 1)
    const perSource = 60
    const qemuSample = 40
    const dir = mkdtempSync(join(tmpdir(), 'qbm-mut-write-'))
    const failures: string[] = []
    let cases = 0, refusals = 0, writes = 0, judged = 0, slowest = 0
    const t0 = Date.now()
    try {
      for (const src of srcs) {
        for (let k = 0; k < perSource; k++) {
          const caseSeed = rng.u32()
          const crng = new Rng(caseSeed)
          // Every fifth case leaves the image as it is, so clean images reach the writer too.
          const m = k % 5 === 0 ? { bytes: src.bytes.slice(), what: 'unmutated' } : mutate(src, crng)
          const o = await exerciseWrite(m.bytes, crng)
          cases++
          slowest = Math.max(slowest, o.ms)
          if (o.refused) refusals++
          const problems: string[] = []
          if (!o.ok) problems.push(o.failure!)
          if (o.ms > CASE_MS) problems.push(`took ${o.ms} ms`)
          if (o.dev.badReads.length) problems.push(`read past the end of the ${m.bytes.length}-byte file: ${JSON.stringify(o.dev.badReads.slice(0, 3))}`)
          if (o.dev.maxRead > MAX_READ) problems.push(`single read of ${o.dev.maxRead} bytes`)
          if (o.wrote) {
            writes++
            // QEMU judges a sample: the first writes of each source, until the sample is full.
            if (judged < qemuSample && !o.wrote.external && (k < 10 || writes % 7 === 0)) {
              const verdict = qemuJudges(dir, judged, o.wrote)
              if (verdict !== 'unjudged') judged++
              if (verdict && verdict !== 'unjudged') problems.push(verdict)
            }
          }
          if (problems.length && failures.length < 40) failures.push(`${src.name} case seed ${caseSeed} [${m.what}] edit ${o.what}: ${problems.join('; ')}`)
          else if (problems.length) failures.push('…')
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    console.log(`mutation write path: ${cases} cases over ${srcs.length} images in ${Date.now() - t0} ms; ${refusals} refused, ${writes} written (${judged} judged by qemu-img check and compare); slowest case ${slowest} ms; ${failures.length} failures`)
    expect(cases).toBeGreaterThan(3000)
    expect(writes).toBeGreaterThan(200)
    expect(judged).toBe(qemuSample)
    expect([...new Set(failures)]).toEqual([])
  }, 120_000)
})
