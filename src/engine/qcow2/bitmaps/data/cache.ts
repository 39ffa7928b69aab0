/** The reader's byte-budgeted LRU of data clusters and single blocks. */

/** Byte-budgeted LRU of byte arrays by number (a Map keeps insertion order; get moves to the end). */
export class ByteCache {
  private readonly map = new Map<number, Uint8Array>()
  private bytes = 0
  /** `budget`: bytes kept; the newest entry is kept even when it alone is larger */
  constructor(private readonly budget: number) {}

  /** The byte budget. */
  get capacity(): number {
    return this.budget
  }

  /** The entry for `k`, now the most recently used, or undefined. */
  get(k: number): Uint8Array | undefined {
    const v = this.map.get(k)
    if (v) { this.map.delete(k); this.map.set(k, v) }
    return v
  }

  /** Keep `v` for `k` (an existing entry stays), dropping the least recently used past the budget. */
  set(k: number, v: Uint8Array): void {
    if (this.map.has(k)) return
    this.map.set(k, v)
    this.bytes += v.length
    while (this.bytes > this.budget && this.map.size > 1) {
      const [first, fv] = this.map.entries().next().value as [number, Uint8Array]
      this.map.delete(first)
      this.bytes -= fv.length
    }
  }
}
