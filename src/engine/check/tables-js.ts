/**
 * The check's table kernels in JavaScript: the same functions as tables.wat, with the same
 * contract, over the same memory layout (tables.ts), for platforms where the WebAssembly module
 * does not run. tables.test.ts proves the two give the same answers; tables.wat describes what
 * each function does.
 */

/** What tables.wat exports, as both implementations offer it. */
export interface Kernels {
  /** the first non-zero 8-byte word in [p, end), or end (byte positions in the memory) */
  next(p: number, end: number): number
  /** the image's constants (tables.wat setup) */
  setup(clusterBits: number, fileSize: number, counts: number, stored: number, refcountOrder: number, limit: number): void
  /** the L2 entries of [start, end) done here; returns the first one left to the caller, or end */
  l2(start: number, end: number, flags: number, times: number): number
  /** compare_refcounts over [from, to) until the first cluster left to the caller, or to */
  compare(from: number, to: number): number
  /** the walk's state: where the next contiguous data cluster would start (0: none yet) */
  nextContig: number
  allocated: number
  fragmented: number
  /** the last cluster compare saw with a refcount or a count */
  highest: number
}

/** l2 flags (tables.wat). */
export const L2Flag = {
  extended: 1,
  dataFile: 2,
  copied: 4,
  unknownRefcounts: 8,
} as const

/**
 * The first non-zero 8-byte word of words[from/4, end/4) as a byte position, or `end`: 32-bit
 * words, 64 bytes OR-ed together per step once aligned.
 */
export function nextJs(w: Int32Array, from: number, end: number): number {
  let i = from >>> 2
  const e = end >>> 2
  while (i < e && (i & 15) !== 0) {
    if ((w[i]! | w[i + 1]!) !== 0) return i << 2
    i += 2
  }
  for (; i + 16 <= e; i += 16) {
    if ((w[i]! | w[i + 1]! | w[i + 2]! | w[i + 3]! | w[i + 4]! | w[i + 5]! | w[i + 6]! | w[i + 7]! |
      w[i + 8]! | w[i + 9]! | w[i + 10]! | w[i + 11]! | w[i + 12]! | w[i + 13]! | w[i + 14]! | w[i + 15]!) !== 0) break
  }
  for (; i < e; i += 2) if ((w[i]! | w[i + 1]!) !== 0) return i << 2
  return end
}

const COPIED = 0x80000000
/** compressed (bit 62) and L2E_STD_RESERVED_MASK, high and low words */
const STOP_HI = 0x7f000000
const STOP_LO = 0x1fe
const OFFSET_HI = 0x00ffffff
const OFFSET_LO = 0xfffffe00

/** tables.wat in JavaScript, over an ArrayBuffer laid out as tables.ts lays out the module's memory. */
export class JsKernels implements Kernels {
  nextContig = 0
  allocated = 0
  fragmented = 0
  highest = 0
  private readonly u8: Uint8Array
  private readonly words: Int32Array
  private readonly dv: DataView
  private cbits = 16
  private file = 0
  private counts = 0
  private stored = 0
  private order = 4
  private limit = 0

  constructor(buf: ArrayBuffer) {
    this.u8 = new Uint8Array(buf)
    this.words = new Int32Array(buf)
    this.dv = new DataView(buf)
  }

  next(p: number, end: number): number {
    return nextJs(this.words, p, end)
  }

  setup(clusterBits: number, fileSize: number, counts: number, stored: number, refcountOrder: number, limit: number): void {
    this.cbits = clusterBits
    this.file = fileSize
    this.counts = counts
    this.stored = stored
    this.order = refcountOrder
    this.limit = limit
  }

