/**
 * The check's table kernels (tables.ts): the WebAssembly module and its JavaScript twin give the
 * same answers, and both give the answers of a plain model written from tables.wat's contract
 * (64-bit entries as bigints, one entry at a time): the zero search over random buffers; l2
 * over random tables of every kind of entry (runs of contiguous clusters broken at random
 * places, zero, compressed, reserved, unaligned, past the end of the file, extended, COPIED
 * right and wrong) at every refcount width, with and without a data file, the COPIED pass and
 * known refcounts; compare over random counts and stored refcounts at every width. And Node
 * runs the WebAssembly module.
 */
import { describe, expect, it } from 'vitest'
import { MAX_MEMORY, TableScanner, type TablesLayout } from './tables.js'
import { L2Flag } from './tables-js.js'

/** A small deterministic generator (xorshift32). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13; s >>>= 0
    s ^= s >>> 17
    s ^= s << 5; s >>>= 0
    return s
  }
}

// ---- the zero search ----

/** Every answer of next() over [from, end), by a plain loop over the bytes. */
function plainNext(bytes: Uint8Array, from: number, end: number): number[] {
  const out: number[] = []
  for (let p = from; p < end; p += 8) if (bytes.subarray(p, p + 8).some((x) => x !== 0)) out.push(p)
  return out
}

function walk(s: TableScanner, from: number, end: number): number[] {
  const out: number[] = []
  for (let p = s.next(from, end); p < end; p = s.next(p + 8, end)) out.push(p)
  return out
}

describe('TableScanner', () => {
  it('runs the WebAssembly module in Node, with kernels when given a layout', () => {
    const s = new TableScanner()
    expect(s.fallbackReason).toBeUndefined()
    expect(s.kind).toBe('wasm')
    expect(s.kernels).toBeUndefined()
    const layout: TablesLayout = { clusterBits: 16, fileSize: 1 << 20, refcountOrder: 4, limit: 254, clusters: 17, storedBytes: 65536, bufferBytes: 65536 }
    const k = new TableScanner('wasm', layout)
    expect(k.kernels).toBeDefined()
    expect(k.kernelsReason).toBeUndefined()
    // the regions start zeroed (the module's self-test wrote into its memory)
    expect(k.counts!.every((x) => x === 0) && k.stored!.every((x) => x === 0)).toBe(true)
    expect(new TableScanner('js', layout).kind).toBe('js')
    expect(new TableScanner('entrywise', layout).kernels).toBeUndefined()
    expect(() => k.buffer(65537), 'the buffer is fixed with a layout').toThrow(RangeError)
  })

  it('lays out no memory past MAX_MEMORY: the walk then does every entry itself', () => {
    const clusters = Math.ceil(MAX_MEMORY / 3) // one count and a 16-bit refcount each, and the buffer
    const big: TablesLayout = { clusterBits: 16, fileSize: (clusters - 1) * 65536, refcountOrder: 4, limit: 254, clusters, storedBytes: Math.ceil(clusters / 32768) * 65536, bufferBytes: 1 << 20 }
    for (const kind of ['wasm', 'js'] as const) {
      const s = new TableScanner(kind, big)
      expect(s.kernels, kind).toBeUndefined()
      expect(s.counts, kind).toBeUndefined()
      expect(s.kernelsReason, kind).toMatch(/too many clusters/)
      // the buffer still grows as the walk asks
      expect(s.buffer(3 << 20).length, kind).toBe(3 << 20)
    }
  })

  it('wasm and js find the same words as a plain loop (random buffers, ranges and densities)', () => {
    const next = rng(12)
    const scanners = [new TableScanner('wasm'), new TableScanner('js')]
    for (let round = 0; round < 300; round++) {
      const length = 8 * (1 + (next() % 40000)) // up to ~320 KiB: the buffer grows past its first page
      const density = [0, 1e-4, 1e-2, 0.5][round % 4]!
      const words: Array<[number, number]> = []
      for (let p = 0; p < length; p += 8) {
        if (next() / 2 ** 32 < density) words.push([p + (next() % 8), 1 + (next() % 255)])
      }
      // one word on each side of a 64-byte step now and then
      if (round % 3 === 0 && length > 128) words.push([56, 7], [64, 9], [length - 8, 3])
      const from = 8 * (next() % (length / 8))
      const end = from + 8 * (next() % ((length - from) / 8 + 1))
      let expected: number[] | undefined
      for (const s of scanners) {
        const buf = s.buffer(length)
        buf.fill(0)
        for (const [at, v] of words) buf[at] = v
        expected ??= plainNext(buf, from, end)
        expect(walk(s, from, end), `${s.kind}, round ${round}, [${from}, ${end}) of ${length}`).toEqual(expected)
      }
    }
  })

  it('finds a word with only its top bit set (an entry with just the COPIED flag)', () => {
    for (const kind of ['wasm', 'js'] as const) {
      const s = new TableScanner(kind)
      const buf = s.buffer(65536)
      buf.fill(0)
      buf[40960] = 0x80
      expect(s.next(0, 65536), kind).toBe(40960)
      expect(s.next(40968, 65536), kind).toBe(65536)
      // the view reads the entry big-endian
      expect(s.view.getUint32(40960), kind).toBe(0x80000000)
    }
  })
})

