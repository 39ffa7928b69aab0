/**
 * Bitmap data (spec §4.4-§4.5): a little-endian bit array split into clusters by the table.
 * BitmapReader reads it cluster by cluster through a bounded cache, answers all-zeroes and
 * all-ones entries without reading, masks tail bits past nbits, and after one scan keeps a
 * per-block index (set bits and run starts before each 4096-bit block) so that counts,
 * heatmaps and extent pages never read the whole bitmap again.
 */
import type { BlockDevice } from '../../device.js'
import { type AbortSignalLike, throwIfAborted } from '../../errors.js'
import type { Bitmap } from '../../image.js'
import { ENTRY_ONES, ENTRY_ZEROES } from './table.js'

/** Bits per index block (512 bytes; every cluster size is a multiple). */
export const BLOCK_BITS = 4096
const BLOCK_BYTES = BLOCK_BITS / 8
/** Blocks of one cluster read singly before the whole cluster is read (see BitmapReader.block). */
const BLOCK_READS_BEFORE_CLUSTER = 4
/** Largest single read while scanning. */
const SCAN_CHUNK = 8 * 1024 * 1024

export interface Progress {
  (doneBytes: number, totalBytes: number): void
}

export interface ScanOptions {
  signal?: AbortSignalLike
  onProgress?: Progress
}

export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333)
  x = (x + (x >>> 4)) & 0x0f0f0f0f
  return Math.imul(x, 0x01010101) >>> 24
}

function ctz32(x: number): number {
  return 31 - Math.clz32(x & -x)
}

/*
 * Block counting kernels for the scan: for `nblocks` whole 512-byte blocks of `data`, write
 * out[2i] = set bits and out[2i+1] = run starts (set bits whose predecessor is clear; `carry`
 * is the bit before the first block) of block i, and return the last bit. Measured on the bench
 * (issue 5, 512 MiB of dense random bits): the original one-word-at-a-time loop ran at
 * ~0.3-0.8 GB/s, the JS kernel below at ~1.1 GB/s, the WebAssembly SIMD kernel at ~5 GB/s.
 */
type BlockKernel = (data: Uint8Array, nblocks: number, out: Int32Array, carry: number) => number

/** JS kernel: two words per step, SWAR popcounts summed in 16-bit lanes (no overflow: <= 2048 per lane per block). */
export function countBlocksJs(data: Uint8Array, nblocks: number, out: Int32Array, carry: number): number {
  const words = wordsOf(data)
  const WPB = BLOCK_BYTES / 4
  for (let b = 0; b < nblocks; b++) {
    let ax = 0
    let as = 0
    const end = (b + 1) * WPB
    for (let w = b * WPB; w < end; w += 2) {
      const x0 = words[w]! | 0
      const x1 = words[w + 1]! | 0
      if ((x0 | x1) === 0) { carry = 0; continue }
      const t0 = x0 & ~((x0 << 1) | carry)
      const t1 = x1 & ~((x1 << 1) | (x0 >>> 31))
      carry = x1 >>> 31
      let a = x0 - ((x0 >>> 1) & 0x55555555)
      a = (a & 0x33333333) + ((a >>> 2) & 0x33333333)
      let c = x1 - ((x1 >>> 1) & 0x55555555)
      c = (c & 0x33333333) + ((c >>> 2) & 0x33333333)
      a += c
      a = (a & 0x0f0f0f0f) + ((a >>> 4) & 0x0f0f0f0f)
      ax = (ax + (a & 0x00ff00ff) + ((a >>> 8) & 0x00ff00ff)) | 0
      let d = t0 - ((t0 >>> 1) & 0x55555555)
      d = (d & 0x33333333) + ((d >>> 2) & 0x33333333)
      let f = t1 - ((t1 >>> 1) & 0x55555555)
      f = (f & 0x33333333) + ((f >>> 2) & 0x33333333)
      d += f
      d = (d & 0x0f0f0f0f) + ((d >>> 4) & 0x0f0f0f0f)
      as = (as + (d & 0x00ff00ff) + ((d >>> 8) & 0x00ff00ff)) | 0
    }
    out[2 * b] = (ax & 0xffff) + (ax >>> 16)
    out[2 * b + 1] = (as & 0xffff) + (as >>> 16)
  }
  return carry
}

