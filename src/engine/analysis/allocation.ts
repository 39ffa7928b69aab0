/**
 * Allocation map from the active L1/L2 tables (qcow2.txt "Cluster mapping"): for every byte of
 * the virtual disk, whether it is allocated data, reads as zero, or is unallocated (read from
 * the backing file, or as zeros without one). Standard and extended L2 (32 subclusters),
 * compressed clusters, zero flags, external data files. Results follow `qemu-img map
 * --output=json` (start, length, depth, present, zero, data).
 */
import type { BlockDevice } from '../device.js'
import { FormatError, type AbortSignalLike, throwIfAborted } from '../errors.js'
import type { Image } from '../image.js'
import { Autoclear, HeaderField, Incompatible, MAX_L1_BYTES, hasBit } from '../qcow2/constants.js'
import {
  L1_ENTRY_SIZE, L2_SUBCLUSTER_BITMAP, SUBCLUSTERS, entryOffset, hasZeroFlag, isCompressed, l2EntrySize, subclusterAllocated, subclusterZero,
} from '../qcow2/mapping.js'
import type { Extent } from './extents.js'

export type AllocKind = 'data' | 'zero' | 'unallocated'

/** One run of bytes with the same state, in qemu-img map's terms. */
export interface AllocRun {
  start: number
  length: number
  /** layer the bytes come from: 0 = this image, 1 = its backing file, ... */
  depth: number
  present: boolean
  zero: boolean
  data: boolean
  compressed?: boolean
  /** host offset of the data (absent for compressed clusters) */
  offset?: number
}

export function kindOf(r: AllocRun): AllocKind {
  return r.data ? 'data' : r.present ? 'zero' : 'unallocated'
}

/** A cached L2 table; `pins` counts the walks reading it, so its buffer is reused only after. */
interface L2Entry {
  buf: Uint8Array
  pins: number
  evicted: boolean
}

export class AllocationMap {
  readonly cs: number
  readonly diskLength: number
  readonly extendedL2: boolean
  /** external data file that is valid as raw (autoclear bit 1): QEMU maps unallocated clusters 1:1 as data */
  readonly rawDataFile: boolean
  private readonly l2Entries: number
  private readonly entrySize: number
  private readonly l1: Float64Array
  private readonly dev: BlockDevice
  /** the last 64 L2 tables read; a table in use by a walk is pinned */
  private readonly cache = new Map<number, L2Entry>()
  /** buffers of evicted, unpinned tables, reused for the next reads (no 64 KiB garbage per table) */
  private readonly spare: Uint8Array[] = []

  private constructor(readonly img: Image, l1: Float64Array, readonly backing?: AllocationMap) {
    const h = img.header
    this.cs = h.clusterSize
    this.diskLength = h.diskLength
    this.extendedL2 = hasBit(h.incompatibleFeatures, Incompatible.extendedL2)
    this.rawDataFile = hasBit(h.incompatibleFeatures, Incompatible.externalDataFile) && hasBit(h.autoclearFeatures, Autoclear.rawExternalData)
    this.entrySize = l2EntrySize(this.extendedL2)
    this.l2Entries = this.cs / this.entrySize
    this.l1 = l1
    this.dev = img.device
  }

  /** Load the L1 table (bounded by QEMU's 32 MiB and the file). `backing` answers unallocated ranges. */
  static async open(img: Image, backing?: AllocationMap): Promise<AllocationMap> {
    const h = img.header
    const bytes = h.l1Size * L1_ENTRY_SIZE
    if (bytes > MAX_L1_BYTES) throw new FormatError('qcow2 header', 'l1_size', HeaderField.l1Size, "exceeds QEMU's 32 MiB L1 table limit", h.l1Size)
    if (h.l1Size > 0 && h.l1TableOffset + bytes > img.fileSize) throw new FormatError('qcow2 header', 'l1_table_offset', HeaderField.l1TableOffset, 'puts the L1 table past the end of the file', h.raw.l1TableOffset)
    const raw = h.l1Size > 0 ? await img.device.read(h.l1TableOffset, bytes) : new Uint8Array(0)
    const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
    const l1 = new Float64Array(h.l1Size)
    for (let i = 0; i < h.l1Size; i++) {
      const off = entryOffset(v.getUint32(i * L1_ENTRY_SIZE), v.getUint32(i * L1_ENTRY_SIZE + 4))
      if (off !== 0 && (off % h.clusterSize !== 0 || off + h.clusterSize > img.fileSize + h.clusterSize - 1)) {
        throw new FormatError('L1 table', `entry[${i}]`, h.l1TableOffset + i * L1_ENTRY_SIZE, 'points to an unaligned L2 table or past the end of the file', off)
      }
      l1[i] = off
    }
    return new AllocationMap(img, l1, backing)
  }

