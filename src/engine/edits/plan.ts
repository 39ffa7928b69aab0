/**
 * Planning edits (docs/format.md §8): apply a list of edits to an in-memory model of the bitmap list,
 * then lay the result out in new clusters through the allocator and return the plan as data.
 * Nothing is written here; edits/commit.ts is the only code that writes.
 */
import { type ConstraintCode, ConstraintError } from '../errors.js'
import type { Bitmap, Image } from '../image.js'
import { encodeName, nameKeyOf } from '../names.js'
import {
  BME_FLAG_AUTO, BME_FLAG_IN_USE, BME_MAX_GRANULARITY_BITS, BME_MAX_PHYS_SIZE, BME_MIN_GRANULARITY_BITS,
  Incompatible, KNOWN_INCOMPATIBLE, QCOW2_MAX_BITMAPS, QCOW2_MAX_BITMAP_DIRECTORY_SIZE, hasBit,
} from '../qcow2/constants.js'
import { bitmapBits, checkNewName, defaultGranularity, dirEntrySize, expectedTableSize } from '../qcow2/bitmaps/constraints.js'
import { encodeDirEntry, encodeDirectory, patchDirEntry } from '../qcow2/bitmaps/directory.js'
import { encodeTable, ENTRY_ONES, ENTRY_ZEROES, readTable } from '../qcow2/bitmaps/table.js'
import { type Refcounts, loadRefcounts, refcountOf } from '../qcow2/refcount.js'
import { readerFor } from '../describe.js'
import { Allocator } from './allocator.js'
import { buildCluster0, type HeaderChange } from './header.js'
import { memRuns, setBitRange } from './bits.js'
import type { Edit, Plan, PlanOptions, PlannedWrite, Repair } from './types.js'
import { type EditVerdict, verifyForEdit } from './verify.js'

type DataSource =
  | { kind: 'stored' }
  | { kind: 'zero' }
  | { kind: 'ones' }
  | { kind: 'mem'; bytes: Uint8Array }

interface ModelBitmap {
  name: string
  nameBytes: Uint8Array
  flags: number
  granularityBits: number
  orig?: Bitmap
  data: DataSource
  renamed: boolean
}

/** A reason an image cannot be edited, with its code. */
interface Refusal {
  readonly message: string
  readonly code: ConstraintCode
}

/** Why the image cannot be edited (other than by repair), or undefined. */
export function editRefusal(img: Image): Refusal | undefined {
  const h = img.header
  const no = (message: string): Refusal => ({ message, code: 'image-not-editable' })
  if (h.version !== 3) return no('the image is qcow2 v2, which cannot store bitmaps; convert it with `qemu-img amend -o compat=1.1` first')
  if (hasBit(h.incompatibleFeatures, Incompatible.dirty)) return no('the dirty bit is set (refcounts may be stale); let QEMU repair it first (e.g. `qemu-img check -r all`)')
  if (hasBit(h.incompatibleFeatures, Incompatible.corrupt)) return no('the corrupt bit is set; QEMU refuses read-write access to this image')
  const unknown = h.incompatibleFeatures & ~KNOWN_INCOMPATIBLE
  if (unknown) return no(`unknown incompatible feature bits 0x${unknown.toString(16)}`)
  return undefined
}

/** Why bitmap edits (not repair) are refused for the bitmap metadata, or undefined. */
function bitmapRefusal(img: Image): Refusal | undefined {
  const invalid = (message: string): Refusal => ({ message, code: 'bitmap-metadata-invalid' })
  if (img.bitmapsError && img.bitmapsTrusted) return invalid(`the bitmap metadata is invalid (${img.bitmapsError.message}); only repair is possible (drop all bitmaps)`)
  if (img.bitmapsExtension && !img.bitmapsTrusted) return { message: 'the bitmaps are untrusted (autoclear bit 0 is clear); re-trust them or drop them (a repair)', code: 'bitmaps-untrusted' }
  if (img.bitmapsError) return invalid(`the bitmap metadata is invalid (${img.bitmapsError.message}); only repair is possible (drop all bitmaps)`)
  const bad = img.bitmaps.find((b) => b.status === 'invalid')
  if (bad) return invalid(`bitmap '${bad.name}' is invalid (${bad.problems[0]}); only repair is possible (drop all bitmaps)`)
  return undefined
}

