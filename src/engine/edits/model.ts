/**
 * The planner's model of the bitmap list (docs/format.md §8): the image's bitmaps as edits change
 * them, with an index of the names (byte-exact) and the running size of the directory, so that
 * uniqueness and QEMU's limits are O(1) per edit even for 65535 bitmaps. Edit kinds
 * (edits/kinds/) change it through PlanModel; this is where their bits are read.
 */
import { ConstraintError } from '../errors.js'
import type { Bitmap, Image } from '../image.js'
import { encodeName, nameKeyOf } from '../names.js'
import { BME_FLAG_IN_USE, QCOW2_MAX_BITMAPS, QCOW2_MAX_BITMAP_DIRECTORY_SIZE } from '../qcow2/constants.js'
import { bitmapBits, checkNewName, dirEntrySize, expectedTableSize } from '../qcow2/bitmaps/constraints.js'
import { ENTRY_ONES, ENTRY_ZEROES, readTable } from '../qcow2/bitmaps/table.js'
import { type Refcounts, refcountOf } from '../qcow2/refcount.js'
import { readerFor } from '../describe.js'
import { memRuns, setBitRange } from './bits.js'
import type { ModelBitmap, OtherImage, PlanModel } from './kinds/index.js'
import type { EditSources } from './types.js'

/** A bitmap of the model: what the kinds see, and where its stored bits are. */
export interface Entry extends ModelBitmap {
  /** the stored bitmap it started as (absent for a new one) */
  orig?: Bitmap
  /** the image its stored bits are in */
  image: Image
}

/** Clusters touched by [off, off + bytes). */
export function clustersOf(off: number, bytes: number, cs: number): number[] {
  const out: number[] = []
  for (let c = Math.floor(off / cs); c <= Math.floor((off + bytes - 1) / cs); c++) out.push(c)
  return out
}

function entryOf(img: Image, b: Bitmap): Entry {
  return { name: b.name, nameBytes: b.nameBytes, flags: b.flags, granularityBits: b.granularityBits, orig: b, image: img, data: { kind: 'stored' }, renamed: false, status: b.status }
}

/** The model of one plan. */
export class EditModel implements PlanModel {
  readonly list: Entry[]
  readonly warnings: string[] = []
  readonly diskLength: number
  readonly clusterSize: number
  private readonly names: Set<string>
  private dirBytes: number
  private readonly others = new Map<number, OtherImage | undefined>()

  /** `refcounts`: the image's refcounts, loaded once per plan. */
  constructor(private readonly img: Image, private readonly refcounts: () => Promise<Refcounts>, private readonly sources: EditSources = {}) {
    this.diskLength = img.header.diskLength
    this.clusterSize = img.header.clusterSize
    this.list = img.bitmaps.map((b) => entryOf(img, b))
    this.names = new Set(this.list.map((b) => nameKeyOf(b.nameBytes)))
    this.dirBytes = this.list.reduce((s, b) => s + this.entryBytes(b), 0)
  }

  get count(): number {
    return this.list.length
  }

  private entryBytes(b: Entry): number {
    return b.orig && !b.renamed ? b.orig.entry.raw.length : dirEntrySize(0, b.nameBytes.length)
  }

  /** Refuse when the directory would pass QEMU's limit (docs/format.md §3.3) after growing by `delta` bytes. */
  private checkDirectorySize(delta: number, op: string, name: string): void {
    if (this.dirBytes + delta > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
      throw new ConstraintError(`Operation ${op} on bitmap ${name} failed: the bitmap directory would be ${this.dirBytes + delta} bytes, over QEMU's ${QCOW2_MAX_BITMAP_DIRECTORY_SIZE}`, 'limit-exceeded')
    }
  }

  lookup(name: string): Entry | undefined {
    return this.list.find((x) => x.name === name)
  }

  find(name: string, op: string): Entry {
    const b = this.lookup(name)
    if (!b) throw new ConstraintError(`Operation ${op} on bitmap ${name} failed: Dirty bitmap '${name}' not found`, 'bitmap-not-found')
    return b
  }

  refuseInUse(b: ModelBitmap, op: string): void {
    if (b.flags & BME_FLAG_IN_USE) {
      throw new ConstraintError(`Operation ${op} on bitmap ${b.name} failed: Bitmap '${b.name}' is inconsistent and cannot be used (clear in_use first, or remove it)`, 'bitmap-inconsistent')
    }
  }

  checkName(name: string, op: string, subject?: string): Uint8Array {
    const bytes = encodeName(name)
    const bad = checkNewName(bytes)
    const on = subject === undefined ? name : `${subject} (new name '${name}')`
    if (bad) throw new ConstraintError(`Operation ${op} on bitmap ${on} failed: ${bad}`, 'name-invalid', 'name')
    if (this.names.has(nameKeyOf(bytes))) throw new ConstraintError(`Operation ${op} on bitmap ${on} failed: Bitmap already exists: ${name}`, 'name-taken', 'name')
    return bytes
  }

  insert(b: ModelBitmap, op: string): void {
    if (this.list.length >= QCOW2_MAX_BITMAPS) throw new ConstraintError(`Operation ${op} on bitmap ${b.name} failed: the image already has ${QCOW2_MAX_BITMAPS} bitmaps`, 'limit-exceeded')
    const size = dirEntrySize(0, b.nameBytes.length)
    this.checkDirectorySize(size, op, b.name)
    this.list.push({ ...b, image: this.img })
    this.names.add(nameKeyOf(b.nameBytes))
    this.dirBytes += size
  }

