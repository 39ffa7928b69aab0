/**
 * A computed list of merged extents (a bitmap-algebra result) kept in the worker as two
 * Float64Arrays (16 bytes per extent): the page asks for pages, windows and heatmap cells,
 * never for the whole list.
 */
import type { AbortSignalLike, Extent } from '../engine/index.js'
import { AbortError, ConstraintError } from '../engine/index.js'

export class ExtentStore {
  private off = new Float64Array(1024)
  private len = new Float64Array(1024)
  count = 0
  totalBytes = 0

  push(e: Extent): void {
    if (this.count === this.off.length) {
      const o = new Float64Array(this.off.length * 2)
      o.set(this.off)
      this.off = o
      const l = new Float64Array(this.len.length * 2)
      l.set(this.len)
      this.len = l
    }
    this.off[this.count] = e.offset
    this.len[this.count] = e.length
    this.count++
    this.totalBytes += e.length
  }

  /** Collect `src`; more than `maxCount` extents is refused (memory is 16 bytes per extent). */
  static async from(src: AsyncIterable<Extent>, signal?: AbortSignalLike, maxCount = Infinity): Promise<ExtentStore> {
    const s = new ExtentStore()
    for await (const e of src) {
      if ((s.count & 4095) === 4095 && signal?.aborted) throw new AbortError()
      if (s.count >= maxCount) throw new ConstraintError(`the result has more than ${maxCount.toLocaleString('en-US')} extents: too many to keep (compare bitmaps of a coarser granularity)`)
      s.push(e)
    }
    return s
  }

  at(i: number): Extent {
    return { offset: this.off[i]!, length: this.len[i]! }
  }

  /** Extents first .. first+count-1 (fewer at the end). */
  page(first: number, count: number): Extent[] {
    const out: Extent[] = []
    for (let i = Math.max(0, first); i < Math.min(this.count, first + count); i++) out.push(this.at(i))
    return out
  }

  /** Index of the first extent that ends after byte `offset`. */
  indexAt(offset: number): number {
    let lo = 0
    let hi = this.count
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.off[mid]! + this.len[mid]! <= offset) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Extents meeting [from, to): numbers first .. first+count-1. */
  window(from: number, to: number): { first: number; count: number } {
    const first = this.indexAt(from)
    let lo = first
    let hi = this.count
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.off[mid]! < to) lo = mid + 1
      else hi = mid
    }
    return { first, count: Math.max(0, lo - first) }
  }

  /** The extents meeting [from, to), in order (unclipped). */
  *between(from: number, to: number): Generator<Extent> {
    for (let i = this.indexAt(from); i < this.count && this.off[i]! < to; i++) yield this.at(i)
  }
}