  private async l2(l2off: number): Promise<L2Entry> {
    const hit = this.cache.get(l2off)
    if (hit) return hit
    const avail = Math.min(this.cs, this.dev.size - l2off)
    const buf = this.spare.pop() ?? new Uint8Array(this.cs)
    if (avail < this.cs) buf.fill(0, Math.max(0, avail))
    if (avail > 0) {
      if (this.dev.readInto) await this.dev.readInto(l2off, buf.subarray(0, avail))
      else buf.set(await this.dev.read(l2off, avail))
    }
    const entry: L2Entry = { buf, pins: 0, evicted: false }
    if (this.cache.size >= 64) {
      const oldest = this.cache.keys().next().value as number
      const old = this.cache.get(oldest)!
      this.cache.delete(oldest)
      old.evicted = true
      if (old.pins === 0 && this.spare.length < 4) this.spare.push(old.buf)
    }
    this.cache.set(l2off, entry)
    return entry
  }

  private release(e: L2Entry): void {
    e.pins--
    if (e.evicted && e.pins === 0 && this.spare.length < 4) this.spare.push(e.buf)
  }

  private unallocated(start: number, length: number): AllocRun {
    // A raw external data file holds the guest data at the same offsets (observed with qemu-img map).
    if (this.rawDataFile) return { start, length, depth: 0, present: true, zero: false, data: true, offset: start }
    return { start, length, depth: 0, present: false, zero: true, data: false }
  }

  /** Runs of this layer only (unallocated ranges not resolved through the backing file), merged. */
  private async *ownRuns(from: number, to: number, signal?: AbortSignalLike): AsyncGenerator<AllocRun> {
    const cs = this.cs
    const span = this.l2Entries * cs
    let pos = from
    let n = 0
    while (pos < to) {
      if ((++n & 1023) === 0) throwIfAborted(signal)
      const l1i = Math.floor(pos / span)
      if (l1i >= this.l1.length) {
        // Past the L1 table nothing is mapped: one run to the end, not one per L2 span (a hostile
        // size with a small L1 would otherwise mean billions of spans; QEMU refuses such an image).
        yield this.unallocated(pos, to - pos)
        return
      }
      const l2off = this.l1[l1i]!
      const spanEnd = Math.min(to, (l1i + 1) * span)
      if (!l2off) {
        yield this.unallocated(pos, spanEnd - pos)
        pos = spanEnd
        continue
      }
      const ent = await this.l2(l2off)
      ent.pins++
      try {
        const t = ent.buf
        const v = new DataView(t.buffer, t.byteOffset, t.byteLength)
        const words = new Uint32Array(t.buffer, t.byteOffset, t.byteLength >>> 2)
        const wpe = this.entrySize >>> 2
        while (pos < spanEnd) {
          const gc = Math.floor(pos / cs)
          const idx = gc - l1i * this.l2Entries
          // A stretch of all-zero entries (unallocated, no flags) is one run: skip it a word at a
          // time instead of one run per cluster (a sparse 64 TiB disk has millions of them).
          let z = idx
          const zEnd = Math.min(this.l2Entries, Math.ceil((spanEnd - l1i * span) / cs))
          while (z < zEnd && (words[z * wpe]! | words[z * wpe + 1]!) === 0 && (wpe === 2 || (words[z * wpe + 2]! | words[z * wpe + 3]!) === 0)) z++
          if (z > idx) {
            const stop = Math.min(spanEnd, (l1i * this.l2Entries + z) * cs)
            yield this.unallocated(pos, stop - pos)
            pos = stop
            continue
          }
          const hi = v.getUint32(idx * this.entrySize)
          const lo = v.getUint32(idx * this.entrySize + 4)
          const clusterEnd = Math.min(spanEnd, (gc + 1) * cs)
          const host = entryOffset(hi, lo)
          if (isCompressed(hi)) {
            yield { start: pos, length: clusterEnd - pos, depth: 0, present: true, zero: false, data: true, compressed: true }
            pos = clusterEnd
            continue
          }
          if (!this.extendedL2) {
            const inCluster = pos - gc * cs
            if (hasZeroFlag(lo)) yield { start: pos, length: clusterEnd - pos, depth: 0, present: true, zero: true, data: false, ...(host ? { offset: host + inCluster } : {}) }
            else if (host) yield { start: pos, length: clusterEnd - pos, depth: 0, present: true, zero: false, data: true, offset: host + inCluster }
            else yield this.unallocated(pos, clusterEnd - pos)
            pos = clusterEnd
            continue
          }
          // Extended L2: SUBCLUSTERS subclusters, each allocated and/or reading as zeros.
          const zeroBits = v.getUint32(idx * this.entrySize + L2_SUBCLUSTER_BITMAP)
          const allocBits = v.getUint32(idx * this.entrySize + L2_SUBCLUSTER_BITMAP + 4)
          const sc = cs / SUBCLUSTERS
          while (pos < clusterEnd) {
            const s = Math.floor((pos - gc * cs) / sc)
            const subEnd = Math.min(clusterEnd, gc * cs + (s + 1) * sc)
            const inCluster = pos - gc * cs
            if (subclusterZero(zeroBits, s)) yield { start: pos, length: subEnd - pos, depth: 0, present: true, zero: true, data: false }
            else if (subclusterAllocated(allocBits, s)) yield { start: pos, length: subEnd - pos, depth: 0, present: true, zero: false, data: true, offset: host + inCluster }
            else yield this.unallocated(pos, subEnd - pos)
            pos = subEnd
          }
        }
      } finally {
        this.release(ent)
      }
    }
  }