// ---- the model ----

const COPIED = 1n << 63n
const COMPRESSED = 1n << 62n
const RESERVED = 0x3f000000000001fen
const OFFSET = 0x00fffffffffffe00n

/** Cluster c's entry of a stored region of 2^order-bit big-endian refcounts. */
function storedRefcount(stored: Uint8Array, order: number, c: number): bigint {
  const bits = 2 ** order
  if (bits < 8) {
    const perByte = 8 / bits
    return BigInt((stored[Math.floor(c / perByte)]! >>> ((c % perByte) * bits)) & ((1 << bits) - 1))
  }
  let v = 0n
  for (let k = 0; k < bits / 8; k++) v = (v << 8n) | BigInt(stored[c * (bits / 8) + k]!)
  return v
}

interface Model {
  counts: Uint8Array
  stored: Uint8Array
  nextContig: number
  allocated: number
  fragmented: number
  highest: number
}

/** tables.wat's l2 contract, entry by entry, over `table` (positions relative to it). */
function modelL2(m: Model, L: TablesLayout, table: Uint8Array, start: number, end: number, flags: number, times: number): number {
  const v = new DataView(table.buffer, table.byteOffset, table.byteLength)
  const ext = (flags & L2Flag.extended) !== 0
  const dataFile = (flags & L2Flag.dataFile) !== 0
  const copied = (flags & L2Flag.copied) !== 0
  const unknown = (flags & L2Flag.unknownRefcounts) !== 0
  const esize = ext ? 16 : 8
  const cs = 2n ** BigInt(L.clusterBits)
  for (let e = start; e < end; e += esize) {
    const x = v.getBigUint64(e)
    const bm = ext ? v.getBigUint64(e + 8) : 0n
    if (x === 0n && bm === 0n) continue
    if ((x & (COMPRESSED | RESERVED)) !== 0n) return e
    const off = x & OFFSET
    if (!ext && (x & 1n) !== 0n) {
      if (off === 0n) continue
    } else if (off === 0n && !(dataFile && (x & COPIED) !== 0n)) {
      if ((bm & 0xffffffffn) !== 0n) return e
      continue
    }
    if (((bm >> 32n) & bm & 0xffffffffn) !== 0n || (off & (cs - 1n)) !== 0n) return e
    if (dataFile) {
      if (copied && (x & COPIED) === 0n) return e
    } else {
      if (off >= BigInt(L.fileSize)) return e
      const c = Number(off / cs)
      if (copied && (unknown || (storedRefcount(m.stored, L.refcountOrder, c) === 1n) !== ((x & COPIED) !== 0n))) return e
      const n = m.counts[c]! + times
      if (n > L.limit) return e
      m.counts[c] = n
    }
    m.allocated++
    if (m.nextContig !== 0 && Number(off) !== m.nextContig) m.fragmented++
    m.nextContig = Number(off + cs)
  }
  return end
}

