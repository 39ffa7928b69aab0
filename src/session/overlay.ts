/**
 * Dirty × allocation per heatmap cell: one sweep over the allocation runs (qemu-img map's
 * terms) and the dirty extents of a bitmap, both sorted, adding each piece to the cells it
 * covers. Also the bytes each layer of the backing chain provides (by qemu-img map's depth).
 * Pure: the worker feeds it the engine's AllocationMap runs and extents.
 */
import type { AbortSignalLike, AllocKind, AllocRun, Extent } from '../engine/index.js'
import { AbortError, kindOf } from '../engine/index.js'

/** Bytes per cell; all arrays have one entry per cell. */
export interface OverlayCells {
  /** dirty, and allocated data: what a zero-aware incremental backup copies */
  dirtyData: Float64Array
  /** dirty, but allocated as zero (e.g. discarded by fstrim, or written as zeros) */
  dirtyZero: Float64Array
  /** dirty, but unallocated in the whole chain: reads as zeros */
  dirtyUnallocated: Float64Array
  /** clean and allocated data */
  cleanData: Float64Array
  /** per chain depth (0 = this image): bytes whose allocation (data or zero) comes from that layer */
  layers: Float64Array[]
}

/** Adds byte ranges, in increasing order, to the cells between `boundaries`. */
class CellAdder {
  private cell = 0
  constructor(private readonly b: Float64Array) {}
  add(arr: Float64Array, a: number, e: number): void {
    const b = this.b
    const cells = b.length - 1
    a = Math.max(a, b[0]!)
    e = Math.min(e, b[cells]!)
    // Pieces arrive in order, but the cursor may have to step back when a later array starts
    // earlier within the same run; only ever by the cells of one run, so restart by search.
    if (this.cell > 0 && b[this.cell]! > a) this.cell = findCell(b, a)
    while (a < e) {
      while (this.cell < cells - 1 && b[this.cell + 1]! <= a) this.cell++
      const stop = Math.min(e, b[this.cell + 1]!)
      if (stop <= a) break
      arr[this.cell]! += stop - a
      a = stop
    }
  }
}

/** Index of the cell holding byte `x` (binary search over the boundaries). */
export function findCell(b: Float64Array, x: number): number {
  let lo = 0
  let hi = b.length - 2
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (b[mid]! <= x) lo = mid
    else hi = mid - 1
  }
  return Math.max(0, lo)
}

async function* iterate<T>(src: AsyncIterable<T> | Iterable<T>): AsyncGenerator<T> {
  for await (const x of src as AsyncIterable<T>) yield x
}

/**
 * The overlay over the cells between `boundaries` (cells + 1 increasing offsets). `runs` must
 * cover [boundaries[0], boundaries[cells]) in order; `dirty` are merged dirty extents in order
 * (those outside the range are skipped).
 */
export async function overlayCells(
  runs: AsyncIterable<AllocRun> | Iterable<AllocRun>, dirty: AsyncIterable<Extent> | Iterable<Extent>,
  boundaries: Float64Array, signal?: AbortSignalLike,
): Promise<OverlayCells> {
  const cells = boundaries.length - 1
  const out: OverlayCells = {
    dirtyData: new Float64Array(cells), dirtyZero: new Float64Array(cells), dirtyUnallocated: new Float64Array(cells),
    cleanData: new Float64Array(cells), layers: [],
  }
  const dirtyArr: Record<AllocKind, Float64Array> = { data: out.dirtyData, zero: out.dirtyZero, unallocated: out.dirtyUnallocated }
  const adder = new CellAdder(boundaries)
  const layerAdder = new CellAdder(boundaries)
  const di = iterate(dirty)[Symbol.asyncIterator]()
  let d: Extent | undefined = (await di.next()).value as Extent | undefined
  let n = 0
  for await (const r of runs as AsyncIterable<AllocRun>) {
    if ((++n & 1023) === 0 && signal?.aborted) throw new AbortError()
    const s = r.start
    const e = r.start + r.length
    const kind = kindOf(r)
    if (r.present) {
      while (out.layers.length <= r.depth) out.layers.push(new Float64Array(cells))
      layerAdder.add(out.layers[r.depth]!, s, e)
    }
    let pos = s
    while (pos < e) {
      while (d && d.offset + d.length <= pos) d = (await di.next()).value as Extent | undefined
      if (!d || d.offset >= e) {
        if (kind === 'data') adder.add(out.cleanData, pos, e)
        break
      }
      if (d.offset > pos) {
        if (kind === 'data') adder.add(out.cleanData, pos, d.offset)
        pos = d.offset
        continue
      }
      const stop = Math.min(e, d.offset + d.length)
      adder.add(dirtyArr[kind], pos, stop)
      pos = stop
    }
  }
  return out
}

/** Sums of the overlay over all cells. */
export function overlayTotals(o: Pick<OverlayCells, 'dirtyData' | 'dirtyZero' | 'dirtyUnallocated' | 'cleanData'>): { dirtyData: number; dirtyZero: number; dirtyUnallocated: number; cleanData: number } {
  const sum = (a: Float64Array): number => { let s = 0; for (const x of a) s += x; return s }
  return { dirtyData: sum(o.dirtyData), dirtyZero: sum(o.dirtyZero), dirtyUnallocated: sum(o.dirtyUnallocated), cleanData: sum(o.cleanData) }
}