  /** Runs over [from, to), unallocated ranges resolved through the backing chain, merged like qemu-img map. */
  async *runs(from = 0, to = this.diskLength, signal?: AbortSignalLike): AsyncGenerator<AllocRun> {
    let pending: AllocRun | undefined
    const merge = function* (r: AllocRun): Generator<AllocRun> {
      if (pending && pending.start + pending.length === r.start && same(pending, r)) {
        pending.length += r.length
        return
      }
      if (pending) yield pending
      pending = { ...r }
    }
    for await (const r of this.ownRuns(from, Math.min(to, this.diskLength), signal)) {
      if (r.present || !this.backing) { yield* merge(r); continue }
      // unallocated here: ask the backing file (zeros past its end)
      const bEnd = Math.min(r.start + r.length, this.backing.diskLength)
      if (r.start < bEnd) {
        for await (const b of this.backing.runs(r.start, bEnd, signal)) yield* merge({ ...b, depth: b.depth + 1 })
      }
      if (bEnd < r.start + r.length) {
        const s = Math.max(r.start, bEnd)
        yield* merge({ start: s, length: r.start + r.length - s, depth: 1, present: false, zero: true, data: false })
      }
    }
    if (pending) yield pending
  }
}

function same(a: AllocRun, b: AllocRun): boolean {
  if (a.depth !== b.depth || a.present !== b.present || a.zero !== b.zero || a.data !== b.data || !!a.compressed !== !!b.compressed) return false
  if (a.offset === undefined && b.offset === undefined) return true
  return a.offset !== undefined && b.offset !== undefined && a.offset + a.length === b.offset
}

export interface AllocationCells {
  data: Float64Array
  zero: Float64Array
  unallocated: Float64Array
}

/** Bytes of each kind per cell over [start, end) (same cell rule as the dirty heatmap). */
export async function allocationCells(m: AllocationMap, boundaries: Float64Array, signal?: AbortSignalLike): Promise<AllocationCells> {
  const cells = boundaries.length - 1
  const out = { data: new Float64Array(cells), zero: new Float64Array(cells), unallocated: new Float64Array(cells) }
  let cell = 0
  for await (const r of m.runs(boundaries[0]!, boundaries[cells]!, signal)) {
    const arr = out[kindOf(r)]
    let a = r.start
    const b = r.start + r.length
    while (a < b) {
      while (cell < cells - 1 && boundaries[cell + 1]! <= a) cell++
      const stop = Math.min(b, boundaries[cell + 1]!)
      if (stop <= a) break
      arr[cell]! += stop - a
      a = stop
    }
  }
  return out
}

export interface DirtySplit {
  dirty: number
  data: number
  zero: number
  unallocated: number
}

/**
 * Split dirty extents by allocation: the incremental-backup estimate (fstrim case: dirty but zero).
 * One sweep: the allocation runs are walked forward alongside the sorted extents, and the walk is
 * restarted only across a gap wider than one L2 table's span (so a sparse bitmap over a heavily
 * fragmented disk does not walk the runs in between, and a million extents do not start a million
 * walks).
 */
export async function splitByAllocation(m: AllocationMap, dirty: AsyncIterable<Extent>, signal?: AbortSignalLike): Promise<DirtySplit> {
  const s: DirtySplit = { dirty: 0, data: 0, zero: 0, unallocated: 0 }
  const jump = m.cs * (m.cs / 8)
  let it: AsyncGenerator<AllocRun> | undefined
  let run: AllocRun | undefined
  const restart = async (at: number): Promise<void> => {
    await it?.return(undefined)
    it = m.runs(at, m.diskLength, signal)
    const n = await it.next()
    run = n.done ? undefined : n.value
  }
  const advance = async (): Promise<void> => {
    const n = await it!.next()
    run = n.done ? undefined : n.value
  }
  try {
    for await (const e of dirty) {
      s.dirty += e.length
      const end = e.offset + e.length
      if (!run || e.offset < run.start || e.offset >= run.start + run.length + jump) await restart(e.offset)
      let a = e.offset
      while (run && a < end) {
        const runEnd = run.start + run.length
        if (runEnd <= a) { await advance(); continue }
        // runs tile [restart point, disk end) without gaps, so run.start <= a here
        const stop = Math.min(end, runEnd)
        s[kindOf(run)] += stop - Math.max(a, run.start)
        a = stop
      }
    }
  } finally {
    await it?.return(undefined)
  }
  return s
}