/*
 * The same kernel in WebAssembly SIMD (403 bytes), assembled from this WAT with wabt:
 *   (func (export "blocks") (param $src i32) (param $nblocks i32) (param $out i32) (param $carry i32) (result i32)
 *     prev = i64x2.splat(carry)
 *     per block: two halves of 16 v128 each, per v128:
 *       v = load src; hi = i64x2.shr_u(v, 63)
 *       cin = i8x16.shuffle 8..23 (prev, hi)            ;; bit 63 of the previous 64-bit lane
 *       starts = v128.andnot(v, i64x2.shl(v, 1) | cin)
 *       sO += i8x16.popcnt(v); sR += i8x16.popcnt(starts); prev = hi; src += 16
 *     after each half: aO += i16x8.extadd_pairwise_i8x16_u(sO) (same for R)  ;; bytes <= 128
 *     store i32 sum of i32x4.extadd_pairwise_i16x8_u(aO) at out, of aR at out+4; out += 8
 *     return i64x2.extract_lane 1 (prev))
 * Exported memory "mem". Used when the platform allows it (a CSP without 'wasm-unsafe-eval'
 * forbids compiling it; then the JS kernel runs).
 */
const WASM_BLOCKS_HEX =
  '0061736d0100000001090160047f7f7f7f017f030201000503010001071002036d656d020006626c6f636b7300000ae2' +
  '0201df0203087b037f017b2003adfd12210402400340200c20014f0d01fd0c0000000000000000000000000000000021' +
  '0afd0c00000000000000000000000000000000210b4100210d0340fd0c000000000000000000000000000000002108fd' +
  '0c0000000000000000000000000000000021094100210e03402000fd00040021052005413ffdcd01210620042006fd0d' +
  '08090a0b0c0d0e0f1011121314151617210f200520054101fdcb01200ffd50fd4f210720082005fd62fd6e2108200920' +
  '07fd62fd6e210920062104200041106a2100200e41016a210e200e4110490d000b200a2008fd7dfd8e01210a200b2009' +
  'fd7dfd8e01210b200d41016a210d200d4102490d000b200afd7f210f2002200ffd1b00200ffd1b016a200ffd1b02200f' +
  'fd1b036a6a360200200bfd7f210f2002200ffd1b00200ffd1b016a200ffd1b02200ffd1b036a6a360204200241086a21' +
  '02200c41016a210c0c000b0b2004fd1d01a70b'

/** Blocks per WebAssembly call: 1 MiB of data, so the module's memory stays at 1 MiB + 16 KiB. */
const WASM_PIECE_BLOCKS = 2048
const WASM_PIECE_BYTES = WASM_PIECE_BLOCKS * BLOCK_BYTES
/** A scan is using the module's memory across its awaits (see BitmapReader.doScan). */
let wasmHeapHeld = false

interface WasmGlobal {
  Module: new (bytes: Uint8Array) => object
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> }
}
interface WasmBlocks {
  heap: Uint8Array
  out: Int32Array
  blocks: (src: number, nblocks: number, out: number, carry: number) => number
}

let wasmBlocks: WasmBlocks | null | undefined

function loadWasmBlocks(): WasmBlocks | null {
  if (wasmBlocks !== undefined) return wasmBlocks
  wasmBlocks = null
  try {
    const WA = (globalThis as { WebAssembly?: WasmGlobal }).WebAssembly
    if (!WA) return null
    const bytes = new Uint8Array(WASM_BLOCKS_HEX.length / 2)
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(WASM_BLOCKS_HEX.slice(2 * i, 2 * i + 2), 16)
    const ex = new WA.Instance(new WA.Module(bytes), {}).exports as { mem: { buffer: ArrayBuffer; grow(pages: number): number }; blocks: WasmBlocks['blocks'] }
    const need = WASM_PIECE_BLOCKS * BLOCK_BYTES + WASM_PIECE_BLOCKS * 8
    const have = ex.mem.buffer.byteLength
    if (need > have) ex.mem.grow(Math.ceil((need - have) / 65536))
    const heap = new Uint8Array(ex.mem.buffer)
    const out = new Int32Array(ex.mem.buffer, WASM_PIECE_BLOCKS * BLOCK_BYTES, WASM_PIECE_BLOCKS * 2)
    // Self-test on a block whose answer is known (0b0110 repeated: 2 bits and 1 run per nibble).
    heap.fill(0x66, 0, BLOCK_BYTES)
    if (ex.blocks(0, 1, WASM_PIECE_BLOCKS * BLOCK_BYTES, 0) !== 0 || out[0] !== 2048 || out[1] !== 1024) return null
    wasmBlocks = { heap, out, blocks: ex.blocks }
  } catch {
    wasmBlocks = null
  }
  return wasmBlocks
}

/** WebAssembly kernel: copies 1 MiB pieces into the module's memory (synchronously, so concurrent scans cannot interleave). */
function countBlocksWasm(w: WasmBlocks, data: Uint8Array, nblocks: number, out: Int32Array, carry: number): number {
  for (let b = 0; b < nblocks; b += WASM_PIECE_BLOCKS) {
    const n = Math.min(WASM_PIECE_BLOCKS, nblocks - b)
    w.heap.set(data.subarray(b * BLOCK_BYTES, (b + n) * BLOCK_BYTES), 0)
    carry = w.blocks(0, n, WASM_PIECE_BLOCKS * BLOCK_BYTES, carry)
    out.set(w.out.subarray(0, 2 * n), 2 * b)
  }
  return carry
}