  delete(b: ModelBitmap): void {
    const e = b as Entry
    this.list.splice(this.list.indexOf(e), 1)
    this.names.delete(nameKeyOf(e.nameBytes))
    this.dirBytes -= this.entryBytes(e)
  }

  rename(b: ModelBitmap, name: string, nameBytes: Uint8Array, op: string): void {
    const e = b as Entry
    const delta = dirEntrySize(0, nameBytes.length) - this.entryBytes(e)
    this.checkDirectorySize(delta, op, e.name)
    this.names.delete(nameKeyOf(e.nameBytes))
    this.names.add(nameKeyOf(nameBytes))
    this.dirBytes += delta
    e.nameBytes = nameBytes
    e.name = name
    e.renamed = true
  }

  /** The bitmap's bits as one in-memory array of whole clusters (tail bits past nbits zero). */
  async bits(b: ModelBitmap): Promise<Uint8Array> {
    const e = b as Entry
    const L = this.diskLength
    const cs = this.clusterSize
    const nbits = bitmapBits(L, e.granularityBits)
    const tsize = expectedTableSize(L, e.granularityBits, cs)
    const d = e.data
    if (d.kind === 'mem') return d.bytes
    const out = new Uint8Array(tsize * cs)
    if (d.kind === 'zero') return out
    if (d.kind === 'ones') { setBitRange(out, 0, nbits); return out }
    const r = readerFor(e.image, e.orig!)
    const bpc = cs * 8
    for (let i = 0; i < r.clusters && i < tsize; i++) {
      const c = await r.cluster(i)
      if (c === ENTRY_ZEROES) continue
      if (c === ENTRY_ONES) setBitRange(out, i * bpc, Math.min((i + 1) * bpc, nbits))
      else out.set(c, i * cs)
    }
    return out
  }

  /** Runs of set bits of a bitmap (of this image or another), as byte ranges of the disk. */
  async *dirtyRanges(b: ModelBitmap): AsyncGenerator<[number, number]> {
    const e = b as Entry
    const L = e.image.header.diskLength
    const g = 2 ** e.granularityBits
    if (e.data.kind === 'stored') {
      const r = readerFor(e.image, e.orig!)
      for await (const [s, end] of r.runs(0)) yield [s * g, Math.min(end * g, L)]
      return
    }
    if (e.data.kind === 'zero') return
    if (e.data.kind === 'ones') { yield [0, L]; return }
    for (const [s, end] of memRuns(e.data.bytes, bitmapBits(L, e.granularityBits))) yield [s * g, Math.min(end * g, L)]
  }

  otherImage(id: number, op: string, name: string): OtherImage | undefined {
    if (this.others.has(id)) return this.others.get(id)
    const other = this.sources.image?.(id)
    if (!other) throw new ConstraintError(`Operation ${op} on bitmap ${name} failed: there is no image ${id} to read from`, 'invalid-edit')
    const found = other === this.img ? undefined : {
      diskLength: other.header.diskLength,
      find: (n: string): Entry | undefined => {
        const sb = other.bitmaps.find((x) => x.name === n)
        return sb && entryOf(other, sb)
      },
    }
    this.others.set(id, found)
    return found
  }

  async ranges(id: number, op: string, name: string): Promise<Float64Array> {
    const r = await this.sources.ranges?.(id)
    if (!r) throw new ConstraintError(`Operation ${op} on bitmap ${name} failed: there are no ranges ${id} (the comparison is gone: compute it again)`, 'invalid-edit')
    return r
  }

  /**
   * Why the stored bits of an in-use bitmap cannot be kept as they are, or undefined. QEMU never
   * validates the table of an in-use bitmap, but validates it (and may refuse the whole image) as
   * soon as in_use is cleared; and a data cluster whose refcount is 0 may already hold other data.
   */
  async storedBitsProblem(b: ModelBitmap): Promise<string | undefined> {
    const e = b as Entry
    if (e.data.kind !== 'stored' || !e.orig) return undefined
    const o = e.orig
    const rc = await this.refcounts()
    const cs = this.clusterSize
    if (!(o.tableOffset > 0) || o.tableSize === 0 || o.tableOffset + o.tableSize * 8 > this.img.fileSize) return 'its table lies outside the file'
    const t = await readTable(this.img.device, o.tableOffset, o.tableSize, cs)
    const p = t.problems[0]
    if (p) return `its table entry ${p.index} ${p.problem}`
    for (const c of clustersOf(o.tableOffset, o.tableSize * 8, cs)) {
      if (refcountOf(rc, c) === 0) return `its table cluster at 0x${(c * cs).toString(16)} has refcount 0`
    }
    for (const x of t.entries) {
      if (x > ENTRY_ONES && refcountOf(rc, Math.floor(x / cs)) === 0) return `its data cluster at 0x${x.toString(16)} has refcount 0 (it may hold other data by now)`
    }
    return undefined
  }

  async keepStoredBits(b: ModelBitmap): Promise<void> {
    const e = b as Entry
    // The disk was resized while the bitmap was in use: rebuild the table at the right size.
    if (e.data.kind === 'stored' && e.orig && e.orig.tableSize !== e.orig.expectedTableSize) e.data = { kind: 'mem', bytes: await this.bits(e) }
  }

  warn(text: string): void {
    this.warnings.push(text)
  }
}
