/**
 * The one refcount-aware allocator (docs/format.md §5.5). Works on a copy of every refcount; records
 * which refcount blocks changed, adds refcount blocks (that may count themselves) and grows
 * and moves the refcount table when the image outgrows it. Nothing is written here: the
 * planner serializes the changed blocks and the committer writes them.
 */
import { ConstraintError } from '../errors.js'
import { MAX_REFTABLE_BYTES } from '../qcow2/constants.js'
import type { Header } from '../qcow2/header.js'
import { type Refcounts, maxRefcount, setRefcountEntry } from '../qcow2/refcount.js'

export class Allocator {
  readonly cs: number
  readonly epb: number
  readonly order: number
  /** current refcount of every cluster (grows as needed) */
  private counts: Float64Array
  /** reftable entries (refblock offsets), possibly grown */
  reftable: Float64Array
  /** refcount table location; changes when it moves */
  reftableOffset: number
  reftableClusters: number
  readonly oldReftable: { offset: number; clusters: number }
  /** refblock slots whose block is new (written whole) */
  readonly newBlocks = new Set<number>()
  /** refblock slots whose counts changed */
  readonly dirtyBlocks = new Set<number>()
  /** clusters this plan allocated; never reused for another allocation after being freed */
  readonly allocated = new Set<number>()
  private readonly freedThisPlan = new Set<number>()
  private fileClusters: number
  private cursor = 1
  private highest = 0
  reftableMoved = false

  constructor(h: Header, rc: Refcounts, fileSize: number) {
    this.cs = h.clusterSize
    this.epb = rc.entriesPerBlock
    this.order = h.refcountOrder
    this.counts = rc.counts.slice()
    this.reftable = rc.reftable.slice()
    this.reftableOffset = h.refcountTableOffset
    this.reftableClusters = h.refcountTableClusters
    this.oldReftable = { offset: h.refcountTableOffset, clusters: h.refcountTableClusters }
    this.fileClusters = Math.ceil(fileSize / this.cs)
    for (let c = this.counts.length - 1; c >= 0; c--) if (this.counts[c]! > 0) { this.highest = c; break }
  }

  get(c: number): number {
    return c < this.counts.length ? this.counts[c]! : 0
  }

  private set(c: number, v: number): void {
    if (c >= this.counts.length) {
      const n = new Float64Array(Math.max(c + 1, Math.ceil(this.counts.length * 1.5), this.epb))
      n.set(this.counts)
      this.counts = n
    }
    this.counts[c] = v
    if (v > 0 && c > this.highest) this.highest = c
    this.dirtyBlocks.add(Math.floor(c / this.epb))
  }

  /** End of the file after the plan, in clusters. */
  get endCluster(): number {
    return this.fileClusters
  }

  /**
   * First fit of n free clusters (refcount 0, not freed in this plan), else append. The scan
   * runs to the end of the file or past the highest cluster with a refcount, whichever is
   * later: a cluster past the end of the file can still be counted (a writer that crashed
   * between its refcount update and its data write), and must not be handed out again.
   */
  private findFree(n: number): number {
    // A moving cursor: clusters before it were in use or holes too short for an earlier request.
    const end = Math.max(this.fileClusters, this.highest + 1)
    let run = 0
    for (let c = this.cursor; c < end; c++) {
      if (c < this.counts.length && this.counts[c] !== 0) {
        // clusters in use, skipped at once up to the next refcount 0 (a preallocated image has
        // millions of them before the first free one)
        run = 0
        const z = this.counts.indexOf(0, c + 1)
        c = (z < 0 ? this.counts.length : z) - 1
        continue
      }
      if (!this.freedThisPlan.has(c) && !this.isReftableCluster(c)) {
        if (++run === n) { this.cursor = c - n + 1; return c - n + 1 }
      } else run = 0
    }
    this.cursor = end - run
    return end - run
  }

  private isReftableCluster(c: number): boolean {
    const first = this.reftableOffset / this.cs
    return c >= first && c < first + this.reftableClusters
  }

  /** Allocate n contiguous clusters (refcount 1), keeping refcount structures complete. Returns the byte offset. */
  alloc(n: number): number {
    const start = this.findFree(n)
    for (let c = start; c < start + n; c++) {
      this.set(c, 1)
      this.allocated.add(c)
    }
    this.fileClusters = Math.max(this.fileClusters, start + n)
    this.ensureCoverage()
    return start * this.cs
  }