/** The fastest kernel this platform runs. */
export function blockKernel(): BlockKernel {
  const w = loadWasmBlocks()
  return w ? (data, nblocks, out, carry) => countBlocksWasm(w, data, nblocks, out, carry) : countBlocksJs
}

type ClusterData = Uint8Array | typeof ENTRY_ZEROES | typeof ENTRY_ONES

/** Byte-budgeted LRU of data clusters (Map keeps insertion order). */
class ClusterCache {
  private readonly map = new Map<number, Uint8Array>()
  private bytes = 0
  constructor(private readonly budget: number) {}
  get(k: number): Uint8Array | undefined {
    const v = this.map.get(k)
    if (v) { this.map.delete(k); this.map.set(k, v) }
    return v
  }
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

export interface ReaderOptions {
  /** byte budget of the cluster cache (default 16 MiB) */
  cacheBytes?: number
}

export class BitmapReader {
  readonly nbits: number
  readonly granularity: number
  readonly diskLength: number
  readonly clusterSize: number
  readonly bitsPerCluster: number
  /** clusters needed to hold nbits */
  readonly clusters: number
  readonly nblocks: number
  private readonly table: Float64Array
  private readonly cache: ClusterCache
  /** single 512-byte blocks read for rank/bit (see block()) */
  private readonly blockCache = new ClusterCache(4 * 1024 * 1024)
  /** how often each recently used cluster was asked for a block */
  private readonly blockAsks = new Map<number, number>()
  /** the block blockSync answered last (consecutive heatmap boundaries often share one) */
  private memoBlock = -1
  private memoData: ClusterData = ENTRY_ZEROES
  /** onesBefore[b] = set bits before block b; length nblocks+1 (after scan) */
  private onesBefore: Float64Array | undefined
  /** runsBefore[b] = run starts at bit positions before block b */
  private runsBefore: Float64Array | undefined
  private scanning: Promise<void> | undefined
  /** whether bit nbits-1 is set (after scan) */
  private lastBitSet = false

  constructor(readonly device: BlockDevice, readonly bitmap: Bitmap, diskLength: number, clusterSize: number, opts: ReaderOptions = {}) {
    this.nbits = bitmap.nbits
    this.granularity = bitmap.granularity
    this.diskLength = diskLength
    this.clusterSize = clusterSize
    this.bitsPerCluster = clusterSize * 8
    this.clusters = Math.ceil(this.nbits / this.bitsPerCluster)
    this.nblocks = Math.ceil(this.nbits / BLOCK_BITS)
    this.table = bitmap.table
    this.cache = new ClusterCache(opts.cacheBytes ?? 16 * 1024 * 1024)
  }

  get scanned(): boolean {
    return this.onesBefore !== undefined
  }

  /** Bytes of bitmap data that a full scan reads from the file (data clusters only). */
  get dataBytesToRead(): number {
    let n = 0
    for (let i = 0; i < this.clusters; i++) if (this.entry(i) > ENTRY_ONES) n += this.clusterSize
    return n
  }

  /** Table entry for cluster i: entries past a short (stale) table read as zeroes. */
  entry(i: number): number {
    return i < this.table.length ? this.table[i]! : ENTRY_ZEROES
  }

  /** Bits of cluster i inside nbits. */
  private bitsInCluster(i: number): number {
    return Math.min(this.bitsPerCluster, this.nbits - i * this.bitsPerCluster)
  }

  /** Read `len` bytes at `off`, zero-padded where the file ends early. */
  private async readPadded(off: number, len: number): Promise<Uint8Array> {
    const avail = Math.max(0, Math.min(len, this.device.size - off))
    if (avail === len) return this.device.read(off, len)
    const out = new Uint8Array(len)
    if (avail > 0) out.set(await this.device.read(off, avail))
    return out
  }

  /** Zero the bits of cluster i at or past nbits (spec §4.5: tail bits do not count). */
  private maskTail(i: number, data: Uint8Array): Uint8Array {
    return maskFrom(data, this.bitsInCluster(i))
  }

  /** Cluster i's data with tail bits masked, or the all-zeroes / all-ones marker. */
  async cluster(i: number): Promise<ClusterData> {
    const e = this.entry(i)
    if (e === ENTRY_ZEROES || e === ENTRY_ONES) return e
    const hit = this.cache.get(i)
    if (hit) return hit
    const data = this.maskTail(i, await this.readPadded(e, this.clusterSize))
    this.cache.set(i, data)
    return data
  }

