/**
 * The expected refcount of every cluster, rebuilt from the structures that reference it
 * (docs/format.md §5.3; QEMU qcow2-refcount.c "in-memory refcount table"). One byte per
 * cluster, and a map for the rare counts of 255 or more. The bytes are the check's counts
 * region (check/tables.ts), where the kernels count most references, one byte per cluster of
 * the file (QEMU's table has refcount_bits per cluster); pages of memory never written cost
 * nothing. Without that region (a file with too many clusters for it) they are pages that exist
 * only where something is referenced.
 */

const PAGE_BITS = 16
const PAGE_SIZE = 1 << PAGE_BITS
const BIG = 255

/** Saturating per-cluster reference counts, like QEMU's table of refcount_bits-wide entries. */
export class ReferenceCounts {
  private readonly pages = new Map<number, Uint8Array>()
  private readonly big = new Map<number, number>()
  /** the page used last and its index: a walk counts cluster after cluster on one page */
  private lastIndex = -1
  private lastPage: Uint8Array | undefined
  /**
   * QEMU's nb_clusters: clusters of the file, grown to k+1 when a reference lands on cluster
   * k past it (a reference may pass the end of the file by less than one cluster).
   */
  size: number

  constructor(
    /** clusters of the file, ceil(file size / cluster size) */
    size: number,
    /** the image's largest refcount (2^refcount_bits - 1): QEMU counts no further */
    readonly max: number,
    /** the counts region (check/tables.ts): byte c is cluster c's count, for c < its length */
    private readonly dense?: Uint8Array,
  ) {
    this.size = size
  }

  private page(pi: number): Uint8Array | undefined {
    if (this.dense) {
      // the region as pages, so that one code path reads and writes both
      const from = pi * PAGE_SIZE
      if (from >= this.dense.length) return undefined
      if (pi === this.lastIndex) return this.lastPage
      this.lastIndex = pi
      this.lastPage = this.dense.subarray(from, from + PAGE_SIZE)
      return this.lastPage
    }
    if (pi === this.lastIndex) return this.lastPage
    const p = this.pages.get(pi)
    if (p) { this.lastIndex = pi; this.lastPage = p }
    return p
  }

  get(c: number): number {
    const p = this.page(Math.floor(c / PAGE_SIZE))
    if (!p) return 0
    const v = p[c % PAGE_SIZE]
    if (v === undefined) return 0 // past the end of the region
    return v === BIG ? this.big.get(c)! : v
  }

  /**
   * Add `n` references to cluster `c`. Returns how many of them overflowed the refcount width
   * (QEMU: "ERROR: overflow cluster offset=..."), each one a corruption.
   */
  add(c: number, n: number): number {
    // with the region, c is always inside it (references past the file by a cluster or more are not counted)
    if (this.dense && c >= this.dense.length) throw new RangeError(`cluster ${c} is past the check's counts (${this.dense.length} clusters)`)
    if (c >= this.size) this.size = c + 1
    const pi = Math.floor(c / PAGE_SIZE)
    let p = this.page(pi)
    if (!p) {
      p = new Uint8Array(PAGE_SIZE)
      this.pages.set(pi, p)
      this.lastIndex = pi
      this.lastPage = p
    }
    const i = c % PAGE_SIZE
    const old = p[i] === BIG ? this.big.get(c)! : p[i]!
    const room = this.max - old
    const added = Math.min(room, n)
    const v = old + added
    if (v >= BIG) {
      p[i] = BIG
      this.big.set(c, v)
    } else {
      p[i] = v
    }
    return n - added
  }

  /** Whether any cluster in [from, to) may have a reference (false means all are 0). */
  anyIn(from: number, to: number): boolean {
    if (this.dense) {
      const d = this.dense
      for (let c = from; c < Math.min(to, d.length); c++) if (d[c] !== 0) return true
      return false
    }
    for (let pi = Math.floor(from / PAGE_SIZE); pi * PAGE_SIZE < to; pi++) {
      if (this.pages.has(pi)) return true
    }
    return false
  }
}