/**
 * The bitmap list being edited, with an index of the names (byte-exact) and the running size of
 * the directory, so that uniqueness and QEMU's limits are O(1) per edit even for 65535 bitmaps.
 */
type ModelList = ModelBitmap[] & { names: Set<string>; dirBytes: number }


function entryBytes(b: ModelBitmap): number {
  return b.orig && !b.renamed ? b.orig.entry.raw.length : dirEntrySize(0, b.nameBytes.length)
}

function modelOf(img: Image): ModelList {
  const list = img.bitmaps.map((b): ModelBitmap => ({
    name: b.name, nameBytes: b.nameBytes, flags: b.flags, granularityBits: b.granularityBits,
    orig: b, data: { kind: 'stored' }, renamed: false,
  })) as ModelList
  list.names = new Set(list.map((b) => nameKeyOf(b.nameBytes)))
  list.dirBytes = list.reduce((s, b) => s + entryBytes(b), 0)
  return list
}

function find(list: ModelBitmap[], name: string, op: string): ModelBitmap {
  const b = list.find((x) => x.name === name)
  if (!b) throw new ConstraintError(`Operation ${op} on bitmap ${name} failed: Dirty bitmap '${name}' not found`, 'bitmap-not-found')
  return b
}

function refuseInUse(b: ModelBitmap, op: string): void {
  if (b.flags & BME_FLAG_IN_USE) {
    throw new ConstraintError(`Operation ${op} on bitmap ${b.name} failed: Bitmap '${b.name}' is inconsistent and cannot be used (clear in_use first, or remove it)`, 'bitmap-inconsistent')
  }
}

/** `subject`: the bitmap the operation is on, when it is not the new name (rename). */
function checkName(list: ModelList, name: string, op: string, subject?: string): Uint8Array {
  const bytes = encodeName(name)
  const bad = checkNewName(bytes)
  const on = subject === undefined ? name : `${subject} (new name '${name}')`
  if (bad) throw new ConstraintError(`Operation ${op} on bitmap ${on} failed: ${bad}`, 'name-invalid', 'name')
  if (list.names.has(nameKeyOf(bytes))) throw new ConstraintError(`Operation ${op} on bitmap ${on} failed: Bitmap already exists: ${name}`, 'name-taken', 'name')
  return bytes
}

/** Refuse when the directory would pass QEMU's limit (docs/format.md §3.3) after growing by `delta` bytes. */
function checkDirectorySize(list: ModelList, delta: number, op: string, name: string): void {
  if (list.dirBytes + delta > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
    throw new ConstraintError(`Operation ${op} on bitmap ${name} failed: the bitmap directory would be ${list.dirBytes + delta} bytes, over QEMU's ${QCOW2_MAX_BITMAP_DIRECTORY_SIZE}`, 'limit-exceeded')
  }
}

/**
 * Why the stored bits of an in-use bitmap cannot be kept as they are, or undefined. QEMU never
 * validates the table of an in-use bitmap, but validates it (and may refuse the whole image) as
 * soon as in_use is cleared; and a data cluster whose refcount is 0 may already hold other data.
 */
async function storedDataProblem(img: Image, b: Bitmap, rc: Refcounts): Promise<string | undefined> {
  const cs = img.header.clusterSize
  if (!(b.tableOffset > 0) || b.tableSize === 0 || b.tableOffset + b.tableSize * 8 > img.fileSize) return 'its table lies outside the file'
  const t = await readTable(img.device, b.tableOffset, b.tableSize, cs)
  const p = t.problems[0]
  if (p) return `its table entry ${p.index} ${p.problem}`
  for (const c of clustersOf(b.tableOffset, b.tableSize * 8, cs)) {
    if (refcountOf(rc, c) === 0) return `its table cluster at 0x${(c * cs).toString(16)} has refcount 0`
  }
  for (const e of t.entries) {
    if (e > ENTRY_ONES && refcountOf(rc, Math.floor(e / cs)) === 0) return `its data cluster at 0x${e.toString(16)} has refcount 0 (it may hold other data by now)`
  }
  return undefined
}