  /** Drop one reference from each cluster touched by [offset, offset + bytes). */
  free(offset: number, bytes: number): void {
    const first = Math.floor(offset / this.cs)
    const last = Math.floor((offset + bytes - 1) / this.cs)
    for (let c = first; c <= last; c++) {
      const v = this.get(c)
      if (v < 1) throw new ConstraintError(`refusing to free cluster ${c} (offset 0x${(c * this.cs).toString(16)}): its refcount is already 0`, 'refcounts-damaged')
      this.set(c, v - 1)
      if (v - 1 === 0) this.freedThisPlan.add(c)
    }
  }

  /** Add a reference (check the width's maximum). */
  ref(c: number): void {
    const v = this.get(c)
    if (v >= maxRefcount(this.order)) throw new ConstraintError(`cluster ${c} has reached the maximum refcount for ${2 ** this.order}-bit refcounts`, 'limit-exceeded')
    this.set(c, v + 1)
  }

  /** Fixed point of docs/format.md §5.5 step 3: every used cluster covered by a refblock listed in the reftable. */
  private ensureCoverage(): void {
    for (let guard = 0; guard < 1000; guard++) {
      const highest = this.highestUsed()
      const need = Math.floor(highest / this.epb) + 1
      const capacity = (this.reftableClusters * this.cs) / 8
      if (need > capacity) { this.growReftable(need); continue }
      let changed = false
      for (let slot = 0; slot < need; slot++) {
        if (this.reftable[slot]) continue
        if (!this.slotHasCounts(slot)) continue
        // A new refblock: prefer a cluster inside the range it describes so it counts itself.
        const c = this.findFree(1)
        this.reftable[slot] = c * this.cs
        this.newBlocks.add(slot)
        this.dirtyBlocks.add(slot)
        this.set(c, 1)
        this.allocated.add(c)
        this.fileClusters = Math.max(this.fileClusters, c + 1)
        changed = true
        break
      }
      if (!changed) return
    }
    throw new ConstraintError('refcount structures did not converge (allocator loop)')
  }

  private highestUsed(): number {
    return this.highest
  }

  private slotHasCounts(slot: number): boolean {
    const end = Math.min(this.counts.length, (slot + 1) * this.epb)
    for (let c = slot * this.epb; c < end; c++) if (this.counts[c]! > 0) return true
    return false
  }

  private growReftable(need: number): void {
    const clusters = Math.ceil((need * 1.5 * 8) / this.cs)
    if (clusters * this.cs > MAX_REFTABLE_BYTES) throw new ConstraintError("the refcount table would exceed QEMU's 8 MiB limit", 'limit-exceeded')
    const old = this.reftable
    this.reftable = new Float64Array((clusters * this.cs) / 8)
    this.reftable.set(old.subarray(0, Math.min(old.length, this.reftable.length)))
    // The new table lives at fresh clusters (never over the old one, which stays live until the switch).
    const start = this.findFree(clusters)
    const prevOffset = this.reftableOffset
    const prevClusters = this.reftableClusters
    for (let c = start; c < start + clusters; c++) { this.set(c, 1); this.allocated.add(c) }
    this.fileClusters = Math.max(this.fileClusters, start + clusters)
    this.reftableOffset = start * this.cs
    this.reftableClusters = clusters
    if (this.reftableMoved) {
      // A table allocated earlier in this plan is replaced before it was ever used: drop it now.
      for (let c = prevOffset / this.cs; c < prevOffset / this.cs + prevClusters; c++) { this.set(c, this.get(c) - 1); this.allocated.delete(c) }
    }
    this.reftableMoved = true
  }

  /** Serialize refblock `slot` from the current counts. */
  encodeBlock(slot: number): Uint8Array {
    const block = new Uint8Array(this.cs)
    const base = slot * this.epb
    const end = Math.min(this.counts.length, base + this.epb)
    for (let c = base; c < end; c++) {
      const v = this.counts[c]!
      if (v) setRefcountEntry(block, this.order, c - base, v)
    }
    return block
  }

  /** Serialize the whole refcount table (padded to its clusters). */
  encodeReftable(): Uint8Array {
    const out = new Uint8Array(this.reftableClusters * this.cs)
    const v = new DataView(out.buffer)
    for (let i = 0; i < this.reftable.length; i++) if (this.reftable[i]) v.setBigUint64(i * 8, BigInt(this.reftable[i]!))
    return out
  }

  /** Refcount table slots whose entry is new compared to the table on disk. */
  newSlots(): number[] {
    return [...this.newBlocks].sort((a, b) => a - b)
  }

  takeDirty(): number[] {
    const s = [...this.dirtyBlocks].sort((a, b) => a - b)
    this.dirtyBlocks.clear()
    return s
  }
}
