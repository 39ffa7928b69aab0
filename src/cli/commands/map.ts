/**
 * `qbm map IMAGE BITMAP [--output=human|json] [--all]`: dirty extents, merged, in guest bytes,
 * as nbdinfo --map=qemu:dirty-bitmap:NAME prints them.
 *
 * A million extents make ~20 MB of output, so the extents come in batches (extentBatches: one
 * await per batch) and the text is written as ASCII bytes into one reused buffer, flushed to
 * fd 1 every 1 MiB: no string, array, object or promise per extent (bench/README.md, issue 5).
 */
import { writeSync } from 'node:fs'
import { extentBatches } from '../../engine/analysis/extents.js'
import { type Parsed, has, outputFormat } from '../args.js'
import { flushOut } from '../io.js'
import { openPath, requireBitmap, requireReader } from './common.js'

/** Output is written out when the buffer passes this; one record is far below the slack. */
const FLUSH_AT = 1 << 20
const SLACK = 4096

const bytesOf = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0))
/** "00" .. "99" as byte pairs: two digits per division. */
const PAIRS = bytesOf(Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join(''))
/** 10^i for i < 17 (safe integers have at most 16 digits) */
const POW10 = Array.from({ length: 17 }, (_, i) => 10 ** i)

const J_OFFSET = bytesOf('\n{"offset":')
const J_LENGTH = bytesOf(',"length":')
const J_DIRTY = bytesOf(',"dirty":true}')
const J_CLEAN = bytesOf(',"dirty":false}')
const H_DIRTY = bytesOf('    1  dirty\n')
const H_CLEAN = bytesOf('    0  clean\n')

/** Copy `s` into `b` at `p`; returns the position after it. */
function putBytes(b: Uint8Array, p: number, s: Uint8Array): number {
  for (let i = 0; i < s.length; i++) b[p++] = s[i]!
  return p
}

/**
 * Decimal digits of a non-negative safe integer at `p`, right-aligned in `width` columns (spaces
 * before); returns the position after it. Digits are written from the last one back, two per
 * division, in 32-bit integer arithmetic once the rest is below 2^32.
 */
export function putNum(b: Uint8Array, p: number, n: number, width = 0): number {
  let nd = 1
  while (nd < 16 && n >= POW10[nd]!) nd++
  for (let pad = width - nd; pad > 0; pad--) b[p++] = 32
  const after = p + nd
  let end = after
  while (n >= 4294967296) {
    const q = Math.floor(n / 100)
    const r = (n - q * 100) << 1
    b[--end] = PAIRS[r + 1]!
    b[--end] = PAIRS[r]!
    n = q
  }
  let m = n >>> 0
  while (m >= 100) {
    const q = (m / 100) >>> 0
    const r = (m - q * 100) << 1
    b[--end] = PAIRS[r + 1]!
    b[--end] = PAIRS[r]!
    m = q
  }
  if (m >= 10) {
    b[--end] = PAIRS[(m << 1) + 1]!
    b[--end] = PAIRS[m << 1]!
  } else b[--end] = 48 + m
  return after
}

/**
 * The records of `qbm map`, from batches of [offset, length] pairs, as nbdinfo prints them
 * (JSON array or aligned columns; with `all`, the clean gaps too). The per-extent loop is
 * synchronous with the buffer position in a local, and numbers that outlive a call live in a
 * Float64Array, so offsets past 2^31 are never boxed as heap numbers.
 */
export class MapWriter {
  private readonly buf = new Uint8Array(FLUSH_AT + SLACK)
  private pos = 0
  /** stdout was closed by the reader (EPIPE): drop the rest, as io.ts does */
  private closed = false
  /** end of the previous dirty extent */
  private readonly prev = new Float64Array(1)
  private first = true

  constructor(private readonly json: boolean, private readonly all: boolean, private readonly width: number, private readonly fd = 1) {}

  start(): void {
    if (this.json) this.buf[this.pos++] = 91 // [
  }