/** tables.wat's compare contract. */
function modelCompare(m: Model, L: TablesLayout, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const n = m.counts[i]!
    if (n === 255 || storedRefcount(m.stored, L.refcountOrder, i) !== BigInt(n)) return i
    if (n !== 0) m.highest = i
  }
  return to
}

// ---- random tables ----

/** An image's shape for one round. */
function randomLayout(r: () => number, order?: number): TablesLayout {
  const clusterBits = 9 + (r() % 13) // 512 B .. 2 MiB
  const refcountOrder = order ?? r() % 7
  const clusters = 64 + (r() % 4000)
  const cs = 2 ** clusterBits
  const epb = (cs * 8) / 2 ** refcountOrder
  // the file ends somewhere in its last cluster (or exactly at its end)
  const fileSize = (clusters - 2) * cs + (r() % 2 === 0 ? cs : 1 + (r() % cs))
  const max = refcountOrder === 6 ? Number.MAX_SAFE_INTEGER : 2 ** 2 ** refcountOrder - 1
  return {
    clusterBits, refcountOrder, fileSize, clusters,
    limit: Math.min(max, 254),
    storedBytes: Math.ceil(clusters / epb) * cs,
    bufferBytes: Math.max(cs, 65536),
  }
}

/** Write a refcount into a stored region (every width). */
function setStored(stored: Uint8Array, order: number, c: number, value: bigint): void {
  const bits = 2 ** order
  if (bits < 8) {
    const perByte = 8 / bits
    const sh = (c % perByte) * bits
    const m = ((1 << bits) - 1) << sh
    const o = Math.floor(c / perByte)
    stored[o] = (stored[o]! & ~m) | ((Number(value) << sh) & m)
    return
  }
  let x = value
  for (let k = bits / 8 - 1; k >= 0; k--) { stored[c * (bits / 8) + k] = Number(x & 0xffn); x >>= 8n }
}

/** A random L2 table: runs of contiguous clusters with every kind of entry in between. */
function randomTable(r: () => number, L: TablesLayout, ext: boolean, length: number, dense: boolean): Uint8Array {
  const t = new Uint8Array(length)
  const v = new DataView(t.buffer)
  const esize = ext ? 16 : 8
  const cs = 2 ** L.clusterBits
  const fileClusters = Math.ceil(L.fileSize / cs)
  // dense: a run that reaches the end of the file somewhere in the table
  let c = dense ? Math.max(0, fileClusters - 1 - (r() % (length / esize))) : r() % fileClusters
  let prev = BigInt(c) * BigInt(cs) | COPIED
  for (let e = 0; e < length; e += esize) {
    // dense: long runs (a preallocated image), broken now and then
    const kind = dense && r() % 50 !== 0 ? 0 : r() % 100
    let x: bigint
    if (kind < 70) {
      // the run goes on: the entry before with the next cluster (sometimes past the end of the
      // file, or into the reserved bits)
      x = (prev + BigInt(cs)) & 0xffffffffffffffffn
    } else if (kind < 78) {
      c = r() % (fileClusters + 2)
      x = BigInt(c) * BigInt(cs) | (r() % 3 !== 0 ? COPIED : 0n) | (r() % 5 === 0 ? 1n : 0n)
    } else if (kind < 84) {
      x = 0n
    } else if (kind < 87) {
      x = r() % 2 === 0 ? 1n : COPIED // a plain zero cluster; an entry with only COPIED
    } else if (kind < 89) {
      x = COMPRESSED | BigInt(r())
    } else if (kind < 91) {
      x = BigInt(c) * BigInt(cs) | (1n << BigInt(56 + (r() % 6))) | COPIED // reserved high bit
    } else if (kind < 93) {
      x = BigInt(c) * BigInt(cs) + 512n * BigInt(1 + (r() % 3)) // unaligned (when cs > 512)
    } else if (kind < 95) {
      x = BigInt(c) * BigInt(cs) | BigInt(2 << (r() % 7)) // a reserved low bit
    } else if (kind < 97) {
      x = (BigInt(r() % 0x1000) << 40n) | COPIED // far past the end of the file
    } else {
      // a run whose offsets carry into the reserved bits at its end
      x = ((1n << 56n) - BigInt(cs) * BigInt(1 + (r() % 4))) | COPIED
    }
    v.setBigUint64(e, x)
    if (x !== 0n) prev = x
    if (ext) {
      const b = r() % 6
      const zero = b === 1 ? r() : b === 2 ? 0xffffffff : 0
      const alloc = b === 3 ? r() : b === 4 ? 0xffffffff : b === 5 ? (r() & ~zero) >>> 0 : 0
      v.setUint32(e + 8, zero)
      v.setUint32(e + 12, alloc)
    }
  }
  return t
}