  /** The stored refcount of cluster c (exact up to 2^53; larger 64-bit ones are rounded, never 0 or 1). */
  private rc(c: number): number {
    const u8 = this.u8
    const s = this.stored
    switch (this.order) {
      case 0: return (u8[s + Math.floor(c / 8)]! >>> (c & 7)) & 1
      case 1: return (u8[s + Math.floor(c / 4)]! >>> ((c & 3) << 1)) & 3
      case 2: return (u8[s + Math.floor(c / 2)]! >>> ((c & 1) << 2)) & 15
      case 3: return u8[s + c]!
      case 4: return (u8[s + 2 * c]! << 8) | u8[s + 2 * c + 1]!
      case 5: return this.dv.getUint32(s + 4 * c)
      default: return this.dv.getUint32(s + 8 * c) * 2 ** 32 + this.dv.getUint32(s + 8 * c + 4)
    }
  }

  l2(start: number, end: number, flags: number, times: number): number {
    const dv = this.dv
    const u8 = this.u8
    const ext = (flags & L2Flag.extended) !== 0
    const dataFile = (flags & L2Flag.dataFile) !== 0
    const copied = (flags & L2Flag.copied) !== 0
    const unknown = (flags & L2Flag.unknownRefcounts) !== 0
    const esize = ext ? 16 : 8
    const cs = 2 ** this.cbits
    let next = this.nextContig
    let alloc = this.allocated
    let frag = this.fragmented
    let stop = end
    for (let p = start; ;) {
      p = nextJs(this.words, p, end)
      if (p >= end) break
      const e = p - ((p - start) & (esize - 1))
      p = e + esize
      const hi = dv.getUint32(e)
      const lo = dv.getUint32(e + 4)
      const zeroBits = ext ? dv.getUint32(e + 8) : 0
      const allocBits = ext ? dv.getUint32(e + 12) : 0
      if ((hi & STOP_HI) !== 0 || (lo & STOP_LO) !== 0) { stop = e; break }
      const offLo = (lo & OFFSET_LO) >>> 0
      const off = (hi & OFFSET_HI) * 2 ** 32 + offLo
      if (!ext && (lo & 1) !== 0) {
        if (off === 0) continue // a plain zero cluster
      } else if (off === 0 && !(dataFile && (hi & COPIED) !== 0)) {
        if (allocBits !== 0) { stop = e; break }
        continue // unallocated
      }
      if ((zeroBits & allocBits) !== 0 || (offLo & (cs - 1)) !== 0) { stop = e; break }
      if (dataFile) {
        if (copied && (hi & COPIED) === 0) { stop = e; break }
      } else {
        if (off >= this.file) { stop = e; break }
        const c = off / cs
        if (copied && (unknown || (this.rc(c) === 1) !== ((hi & COPIED) !== 0))) { stop = e; break }
        const n = u8[this.counts + c]! + times
        if (n > this.limit) { stop = e; break }
        u8[this.counts + c] = n
      }
      alloc++
      if (next !== 0 && off !== next) frag++
      next = off + cs
      // The entries after it that are the same entry with the next cluster (a run; only the low
      // word changes, a carry into the high word ends it: `want` passes 2^32, which no word
      // equals): everything but the cluster is known to pass.
      if (ext) continue
      for (let want = lo + cs; p < end && dv.getUint32(p) === hi && dv.getUint32(p + 4) === want; want += cs) {
        const o = next
        if (!dataFile) {
          if (o >= this.file) break
          const c = o / cs
          if (copied && (unknown || (this.rc(c) === 1) !== ((hi & COPIED) !== 0))) break
          const n = u8[this.counts + c]! + times
          if (n > this.limit) break
          u8[this.counts + c] = n
        }
        alloc++
        next = o + cs
        p += 8
      }
    }
    this.nextContig = next
    this.allocated = alloc
    this.fragmented = frag
    return stop
  }

  compare(from: number, to: number): number {
    const u8 = this.u8
    const counts = this.counts
    for (let i = from; i < to; i++) {
      const n = u8[counts + i]!
      if (n === 255 || this.rc(i) !== n) return i
      if (n !== 0) this.highest = i
    }
    return to
  }
}