  /**
   * Cluster i (a data cluster) with tail bits masked: from the cache when it is there, else read
   * into `scratch` (valid until the next call with the same scratch) when the device can read in
   * place, else read and cached as by `cluster`.
   */
  private async streamCluster(ci: number, scratch: { buf?: Uint8Array }): Promise<Uint8Array> {
    const hit = this.cache.get(ci)
    if (hit) return hit as Uint8Array
    if (!this.device.readInto) return (await this.cluster(ci)) as Uint8Array
    return this.maskTail(ci, (await this.rawCluster(ci, scratch)) as Uint8Array)
  }

  /**
   * Raw stored bytes of cluster i (tail bits as stored), for the digest. With `scratch` and a
   * device that reads in place, the bytes land in the scratch buffer (valid until the next call
   * with it), so a full pass over the data allocates nothing per cluster.
   */
  async rawCluster(i: number, scratch?: { buf?: Uint8Array }): Promise<ClusterData> {
    const e = this.entry(i)
    if (e === ENTRY_ZEROES || e === ENTRY_ONES) return e
    if (scratch && this.device.readInto) {
      const buf = scratch.buf ??= new Uint8Array(this.clusterSize)
      await this.readPaddedInto(e, buf)
      return buf
    }
    return this.readPadded(e, this.clusterSize)
  }

  /** Build the block index: one pass over every data cluster. Idempotent. */
  scan(opts: ScanOptions = {}): Promise<void> {
    if (this.onesBefore) return Promise.resolve()
    if (!this.scanning) {
      this.scanning = this.doScan(opts).finally(() => { this.scanning = undefined })
    }
    return this.scanning
  }

  /**
   * Read `target.length` bytes at `off` into `target` (device.readInto), zero-padded where the
   * file ends early. Only called when the device has readInto.
   */
  private async readPaddedInto(off: number, target: Uint8Array): Promise<void> {
    const len = target.length
    const avail = Math.max(0, Math.min(len, this.device.size - off))
    if (avail < len) target.fill(0, avail)
    if (avail > 0) await this.device.readInto!(off, avail === len ? target : target.subarray(0, avail))
  }