describe('l2 and compare: WebAssembly, JavaScript and the model agree', () => {
  it('l2 over random tables, every width, flag and number of references', () => {
    const r = rng(7)
    for (let round = 0; round < 400; round++) {
      // dense rounds: mostly long runs on 16-bit refcounts (the runs' own path in tables.wat)
      const dense = round % 2 === 1
      const L = randomLayout(r, dense && r() % 4 !== 0 ? 4 : undefined)
      const cs = 2 ** L.clusterBits
      const ext = r() % (dense ? 8 : 4) === 0
      const flags = (ext ? L2Flag.extended : 0) | (r() % 5 === 0 ? L2Flag.dataFile : 0) |
        (r() % 3 !== 0 ? L2Flag.copied : 0) | (r() % 6 === 0 ? L2Flag.unknownRefcounts : 0)
      const times = dense ? [1, 1, 2, 3][r() % 4]! : [1, 1, 1, 2, 3, 200, 254, 255][r() % 8]!
      const length = Math.min(cs, 8192)
      const table = randomTable(r, L, ext, length, dense)
      // stored refcounts: mostly 1, some 0, 2 or larger than the counts hold
      const stored = new Uint8Array(L.storedBytes)
      const counts = new Uint8Array(L.clusters)
      for (let c = 0; c < L.clusters; c++) {
        const k = dense && r() % 100 !== 0 ? 0 : r() % 20
        setStored(stored, L.refcountOrder, c, k < 15 ? 1n : k < 17 ? 0n : k < 19 ? 2n : (1n << 40n) + 1n)
        counts[c] = dense ? (r() % 200 === 0 ? 254 : 0) : r() % 10 === 0 ? 250 + (r() % 6) : r() % 3
      }
      const label = `round ${round}: ${cs} B clusters, ${2 ** L.refcountOrder}-bit refcounts, flags ${flags}, ${times} times`
      const model: Model = { counts: counts.slice(), stored, nextContig: 0, allocated: 0, fragmented: 0, highest: 0 }
      const expected: number[] = []
      for (let w = 0; ;) {
        const p = modelL2(model, L, table, w, length, flags, times)
        expected.push(p, model.allocated, model.fragmented, model.nextContig)
        if (p >= length) break
        // the caller does the entry it was left: here, it counts as one data cluster
        model.allocated++
        w = p + (ext ? 16 : 8)
      }
      expect(expected.length, `${label}: some entries are left`).toBeGreaterThan(0)
      for (const kind of ['wasm', 'js'] as const) {
        const s = new TableScanner(kind, L)
        expect(s.kernels, kind).toBeDefined()
        const k = s.kernels!
        s.counts!.set(counts)
        s.stored!.set(stored)
        s.buffer(length).set(table)
        const got: number[] = []
        k.nextContig = 0
        k.allocated = 0
        k.fragmented = 0
        for (let w = 0; ;) {
          const p = s.l2(w, length, flags, times)
          got.push(p, k.allocated, k.fragmented, k.nextContig)
          if (p >= length) break
          k.allocated = k.allocated + 1
          w = p + (ext ? 16 : 8)
        }
        expect(got, `${kind}, ${label}`).toEqual(expected)
        expect(s.counts!, `${kind} counts, ${label}`).toEqual(model.counts)
      }
    }
  })

  it('a run of 8 is all or nothing: a break at each of its entries', () => {
    // 64 contiguous entries; entry j broken one way or another: everything before it counted
    const L: TablesLayout = { clusterBits: 16, fileSize: 200 * 65536, refcountOrder: 4, limit: 254, clusters: 201, storedBytes: 65536, bufferBytes: 65536 }
    for (let j = 0; j < 24; j++) {
      for (const brk of ['copied', 'refcount', 'count', 'eof', 'gap'] as const) {
        const table = new Uint8Array(512)
        const v = new DataView(table.buffer)
        for (let i = 0; i < 64; i++) v.setBigUint64(8 * i, BigInt(10 + i) * 65536n | COPIED)
        const stored = new Uint8Array(L.storedBytes)
        for (let c = 0; c < 200; c++) setStored(stored, 4, c, 1n)
        const counts = new Uint8Array(L.clusters)
        const fileSize = brk === 'eof' ? (10 + j) * 65536 : L.fileSize
        const lay = { ...L, fileSize }
        if (brk === 'copied') v.setBigUint64(8 * j, BigInt(10 + j) * 65536n)
        if (brk === 'refcount') setStored(stored, 4, 10 + j, 2n)
        if (brk === 'count') counts[10 + j] = 254
        if (brk === 'gap') for (let i = j; i < 64; i++) v.setBigUint64(8 * i, BigInt(11 + i) * 65536n | COPIED)
        const model: Model = { counts: counts.slice(), stored, nextContig: 0, allocated: 0, fragmented: 0, highest: 0 }
        const want = modelL2(model, lay, table, 0, 512, L2Flag.copied, 1)
        expect(want, `${brk} at ${j}`).toBe(brk === 'gap' ? 512 : 8 * j)
        for (const kind of ['wasm', 'js'] as const) {
          const s = new TableScanner(kind, lay)
          const k = s.kernels!
          s.counts!.set(counts)
          s.stored!.set(stored)
          s.buffer(512).set(table)
          k.nextContig = 0
          k.allocated = 0
          k.fragmented = 0
          expect(s.l2(0, 512, L2Flag.copied, 1), `${kind}: ${brk} at ${j}`).toBe(want)
          expect([k.allocated, k.fragmented, k.nextContig], `${kind}: ${brk} at ${j}`).toEqual([model.allocated, model.fragmented, model.nextContig])
          expect(s.counts!, `${kind}: ${brk} at ${j}`).toEqual(model.counts)
        }
      }
    }
  })

  it('compare over random counts and refcounts, every width', () => {
    const r = rng(9)
    for (let round = 0; round < 300; round++) {
      const L = randomLayout(r)
      const stored = new Uint8Array(L.storedBytes)
      const counts = new Uint8Array(L.clusters)
      const dense = r() % 2 === 0
      const differ = [0, 1e-3, 0.05][r() % 3]!
      for (let c = 0; c < L.clusters; c++) {
        const n = !dense && r() % 8 !== 0 ? 0 : Math.min(L.limit, r() % 4)
        counts[c] = n
        let s = BigInt(n)
        if (r() / 2 ** 32 < differ) s = [0n, 2n, 255n, 1n << 33n, (1n << 63n) + BigInt(n)][r() % 5]!
        if (r() % 500 === 0) counts[c] = 255
        setStored(stored, L.refcountOrder, c, s & ((1n << BigInt(2 ** L.refcountOrder)) - 1n))
      }
      const from = r() % L.clusters
      const to = from + (r() % (L.clusters - from + 1))
      const label = `round ${round}: ${2 ** L.refcountOrder}-bit refcounts, [${from}, ${to})`
      const model: Model = { counts, stored, nextContig: 0, allocated: 0, fragmented: 0, highest: 7 }
      const expected: number[] = []
      for (let i = from; ; i++) {
        i = modelCompare(model, L, i, to)
        expected.push(i, model.highest)
        if (i >= to) break
      }
      for (const kind of ['wasm', 'js'] as const) {
        const s = new TableScanner(kind, L)
        const k = s.kernels!
        s.counts!.set(counts)
        s.stored!.set(stored)
        k.highest = 7
        const got: number[] = []
        for (let i = from; ; i++) {
          i = k.compare(i, to)
          got.push(i, k.highest)
          if (i >= to) break
        }
        expect(got, `${kind}, ${label}`).toEqual(expected)
      }
    }
  })
})