/** The bitmap's bits as one in-memory array of whole clusters (tail bits past nbits zero). */
async function materialize(img: Image, b: ModelBitmap): Promise<Uint8Array> {
  const L = img.header.diskLength
  const cs = img.header.clusterSize
  const nbits = bitmapBits(L, b.granularityBits)
  const tsize = expectedTableSize(L, b.granularityBits, cs)
  const d = b.data
  if (d.kind === 'mem') return d.bytes
  const out = new Uint8Array(tsize * cs)
  if (d.kind === 'zero') return out
  if (d.kind === 'ones') { setBitRange(out, 0, nbits); return out }
  const r = readerFor(img, b.orig!)
  const bpc = cs * 8
  for (let i = 0; i < r.clusters && i < tsize; i++) {
    const c = await r.cluster(i)
    if (c === ENTRY_ZEROES) continue
    if (c === ENTRY_ONES) setBitRange(out, i * bpc, Math.min((i + 1) * bpc, nbits))
    else out.set(c, i * cs)
  }
  return out
}

/** Runs of set bits of a bitmap in the model, as byte ranges of the disk. */
async function* dirtyByteRanges(img: Image, b: ModelBitmap): AsyncGenerator<[number, number]> {
  const L = img.header.diskLength
  const g = 2 ** b.granularityBits
  if (b.data.kind === 'stored') {
    const r = readerFor(img, b.orig!)
    for await (const [s, e] of r.runs(0)) yield [s * g, Math.min(e * g, L)]
    return
  }
  if (b.data.kind === 'zero') return
  if (b.data.kind === 'ones') { yield [0, L]; return }
  for (const [s, e] of memRuns(b.data.bytes, bitmapBits(L, b.granularityBits))) yield [s * g, Math.min(e * g, L)]
}