  /*
   * The scan reads each run of back-to-back data clusters in pieces and counts every piece
   * before reading the next. Three ways to get a piece, fastest first:
   *  - the device has readInto and the WebAssembly kernel is free: read 1 MiB pieces straight
   *    into the kernel's memory and count them there (no allocation, no copy);
   *  - the device has readInto, the WebAssembly kernel is not available or held: read 1 MiB
   *    pieces into one buffer reused for the whole scan, count with the JS kernel;
   *  - no readInto (Blob, wrappers): one read of up to 8 MiB per run of clusters (a fresh
   *    buffer; fewer, larger reads matter when each read costs a slice().arrayBuffer()),
   *    counted by the WebAssembly kernel (copied into its memory 1 MiB at a time) when it is
   *    free, else by the JS kernel.
   * The kernel's memory is one per module: a scan that uses it holds it from start to end,
   * across its awaits (another scan's copy must not land between a read and its count), and a
   * scan that finds it held counts with the JS kernel instead.
   */
  private async doScan(opts: ScanOptions): Promise<void> {
    const ones = new Float64Array(this.nblocks + 1)
    const runs = new Float64Array(this.nblocks + 1)
    const total = this.dataBytesToRead
    let done = 0
    let onesAcc = 0
    let runsAcc = 0
    let carry = 0 // last bit of the previous block
    // The last granule may be shorter than g (disk length not a multiple of the granularity).
    let lastBitSet = false
    const blocksPerCluster = this.clusterSize / BLOCK_BYTES
    const wasm = wasmHeapHeld ? null : loadWasmBlocks()
    const direct = typeof this.device.readInto === 'function'
    // Piece buffer: the kernel's memory, or one reused buffer, or none (fresh reads).
    const pieceBuf = direct ? (wasm ? wasm.heap.subarray(0, WASM_PIECE_BYTES) : new Uint8Array(WASM_PIECE_BYTES)) : undefined
    const inHeap = direct && wasm !== null
    const kernel: BlockKernel = wasm ? (data, nblocks, out, c) => countBlocksWasm(wasm, data, nblocks, out, c) : countBlocksJs
    let counts = new Int32Array(0)
    if (wasm) wasmHeapHeld = true
    try {
      let i = 0
      while (i < this.clusters) {
        throwIfAborted(opts.signal)
        const e = this.entry(i)
        const firstBlock = i * blocksPerCluster
        const lastBlock = Math.min(this.nblocks, firstBlock + blocksPerCluster)
        if (e === ENTRY_ZEROES) {
          for (let b = firstBlock; b < lastBlock; b++) { ones[b + 1] = onesAcc; runs[b + 1] = runsAcc }
          carry = 0
          i++
          continue
        }
        if (e === ENTRY_ONES) {
          if (i === this.clusters - 1) lastBitSet = true
          for (let b = firstBlock; b < lastBlock; b++) {
            const bits = Math.min(BLOCK_BITS, this.nbits - b * BLOCK_BITS)
            if (!carry) runsAcc++
            onesAcc += bits
            carry = 1
            ones[b + 1] = onesAcc
            runs[b + 1] = runsAcc
          }
          i++
          continue
        }
        // Coalesce clusters stored back to back into one run, read in pieces.
        let n = 1
        while (i + n < this.clusters && n * this.clusterSize < SCAN_CHUNK && this.entry(i + n) === e + n * this.clusterSize) n++
        const runBytes = n * this.clusterSize
        const pieceBytes = pieceBuf ? pieceBuf.length : runBytes
        for (let off = 0; off < runBytes; off += pieceBytes) {
          const len = Math.min(pieceBytes, runBytes - off)
          let data: Uint8Array
          if (pieceBuf) {
            data = pieceBuf.subarray(0, len)
            await this.readPaddedInto(e + off, data)
          } else {
            data = await this.readPadded(e + off, len)
          }
          // Bits of this piece inside nbits: only the bitmap's last cluster can have tail bits.
          const firstBit = i * this.bitsPerCluster + off * 8
          const valid = this.nbits - firstBit
          if (valid > 0 && valid <= len * 8) {
            const j = valid - 1 // the bitmap's last bit is in this piece
            lastBitSet = ((data[j >>> 3]! >>> (j & 7)) & 1) === 1
          }
          if (valid < len * 8) data = pieceBuf ? maskInPlace(data, valid) : maskFrom(data, valid)
          const nb = len / BLOCK_BYTES
          let out: Int32Array
          if (inHeap) {
            carry = wasm!.blocks(0, nb, WASM_PIECE_BYTES, carry)
            out = wasm!.out
          } else {
            if (counts.length < 2 * nb) counts = new Int32Array(2 * nb)
            carry = kernel(data, nb, counts, carry)
            out = counts
          }
          const fb = firstBlock + off / BLOCK_BYTES
          const lb = Math.min(this.nblocks, fb + nb)
          for (let b = fb, k = 0; b < lb; b++, k += 2) {
            onesAcc += out[k]!
            runsAcc += out[k + 1]!
            ones[b + 1] = onesAcc
            runs[b + 1] = runsAcc
          }
        }
        done += runBytes
        opts.onProgress?.(done, total)
        i += n
      }
    } finally {
      if (wasm) wasmHeapHeld = false
    }
    this.lastBitSet = lastBitSet
    this.onesBefore = ones
    this.runsBefore = runs
  }

  private index(): { ones: Float64Array; runs: Float64Array } {
    if (!this.onesBefore || !this.runsBefore) throw new Error('BitmapReader: scan() must complete first')
    return { ones: this.onesBefore, runs: this.runsBefore }
  }

  /** Number of set bits (after scan). */
  get setBits(): number {
    return this.index().ones[this.nblocks]!
  }

  /** Number of maximal runs of set bits = number of dirty extents (after scan). */
  get runCount(): number {
    return this.index().runs[this.nblocks]!
  }

  /** Dirty bytes over the whole disk (after scan). */
  get dirtyBytes(): number {
    const n = this.setBits
    if (n === 0) return 0
    const g = this.granularity
    const lastLen = this.diskLength - (this.nbits - 1) * g
    return n * g - (this.lastBitSet ? g - lastLen : 0)
  }

  /** Set bits before bit k, 0 <= k <= nbits (after scan). */
  async rank(k: number): Promise<number> {
    const { ones } = this.index()
    const b = Math.floor(k / BLOCK_BITS)
    const r = k - b * BLOCK_BITS
    if (r === 0 || b >= this.nblocks) return ones[Math.min(b, this.nblocks)]!
    const d = await this.block(b)
    let extra: number
    if (d === ENTRY_ZEROES) extra = 0
    else if (d === ENTRY_ONES) extra = r
    else extra = countBits(d, 0, r)
    return ones[b]! + extra
  }

  /** Is bit k set? */
  async bit(k: number): Promise<boolean> {
    if (k < 0 || k >= this.nbits) return false
    const b = Math.floor(k / BLOCK_BITS)
    const d = await this.block(b)
    if (d === ENTRY_ZEROES) return false
    if (d === ENTRY_ONES) return true
    const j = k - b * BLOCK_BITS
    return ((d[j >>> 3]! >>> (j & 7)) & 1) === 1
  }