  batch(bt: Float64Array): void {
    const b = this.buf
    let p = this.pos
    let prev = this.prev[0]!
    if (this.json && !this.all) {
      // The common case (`qbm map --output=json`), kept to one tight loop.
      let i = 0
      if (this.first && bt.length > 0) {
        p = putBytes(b, p, J_OFFSET)
        p = putNum(b, p, bt[0]!)
        p = putBytes(b, p, J_LENGTH)
        p = putNum(b, p, bt[1]!)
        b[p++] = 125 // }
        this.first = false
        i = 2
      }
      for (; i < bt.length; i += 2) {
        b[p++] = 44 // ,
        p = putBytes(b, p, J_OFFSET)
        p = putNum(b, p, bt[i]!)
        p = putBytes(b, p, J_LENGTH)
        p = putNum(b, p, bt[i + 1]!)
        b[p++] = 125 // }
        if (p >= FLUSH_AT) { this.pos = p; this.flush(); p = 0 }
      }
      if (bt.length > 0) prev = bt[bt.length - 2]! + bt[bt.length - 1]!
    } else {
      for (let i = 0; i < bt.length; i += 2) {
        const offset = bt[i]!
        const length = bt[i + 1]!
        if (this.all && offset > prev) p = this.record(p, prev, offset - prev, 2)
        p = this.record(p, offset, length, this.all ? 1 : 0)
        prev = offset + length
        if (p >= FLUSH_AT) { this.pos = p; this.flush(); p = 0 }
      }
    }
    this.prev[0] = prev
    this.pos = p
  }

  finish(diskLength: number): void {
    const prev = this.prev[0]!
    if (this.all && prev < diskLength) this.pos = this.record(this.pos, prev, diskLength - prev, 2)
    if (this.json) this.pos = putBytes(this.buf, this.pos, bytesOf(this.first ? ']\n' : '\n]\n'))
    this.flush()
  }

  /** One record at `p`; kind 0 = dirty (no field: dirty extents only), 1 = dirty, 2 = clean. */
  private record(p: number, offset: number, length: number, kind: 0 | 1 | 2): number {
    const b = this.buf
    if (this.json) {
      if (!this.first) b[p++] = 44 // ,
      this.first = false
      p = putBytes(b, p, J_OFFSET)
      p = putNum(b, p, offset)
      p = putBytes(b, p, J_LENGTH)
      p = putNum(b, p, length)
      if (kind === 1) p = putBytes(b, p, J_DIRTY)
      else if (kind === 2) p = putBytes(b, p, J_CLEAN)
      else b[p++] = 125 // }
    } else {
      p = putNum(b, p, offset, this.width)
      b[p++] = 32
      b[p++] = 32
      p = putNum(b, p, length, this.width)
      p = putBytes(b, p, kind === 2 ? H_CLEAN : H_DIRTY)
    }
    return p
  }

  private flush(): void {
    let off = 0
    while (off < this.pos && !this.closed) {
      try {
        off += writeSync(this.fd, this.buf, off, this.pos - off)
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'EAGAIN') continue
        if (code === 'EPIPE') { this.closed = true; break }
        throw e
      }
    }
    this.pos = 0
  }
}

export async function cmdMap(p: Parsed, path: string, name: string): Promise<number> {
  const json = outputFormat(p) === 'json'
  const all = has(p, 'all')
  const { dev, img } = await openPath(path)
  try {
    const r = requireReader(img, requireBitmap(img, name))
    flushOut() // anything already queued through io.ts goes first
    // nbdinfo prints "%10" PRIu64 "  %10" PRIu64: at least 10 columns, wider for longer numbers
    const o = new MapWriter(json, all, Math.max(10, String(r.diskLength).length))
    o.start()
    for await (const b of extentBatches(r)) o.batch(b)
    o.finish(r.diskLength)
    return 0
  } finally {
    dev.close()
  }
}