async function applyEdit(img: Image, list: ModelList, e: Edit): Promise<string> {
  const L = img.header.diskLength
  const cs = img.header.clusterSize
  switch (e.op) {
    case 'add': {
      const g = e.granularity ?? defaultGranularity(cs)
      const gb = Math.log2(g)
      if (!Number.isInteger(gb) || gb < BME_MIN_GRANULARITY_BITS) throw new ConstraintError(`Operation add on bitmap ${e.name} failed: Granularity must be power of 2 and at least 512`, 'granularity-invalid', 'granularity')
      if (gb > BME_MAX_GRANULARITY_BITS) throw new ConstraintError(`Operation add on bitmap ${e.name} failed: Granularity is too big (maximum 2 GiB)`, 'granularity-invalid', 'granularity')
      if (L === 0) throw new ConstraintError(`Operation add on bitmap ${e.name} failed: the disk length is 0, so no bitmap can be stored`, 'disk-empty')
      if (expectedTableSize(L, gb, cs) * cs > BME_MAX_PHYS_SIZE) throw new ConstraintError(`Operation add on bitmap ${e.name} failed: Too much space will be occupied by the bitmap. Use larger granularity`, 'granularity-invalid', 'granularity')
      if (list.length >= QCOW2_MAX_BITMAPS) throw new ConstraintError(`Operation add on bitmap ${e.name} failed: the image already has ${QCOW2_MAX_BITMAPS} bitmaps`, 'limit-exceeded')
      const nameBytes = checkName(list, e.name, 'add')
      checkDirectorySize(list, dirEntrySize(0, nameBytes.length), 'add', e.name)
      list.push({ name: e.name, nameBytes, flags: e.disabled ? 0 : BME_FLAG_AUTO, granularityBits: gb, data: { kind: 'zero' }, renamed: true })
      list.names.add(nameKeyOf(nameBytes))
      list.dirBytes += dirEntrySize(0, nameBytes.length)
      return `add bitmap '${e.name}' (granularity ${g}, ${e.disabled ? 'disabled' : 'enabled'}, empty)`
    }
    case 'remove': {
      const b = find(list, e.name, 'remove')
      list.splice(list.indexOf(b), 1)
      list.names.delete(nameKeyOf(b.nameBytes))
      list.dirBytes -= entryBytes(b)
      return `remove bitmap '${e.name}' and free its clusters`
    }
    case 'enable':
    case 'disable': {
      const b = find(list, e.name, e.op)
      refuseInUse(b, e.op)
      b.flags = e.op === 'enable' ? b.flags | BME_FLAG_AUTO : b.flags & ~BME_FLAG_AUTO
      return `${e.op} bitmap '${e.name}' (auto flag ${e.op === 'enable' ? 'set' : 'cleared'})`
    }
    case 'clear': {
      const b = find(list, e.name, 'clear')
      refuseInUse(b, 'clear')
      b.data = { kind: 'zero' }
      return `clear bitmap '${e.name}' (all bits 0)`
    }
    case 'rename': {
      const b = find(list, e.name, 'rename')
      const nameBytes = checkName(list, e.newName, 'rename', e.name)
      const delta = dirEntrySize(0, nameBytes.length) - entryBytes(b)
      checkDirectorySize(list, delta, 'rename', e.name)
      list.names.delete(nameKeyOf(b.nameBytes))
      list.names.add(nameKeyOf(nameBytes))
      list.dirBytes += delta
      b.nameBytes = nameBytes
      b.name = e.newName
      b.renamed = true
      return `rename bitmap '${e.name}' to '${e.newName}'`
    }
    case 'clear-in-use': {
      const b = find(list, e.name, 'clear-in-use')
      if (!(b.flags & BME_FLAG_IN_USE)) throw new ConstraintError(`Operation clear-in-use on bitmap ${e.name} failed: the bitmap is not in use`, 'bitmap-not-in-use')
      if (e.mode === 'keep' && b.data.kind === 'stored' && b.orig) {
        const bad = await storedDataProblem(img, b.orig, await loadRefcounts(img.device, img.header))
        if (bad) throw new ConstraintError(`Operation clear-in-use on bitmap ${e.name} failed: its stored bits cannot be kept: ${bad}; mark every bit dirty or clear them instead`, 'stored-bits-unusable')
      }
      b.flags &= ~BME_FLAG_IN_USE
      if (e.mode === 'dirty') b.data = { kind: 'ones' }
      else if (e.mode === 'empty') b.data = { kind: 'zero' }
      else if (b.data.kind === 'stored' && b.orig && b.orig.tableSize !== b.orig.expectedTableSize) {
        // The disk was resized while the bitmap was in use: rebuild the table at the right size.
        b.data = { kind: 'mem', bytes: await materialize(img, b) }
      }
      return {
        keep: `clear in_use of '${e.name}' keeping its stored bits (writes made while it was in use are NOT recorded: an incremental backup from it may miss data)`,
        dirty: `clear in_use of '${e.name}' and mark every bit dirty (the next incremental backup copies the whole disk)`,
        empty: `clear in_use of '${e.name}' and clear every bit (the next incremental backup from it copies nothing until new writes)`,
      }[e.mode]
    }
    case 'set-ranges': {
      const t = find(list, e.name, 'set-ranges')
      refuseInUse(t, 'set-ranges')
      if (e.ranges.length % 2 !== 0) throw new ConstraintError(`Operation set-ranges on bitmap ${e.name} failed: the ranges come in pairs`, 'invalid-edit')
      const bytes = await materialize(img, t)
      const g = 2 ** t.granularityBits
      let n = 0
      for (let i = 0; i < e.ranges.length; i += 2) {
        const a = Math.max(0, e.ranges[i]!)
        const b = Math.min(L, e.ranges[i + 1]!)
        if (!(b > a)) continue
        setBitRange(bytes, Math.floor(a / g), Math.ceil(b / g))
        n += b - a
      }
      t.data = { kind: 'mem', bytes }
      return `set the granules of ${e.what} (${n} bytes in ${e.ranges.length / 2} ranges) in '${e.name}'`
    }
    case 'merge': {
      const t = find(list, e.name, 'merge')
      refuseInUse(t, 'merge')
      let srcImg = img
      let src: ModelBitmap
      if (e.sourceImage) {
        srcImg = e.sourceImage
        if (srcImg.header.diskLength !== L) throw new ConstraintError(`Operation merge on bitmap ${e.name} failed: the source image's size (${srcImg.header.diskLength}) differs from this image's (${L})`, 'size-mismatch')
        const sb = srcImg.bitmaps.find((x) => x.name === e.source)
        if (!sb) throw new ConstraintError(`Operation merge on bitmap ${e.name} failed: Dirty bitmap '${e.source}' not found in the source image`, 'bitmap-not-found')
        if (sb.status !== 'ok') throw new ConstraintError(`Operation merge on bitmap ${e.name} failed: source bitmap '${e.source}' is ${sb.status}`, 'source-unusable')
        src = { name: sb.name, nameBytes: sb.nameBytes, flags: sb.flags, granularityBits: sb.granularityBits, orig: sb, data: { kind: 'stored' }, renamed: false }
      } else {
        const found = list.find((x) => x.name === e.source)
        if (!found) throw new ConstraintError(`Operation merge on bitmap ${e.name} failed: Dirty bitmap '${e.source}' not found`, 'bitmap-not-found')
        src = found
      }
      refuseInUse(src, 'merge')
      const bytes = await materialize(img, t)
      const gT = 2 ** t.granularityBits
      for await (const [a, b] of dirtyByteRanges(srcImg, src)) setBitRange(bytes, Math.floor(a / gT), Math.ceil(b / gT))
      t.data = { kind: 'mem', bytes }
      return `merge '${e.source}'${e.sourceImage ? ' (from another image)' : ''} into '${e.name}'`
    }
  }
}