  /**
   * The 512 bytes of index block b, tail bits masked. Random lookups (rank and bit at unaligned
   * heatmap cell boundaries) read one block, not its whole cluster: at a wide zoom on a 2^32-bit
   * bitmap every boundary falls in a different 64 KiB cluster. A cluster asked for more than a
   * few times is read whole instead (deep zooms, where boundaries crowd into few clusters).
   */
  private async block(b: number): Promise<ClusterData> {
    const known = this.blockSync(b)
    if (known !== undefined) return known
    const perCluster = this.clusterSize / BLOCK_BYTES
    const ci = Math.floor(b / perCluster)
    const e = this.entry(ci)
    const within = (b - ci * perCluster) * BLOCK_BYTES
    // Not cached (blockSync looked): read the block alone, or its whole cluster when asked often.
    const asks = (this.blockAsks.get(ci) ?? 0) + 1
    if (this.blockAsks.size >= 4096) this.blockAsks.clear()
    this.blockAsks.set(ci, asks)
    if (perCluster > 1 && asks <= BLOCK_READS_BEFORE_CLUSTER) {
      const d = maskFrom(await this.readPadded(e + within, BLOCK_BYTES), this.nbits - b * BLOCK_BITS)
      this.blockCache.set(b, d)
      return d
    }
    const c = (await this.cluster(ci)) as Uint8Array
    return c.subarray(within, within + BLOCK_BYTES)
  }

  /** Block b's data when it is known without reading (entry kind, last block, caches), else undefined. */
  private blockSync(b: number): ClusterData | undefined {
    if (b === this.memoBlock) return this.memoData
    const perCluster = this.clusterSize / BLOCK_BYTES
    const ci = Math.floor(b / perCluster)
    const e = this.entry(ci)
    let d: ClusterData | undefined
    if (e === ENTRY_ZEROES || e === ENTRY_ONES) d = e
    else {
      const c = this.cache.get(ci)
      if (c) {
        const within = (b - ci * perCluster) * BLOCK_BYTES
        d = c.subarray(within, within + BLOCK_BYTES)
      } else d = this.blockCache.get(b)
    }
    if (d !== undefined) { this.memoBlock = b; this.memoData = d }
    return d
  }

  /**
   * Dirty bytes in [0, x) of the disk. With `syncOnly` returns undefined instead of reading
   * when the answer needs bitmap data that is not in memory (x inside a block whose bytes are
   * neither cached nor implied by an all-zeroes / all-ones entry); callers batch those.
   */
  dirtyBefore(x: number, syncOnly: true): number | undefined
  dirtyBefore(x: number, syncOnly?: false): Promise<number>
  dirtyBefore(x: number, syncOnly = false): number | undefined | Promise<number> {
    const { ones } = this.index()
    const g = this.granularity
    const xc = Math.max(0, Math.min(x, this.diskLength))
    const k = Math.floor(xc / g)
    const rem = xc - k * g
    if (k % BLOCK_BITS === 0 && rem === 0) return ones[Math.min(k / BLOCK_BITS, this.nblocks)]! * g
    if (k >= this.nbits) return syncOnly ? ones[this.nblocks]! * g : Promise.resolve(ones[this.nblocks]! * g)
    const b = Math.floor(k / BLOCK_BITS)
    const d = this.blockSync(b)
    if (d !== undefined) {
      const v = this.dirtyInBlock(d, k, rem)
      return syncOnly ? v : Promise.resolve(v)
    }
    if (syncOnly) return undefined
    return this.block(b).then((bd) => this.dirtyInBlock(bd, k, rem))
  }

  /** dirtyBefore for x = k*g + rem (k < nbits) from the data of k's block. */
  private dirtyInBlock(d: ClusterData, k: number, rem: number): number {
    const b = Math.floor(k / BLOCK_BITS)
    const r = k - b * BLOCK_BITS
    let extra: number
    let set: boolean
    if (d === ENTRY_ZEROES) { extra = 0; set = false }
    else if (d === ENTRY_ONES) { extra = r; set = true }
    else { extra = countBits(d, 0, r); set = ((d[r >>> 3]! >>> (r & 7)) & 1) === 1 }
    return (this.onesBefore![b]! + extra) * this.granularity + (rem > 0 && set ? rem : 0)
  }

