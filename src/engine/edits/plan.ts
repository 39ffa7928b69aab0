/**
 * Planning edits (docs/format.md §8): apply a list of edits to an in-memory model of the bitmap list,
 * then lay the result out in new clusters through the allocator and return the plan as data.
 * Nothing is written here; edits/commit.ts is the only code that writes.
 */
import { type ConstraintCode, ConstraintError } from '../errors.js'
import type { Bitmap, Image } from '../image.js'
import {
  BME_FLAG_AUTO, BME_FLAG_IN_USE, Incompatible, KNOWN_INCOMPATIBLE, QCOW2_MAX_BITMAP_DIRECTORY_SIZE, hasBit,
} from '../qcow2/constants.js'
import { bitmapBits, expectedTableSize } from '../qcow2/bitmaps/constraints.js'
import { encodeDirEntry, encodeDirectory, patchDirEntry } from '../qcow2/bitmaps/directory.js'
import { encodeTable, ENTRY_ONES } from '../qcow2/bitmaps/table.js'
import { type Refcounts, loadRefcounts } from '../qcow2/refcount.js'
import { Allocator } from './allocator.js'
import { buildCluster0, type HeaderChange } from './header.js'
import { setBitRange } from './bits.js'
import { applyEdit } from './kinds/index.js'
import { type Entry, EditModel, clustersOf } from './model.js'
import type { Edit, Plan, PlanOptions, PlannedWrite, Repair } from './types.js'
import { type EditVerdict, verifyForEdit } from './verify.js'

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

interface Layout {
  list: Entry[]
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
  /** the image's refcounts, loaded once per plan (refcountsOnce) */
  refcounts: () => Promise<Refcounts>
}

/** The safety gate: every plan starts with the image check (edits/verify.ts). */
async function verdict(img: Image, opts: PlanOptions, repair: boolean): Promise<EditVerdict> {
  return verifyForEdit(img, {
    repair,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  })
}

/**
 * The image's refcounts for one plan, loaded on first use and then shared (the keep-mode check of
 * clear in_use and the layout both need them), from the refcount blocks the check read.
 */
function refcountsOnce(img: Image, v: EditVerdict): () => Promise<Refcounts> {
  let loaded: Promise<Refcounts> | undefined
  return () => (loaded ??= loadRefcounts(img.device, img.header, undefined, v.refcounts))
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
  const refcounts = refcountsOnce(img, v)
  const model = new EditModel(img, refcounts, opts.sources)
  const summary: string[] = []
  for (const e of edits) summary.push(await applyEdit(e, model))
  warnings.push(...model.warnings)
  return layout(img, { list: model.list, summary, dropped: [], warnings, refcounts })
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
  const others = { ...(v.referencesTo ? { others: v.referencesTo } : {}), refcounts: refcountsOnce(img, v) }
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
      const list = new EditModel(img, others.refcounts).list
      for (const b of list) { b.data = { kind: 'ones' }; b.flags &= ~BME_FLAG_IN_USE; b.renamed = true }
      return layout(img, { list, summary: [`re-trust the bitmaps extension: mark all ${list.length} bitmaps fully dirty and set autoclear bit 0`], dropped: [], warnings, ...others })
    }
  }
}

async function layout(img: Image, lay: Layout): Promise<Plan> {
  const h = img.header
  const cs = h.clusterSize
  const L = h.diskLength
  const rc = await lay.refcounts()
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