interface Layout {
  list: ModelBitmap[]
  summary: string[]
  /** original bitmaps whose table and data are to be freed */
  dropped: Bitmap[]
  header?: Partial<HeaderChange>
  warnings: string[]
  /**
   * Repairs: the references everything but the bitmaps holds per cluster. A cluster with any is
   * never freed, even when the old bitmap metadata pointed at it.
   */
  others?: (cluster: number) => number
  /**
   * Drop-all only: every cluster counted above `others` is a leak left by the dropped bitmap
   * metadata (for instance entries a truncated directory no longer reaches) and is brought down
   * to it, as `qemu-img check -r leaks` would.
   */
  reclaim?: boolean
}

/** The safety gate: every plan starts with the image check (edits/verify.ts). */
async function verdict(img: Image, opts: PlanOptions, repair: boolean): Promise<EditVerdict> {
  return verifyForEdit(img, {
    repair,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  })
}

/** Plan a sequence of edits, applied in order like `qemu-img bitmap`. */
export async function planEdits(img: Image, edits: Edit[], opts: PlanOptions = {}): Promise<Plan> {
  const refusal = editRefusal(img) ?? bitmapRefusal(img)
  if (refusal) throw new ConstraintError(`cannot edit: ${refusal.message}`, refusal.code)
  const inUse = img.bitmaps.filter((b) => b.status === 'in-use')
  const warnings: string[] = []
  if (inUse.length > 0 && !opts.force) {
    throw new ConstraintError(`${inUse.length} bitmap${inUse.length > 1 ? 's are' : ' is'} in use (${inUse.map((b) => b.name).join(', ')}): the image may be open in a running QEMU, which would overwrite these changes`, 'bitmaps-in-use')
  }
  const v = await verdict(img, opts, false)
  warnings.push(...v.warnings)
  const list = modelOf(img)
  const summary: string[] = []
  for (const e of edits) {
    summary.push(await applyEdit(img, list, e))
    if (e.op === 'clear-in-use' && e.mode === 'keep') {
      warnings.push(`'${e.name}' keeps the bits stored at its last clean save: writes made while it was in use are not in it, so an incremental backup from it may miss data (marking every bit dirty is the safe choice)`)
    }
  }
  return layout(img, { list, summary, dropped: [], warnings })
}