  /** Block holding the k-th run start (0-based), by binary search on the index. */
  blockOfRun(k: number): number {
    const { runs } = this.index()
    let lo = 0, hi = this.nblocks // runs[lo] <= k < runs[hi] ... find largest b with runs[b] <= k
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (runs[mid]! <= k) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  runsBeforeBlock(b: number): number {
    return this.index().runs[b]!
  }

  /**
   * Runs of set bits [start, end) in bit numbers, in order, beginning with the run that
   * contains or follows bit `from`. With `skipPartial`, a run that started before `from` is skipped.
   */
  async *runs(from: number, skipPartial = false, signal?: AbortSignalLike): AsyncGenerator<[number, number]> {
    if (from >= this.nbits) return
    let inRun = false
    let skipping = false
    let runStart = 0
    if (from > 0 && (await this.bit(from - 1)) && (await this.bit(from))) {
      // `from` is inside a run that began earlier: report it from its real start, or skip it.
      inRun = true
      if (skipPartial) skipping = true
      else runStart = await this.runStartBefore(from)
    }
    let ci = Math.floor(from / this.bitsPerCluster)
    let startBit = from - ci * this.bitsPerCluster
    for (; ci < this.clusters; ci++, startBit = 0) {
      if ((ci & 255) === 0) throwIfAborted(signal)
      const base = ci * this.bitsPerCluster
      const d = await this.cluster(ci)
      if (d === ENTRY_ZEROES) {
        if (inRun && !skipping) yield [runStart, base + startBit]
        inRun = skipping = false
        continue
      }
      if (d === ENTRY_ONES) {
        if (!inRun) { inRun = true; runStart = base + startBit }
        continue
      }
      const words = wordsOf(d)
      const nw = Math.ceil(this.bitsInCluster(ci) / 32)
      for (let w = startBit >>> 5, p = startBit & 31; w < nw; w++, p = 0) {
        const x = words[w]!
        while (p < 32) {
          const m = -1 << p
          if (inRun) {
            const y = ~x & m
            if (y === 0) break
            const z = ctz32(y)
            if (!skipping) yield [runStart, base + w * 32 + z]
            inRun = skipping = false
            p = z
          } else {
            const y = x & m
            if (y === 0) break
            const s = ctz32(y)
            inRun = true
            runStart = base + w * 32 + s
            p = s
          }
        }
      }
    }
    if (inRun && !skipping) yield [runStart, this.nbits]
  }

  /**
   * The runs of `runs(from, skipPartial)`, in batches: each yielded Float64Array holds
   * [start0, end0, start1, end1, ...] bit numbers (a fresh array per batch, at most `batchRuns`
   * runs, never empty). The runs are found synchronously, a word at a time (`findRuns`), with
   * one await per cluster that is not an all-zeroes / all-ones entry and one per batch, instead
   * of a generator step and an array per run: the path of `qbm map` over a million extents.
   */
  async *runBatches(from = 0, skipPartial = false, signal?: AbortSignalLike, batchRuns = 16384): AsyncGenerator<Float64Array> {
    if (from >= this.nbits) return
    from = Math.max(0, from)
    const cap = 2 * Math.max(1, Math.floor(batchRuns))
    // Room for one whole word past `cap` (at most 16 runs) and the run an entry closes.
    const out = new Float64Array(cap + 40)
    // This walk's own cluster buffer: a full pass reads every data cluster once, so it streams
    // them through one buffer instead of filling the cache with fresh ones (RSS stays flat).
    const scratch: { buf?: Uint8Array } = {}
    const st: RunState = { inRun: false, runStart: 0, n: 0 }
    let dropFirst = false
    if (from > 0 && (await this.bit(from - 1)) && (await this.bit(from))) {
      st.inRun = true
      if (skipPartial) dropFirst = true
      else st.runStart = await this.runStartBefore(from)
    }
    const take = (): Float64Array => {
      let b = out.subarray(0, st.n)
      if (dropFirst && st.n >= 2) { b = b.subarray(2); dropFirst = false }
      const batch = b.slice()
      st.n = 0
      return batch
    }
    let ci = Math.floor(from / this.bitsPerCluster)
    let startBit = from - ci * this.bitsPerCluster
    for (; ci < this.clusters; ci++, startBit = 0) {
      if ((ci & 255) === 0) throwIfAborted(signal)
      const base = ci * this.bitsPerCluster
      const e = this.entry(ci)
      if (e === ENTRY_ZEROES) {
        if (st.inRun) { out[st.n++] = st.runStart; out[st.n++] = base + startBit; st.inRun = false }
      } else if (e === ENTRY_ONES) {
        if (!st.inRun) { st.inRun = true; st.runStart = base + startBit }
      } else {
        const words = wordsOf(await this.streamCluster(ci, scratch))
        const nw = Math.ceil(this.bitsInCluster(ci) / 32)
        let w = startBit >>> 5
        let lowBits = startBit & 31
        while (w < nw) {
          w = findRuns(words, w, lowBits, nw, base, st, out, cap)
          lowBits = 0
          if (st.n >= cap) {
            const batch = take()
            if (batch.length > 0) yield batch
          }
        }
      }
      if (st.n >= cap) {
        const batch = take()
        if (batch.length > 0) yield batch
      }
    }
    if (st.inRun) { out[st.n++] = st.runStart; out[st.n++] = this.nbits; st.inRun = false }
    if (st.n > 0) {
      const batch = take()
      if (batch.length > 0) yield batch
    }
  }

  /** Start of the run containing bit k (k set), walking back word by word. */
  private async runStartBefore(k: number): Promise<number> {
    let pos = k
    while (pos > 0) {
      const ci = Math.floor((pos - 1) / this.bitsPerCluster)
      const base = ci * this.bitsPerCluster
      const d = await this.cluster(ci)
      if (d === ENTRY_ZEROES) return pos
      if (d === ENTRY_ONES) { pos = base; continue }
      let j = pos - 1 - base
      while (j >= 0) {
        if (((d[j >>> 3]! >>> (j & 7)) & 1) === 0) return base + j + 1
        j--
      }
      pos = base
    }
    return 0
  }
}

/** Run finder state carried across words, clusters and batches. */
export interface RunState {
  /** the last bit seen was set (a run is open) */
  inRun: boolean
  /** start of the open run, in bits */
  runStart: number
  /** entries used in the output batch */
  n: number
}

/**
 * Find runs in `words[w0 .. nw)` (bits below `lowBits` of the first word are ignored: taken as
 * continuing the state before them), appending closed runs to `out` as [start, end) pairs of
 * bit numbers (`base` = bit number of word 0). Stops after the word in which `st.n` reaches
 * `cap` (so `out` needs 32 entries of room past `cap`) and returns the next word to look at.
 * Per word: the bits where the value changes from the previous bit are
 * x ^ (x << 1 | previous bit); each one opens or closes a run.
 */
export function findRuns(words: Uint32Array, w0: number, lowBits: number, nw: number, base: number, st: RunState, out: Float64Array, cap: number): number {
  let inRun = st.inRun
  let runStart = st.runStart
  let n = st.n
  let carry = inRun ? 1 : 0
  let w = w0
  for (; w < nw; w++) {
    let x = words[w]! | 0
    if (w === w0 && lowBits > 0) {
      const low = (1 << lowBits) - 1
      x = inRun ? x | low : x & ~low
    }
    let t = x ^ ((x << 1) | carry)
    carry = x >>> 31
    if (t === 0) continue
    const at = base + w * 32
    do {
      const z = 31 - Math.clz32(t & -t)
      t &= t - 1
      if (inRun) { out[n++] = runStart; out[n++] = at + z; inRun = false } else { inRun = true; runStart = at + z }
    } while (t !== 0)
    if (n >= cap) { w++; break }
  }
  st.inRun = inRun
  st.runStart = runStart
  st.n = n
  return w
}

/** View a cluster as 32-bit little-endian words (copies when unaligned). */
function wordsOf(d: Uint8Array): Uint32Array {
  if (d.byteOffset % 4 === 0 && d.length % 4 === 0) return new Uint32Array(d.buffer, d.byteOffset, d.length >>> 2)
  const c = new Uint8Array(Math.ceil(d.length / 4) * 4)
  c.set(d)
  return new Uint32Array(c.buffer)
}

/** Set bits in [from, from+len) bits of `d`. */
function countBits(d: Uint8Array, from: number, len: number): number {
  let n = 0
  let k = from
  const end = from + len
  while (k < end && (k & 31)) { n += (d[k >>> 3]! >>> (k & 7)) & 1; k++ }
  while (k + 32 <= end) {
    const j = k >>> 3
    n += popcount32(d[j]! | (d[j + 1]! << 8) | (d[j + 2]! << 16) | (d[j + 3]! << 24))
    k += 32
  }
  while (k < end) { n += (d[k >>> 3]! >>> (k & 7)) & 1; k++ }
  return n
}

/** Clear every bit of `data` at or past `bits`, in place. */
function maskInPlace(data: Uint8Array, bits: number): Uint8Array {
  if (bits >= data.length * 8) return data
  const fullBytes = Math.max(0, bits) >>> 3
  const rem = Math.max(0, bits) & 7
  if (rem) data[fullBytes] = data[fullBytes]! & ((1 << rem) - 1)
  data.fill(0, fullBytes + (rem ? 1 : 0))
  return data
}

/** `data` with every bit at or past `bits` cleared (a copy when anything changes; spec §4.5 tail bits). */
function maskFrom(data: Uint8Array, bits: number): Uint8Array {
  if (bits >= data.length * 8) return data
  const out = data.slice()
  const fullBytes = Math.max(0, bits) >>> 3
  const rem = Math.max(0, bits) & 7
  if (rem) out[fullBytes] = out[fullBytes]! & ((1 << rem) - 1)
  out.fill(0, fullBytes + (rem ? 1 : 0))
  return out
}
