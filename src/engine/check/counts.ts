/**
 * The expected refcount of every cluster, rebuilt from the structures that reference it
 * (docs/format.md §5.3; QEMU qcow2-refcount.c "in-memory refcount table"). Stored sparsely: one byte per
 * cluster in pages that exist only where something is referenced, and a map for the rare
 * counts of 255 or more. An image may be 64 TiB virtual with a small file, and the page map
 * keeps memory proportional to the clusters actually referenced.
 */

const PAGE_BITS = 16
const PAGE_SIZE = 1 << PAGE_BITS
const BIG = 255

/** Saturating per-cluster reference counts, like QEMU's table of refcount_bits-wide entries. */
export class ReferenceCounts {
  private readonly pages = new Map<number, Uint8Array>()
  private readonly big = new Map<number, number>()
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
  ) {
    this.size = size
  }

  get(c: number): number {
    const p = this.pages.get(Math.floor(c / PAGE_SIZE))
    if (!p) return 0
    const v = p[c % PAGE_SIZE]!
    return v === BIG ? this.big.get(c)! : v
  }

  /**
   * Add `n` references to cluster `c`. Returns how many of them overflowed the refcount width
   * (QEMU: "ERROR: overflow cluster offset=..."), each one a corruption.
   */
  add(c: number, n: number): number {
    if (c >= this.size) this.size = c + 1
    const pi = Math.floor(c / PAGE_SIZE)
    let p = this.pages.get(pi)
    if (!p) {
      p = new Uint8Array(PAGE_SIZE)
      this.pages.set(pi, p)
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
    for (let pi = Math.floor(from / PAGE_SIZE); pi * PAGE_SIZE < to; pi++) {
      if (this.pages.has(pi)) return true
    }
    return false
  }
}