/** Plan a repair (docs/format.md §8 "recover"). */
export async function planRepair(img: Image, repair: Repair, opts: PlanOptions = {}): Promise<Plan> {
  // A v2 image may still carry a bitmaps extension (e.g. after `qemu-img amend -o compat=0.10`):
  // dropping it is the one write qbm does on v2 (docs/format.md §9); v2 has no feature bits to check.
  const v2Drop = img.header.version === 2 && repair === 'drop-all-bitmaps' && (img.bitmapsExtension !== undefined || img.bitmapsError !== undefined)
  const refusal = v2Drop ? undefined : editRefusal(img)
  if (refusal) throw new ConstraintError(`cannot repair: ${refusal.message}`, refusal.code)
  const warnings: string[] = []
  const v = await verdict(img, opts, true)
  const others = v.referencesTo ? { others: v.referencesTo } : {}
  switch (repair) {
    case 'drop-all-bitmaps': {
      if (!img.bitmapsExtension && !img.bitmapsError) {
        if (!hasBit(img.header.autoclearFeatures, 0n)) throw new ConstraintError('cannot repair: the image has no bitmaps to drop', 'nothing-to-repair')
      }
      return layout(img, { list: [], summary: ['drop every bitmap: remove the bitmaps extension, clear autoclear bit 0, free their clusters'], dropped: [], warnings, header: {}, ...others, reclaim: true })
    }
    case 'fix-autoclear': {
      if (img.bitmapsExtension || !hasBit(img.header.autoclearFeatures, 0n)) throw new ConstraintError('cannot repair: autoclear bit 0 is not set without a bitmaps extension', 'nothing-to-repair')
      return layout(img, { list: [], summary: ['clear autoclear bit 0 (set without a bitmaps extension)'], dropped: [], warnings, ...others })
    }
    case 'retrust': {
      if (!img.bitmapsExtension || img.bitmapsTrusted) throw new ConstraintError('cannot repair: there is no untrusted bitmaps extension to re-trust', 'nothing-to-repair')
      if (img.bitmapsError) throw new ConstraintError(`cannot re-trust: the bitmap metadata is invalid (${img.bitmapsError.message}); drop the bitmaps instead`, 'bitmap-metadata-invalid')
      const bad = img.bitmaps.find((b) => b.problems.length > 0)
      if (bad) throw new ConstraintError(`cannot re-trust: bitmap '${bad.name}' is invalid (${bad.problems[0]}); drop the bitmaps instead`, 'bitmap-metadata-invalid')
      const list = modelOf(img)
      for (const b of list) { b.data = { kind: 'ones' }; b.flags &= ~BME_FLAG_IN_USE; b.renamed = true }
      return layout(img, { list, summary: [`re-trust the bitmaps extension: mark all ${list.length} bitmaps fully dirty and set autoclear bit 0`], dropped: [], warnings, ...others })
    }
  }
}

/** Clusters touched by [off, off + bytes). */
function clustersOf(off: number, bytes: number, cs: number): number[] {
  const out: number[] = []
  for (let c = Math.floor(off / cs); c <= Math.floor((off + bytes - 1) / cs); c++) out.push(c)
  return out
}

async function layout(img: Image, lay: Layout): Promise<Plan> {
  const h = img.header
  const cs = h.clusterSize
  const L = h.diskLength
  const rc = await loadRefcounts(img.device, h)
  if (rc.problems.length > 0) throw new ConstraintError(`cannot edit: the refcount structure is damaged: ${rc.problems[0]!.message}${rc.problems.length > 1 ? ` (and ${rc.problems.length - 1} more)` : ''}; \`qemu-img check -r all\` rebuilds it`, 'refcounts-damaged')
  const alloc = new Allocator(h, rc, img.fileSize)
  const writes: PlannedWrite[] = []
  const entries: Uint8Array[] = []
  const keptTables = new Set<Bitmap>()

  for (const b of lay.list) {
    const nbits = bitmapBits(L, b.granularityBits)
    const tsize = expectedTableSize(L, b.granularityBits, cs)
    if (b.data.kind === 'stored' && b.orig) {
      keptTables.add(b.orig)
      const o = b.orig
      entries.push(b.renamed
        ? encodeDirEntry({ tableOffset: o.tableOffset, tableSize: o.tableSize, flags: b.flags, granularityBits: b.granularityBits, nameBytes: b.nameBytes })
        : b.flags === o.flags ? o.entry.raw : patchDirEntry(o.entry.raw, { flags: b.flags }))
      continue
    }
    const table = new Float64Array(tsize)
    const bpc = cs * 8
    if (b.data.kind === 'ones' || b.data.kind === 'mem') {
      const bytes = b.data.kind === 'mem' ? b.data.bytes : undefined
      for (let i = 0; i < tsize; i++) {
        const bitsHere = Math.min(bpc, nbits - i * bpc)
        let chunk: Uint8Array
        if (!bytes) {
          if (bitsHere === bpc) { table[i] = ENTRY_ONES; continue }
          chunk = new Uint8Array(cs)
          setBitRange(chunk, 0, bitsHere)
        } else {
          chunk = bytes.subarray(i * cs, (i + 1) * cs)
          if (!chunk.some((x) => x !== 0)) continue
          if (bitsHere < bpc) {
            chunk = chunk.slice()
            const keep = new Uint8Array(cs)
            setBitRange(keep, 0, bitsHere)
            for (let k = 0; k < cs; k++) chunk[k]! &= keep[k]!
          }
        }
        const off = alloc.alloc(1)
        table[i] = off
        writes.push({ offset: off, data: chunk.length === cs ? chunk : padTo(chunk, cs), what: `bitmap data of '${b.name}' (cluster ${i})` })
      }
    }
    const tbytes = encodeTable(table, cs)
    const toff = alloc.alloc(tbytes.length / cs)
    writes.push({ offset: toff, data: tbytes, what: `bitmap table of '${b.name}'` })
    entries.push(encodeDirEntry({ tableOffset: toff, tableSize: tsize, flags: b.flags, granularityBits: b.granularityBits, nameBytes: b.nameBytes }))
  }

  let bitmapsExt: HeaderChange['bitmaps'] = null
  if (entries.length > 0) {
    const dir = encodeDirectory(entries)
    if (dir.length > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) throw new ConstraintError(`the bitmap directory would be ${dir.length} bytes, over QEMU's ${QCOW2_MAX_BITMAP_DIRECTORY_SIZE}`, 'limit-exceeded')
    const padded = padTo(dir, Math.ceil(dir.length / cs) * cs)
    const doff = alloc.alloc(padded.length / cs)
    writes.push({ offset: doff, data: padded, what: 'bitmap directory' })
    bitmapsExt = { nbBitmaps: entries.length, bitmapDirectorySize: dir.length, bitmapDirectoryOffset: doff }
  }

  // Phase 1 refcount writes: new blocks, the (new) reftable or its new entries, changed blocks.
  const phase1Blocks = alloc.takeDirty()
  const newSlots = new Set(alloc.newSlots())
  for (const slot of phase1Blocks) if (newSlots.has(slot)) writes.push({ offset: alloc.reftable[slot]!, data: alloc.encodeBlock(slot), what: `new refcount block ${slot}` })
  if (alloc.reftableMoved) {
    writes.push({ offset: alloc.reftableOffset, data: alloc.encodeReftable(), what: 'new refcount table' })
  } else {
    for (const slot of [...newSlots].sort((a, b) => a - b)) {
      const e = new Uint8Array(8)
      new DataView(e.buffer).setBigUint64(0, BigInt(alloc.reftable[slot]!))
      writes.push({ offset: h.refcountTableOffset + slot * 8, data: e, what: `refcount table entry ${slot}` })
    }
  }
  for (const slot of phase1Blocks) if (!newSlots.has(slot)) writes.push({ offset: alloc.reftable[slot]!, data: alloc.encodeBlock(slot), what: `refcount block ${slot}` })

  // Header switch.
  const change: HeaderChange = { bitmaps: bitmapsExt, ...lay.header }
  if (alloc.reftableMoved) change.reftable = { offset: alloc.reftableOffset, clusters: alloc.reftableClusters }
  const header = buildCluster0(img, change)

  // Phase 3: free what the old state referenced and the new one does not.
  const freed = new Set<number>()
  let kept = 0
  const freeRange = (off: number, bytes: number): void => {
    for (const c of clustersOf(off, bytes, cs)) {
      if (freed.has(c)) continue
      if (lay.others && lay.others(c) > 0) { kept++; continue }
      freed.add(c)
      alloc.free(c * cs, cs)
    }
  }
  {
    for (const o of img.bitmaps) {
      if (keptTables.has(o)) continue
      if (!(o.tableOffset > 0) || o.tableSize === 0 || o.tableOffset + o.tableSize * 8 > img.fileSize + cs) continue
      for (let i = 0; i < o.table.length; i++) {
        const e = o.table[i]!
        if (e > ENTRY_ONES && alloc.get(Math.floor(e / cs)) > 0) freeRange(e, cs)
      }
      if (alloc.get(Math.floor(o.tableOffset / cs)) > 0) freeRange(o.tableOffset, o.tableSize * 8)
    }
  }
  const ext = img.bitmapsExtension
  if (ext && ext.bitmapDirectoryOffset < img.fileSize) {
    // A directory may end past the end of the file (QEMU reads zeros there): free the clusters
    // of it that are counted, so the cluster holding its start does not leak.
    for (const c of clustersOf(ext.bitmapDirectoryOffset, ext.bitmapDirectorySize, cs)) {
      if (alloc.get(c) > 0) freeRange(c * cs, cs)
    }
  }
  if (alloc.reftableMoved) freeRange(alloc.oldReftable.offset, alloc.oldReftable.clusters * cs)
  if (lay.reclaim && lay.others) {
    let reclaimed = 0
    const end = Math.ceil(img.fileSize / cs)
    for (let c = 0; c < end; c++) {
      if (alloc.allocated.has(c)) continue
      const want = lay.others(c)
      let have = alloc.get(c)
      if (have > want) reclaimed++
      while (have > want) { alloc.free(c * cs, cs); have-- }
    }
    if (reclaimed > 0) lay.summary.push(`reclaim ${reclaimed} more leaked cluster${reclaimed > 1 ? 's' : ''} (refcount above its references, as 'qemu-img check -r leaks' would; typically left by the broken bitmap metadata)`)
  }
  if (kept > 0) lay.warnings.push(`${kept} cluster${kept > 1 ? 's' : ''} the old bitmap metadata pointed at ${kept > 1 ? 'are' : 'is'} also used by other metadata and ${kept > 1 ? 'were' : 'was'} not freed`)
  const frees: PlannedWrite[] = alloc.takeDirty().map((slot) => ({ offset: alloc.reftable[slot]!, data: alloc.encodeBlock(slot), what: `refcount block ${slot} (frees)` }))

  return {
    summary: lay.summary,
    writes,
    header: { offset: 0, data: header, what: 'header (cluster 0)' },
    frees,
    allocatedClusters: alloc.allocated.size,
    freedClusters: freed.size,
    result: lay.list.map((b) => ({ name: b.name, flags: [...(b.flags & BME_FLAG_IN_USE ? ['in-use'] : []), ...(b.flags & BME_FLAG_AUTO ? ['auto'] : [])], granularity: 2 ** b.granularityBits })),
    warnings: lay.warnings,
  }
}

function padTo(d: Uint8Array, n: number): Uint8Array {
  if (d.length === n) return d
  const out = new Uint8Array(n)
  out.set(d)
  return out
}

