/**
 * `qbm map IMAGE BITMAP [--output=human|json] [--all]`: dirty extents, merged, in guest bytes,
 * as nbdinfo --map=qemu:dirty-bitmap:NAME prints them.
 *
 * A million extents make ~20 MB of output, so the runs of set bits come in batches
 * (BitmapReader.runBatches: one await per batch) and the records are formatted by a WebAssembly
 * module (map-format.wat) into two output buffers in its memory: no string, array, object or
 * promise per extent, and no JIT warm-up on the one loop that runs a million times
 * (bench/README.md, issues 5 and 12). Each full 1 MiB buffer is written by an asynchronous
 * write (the syscall runs on libuv's thread pool) while the records go on into the other one,
 * so writing to the pipe overlaps formatting.
 */
import { write } from 'node:fs'
import { type Parsed, has, outputFormat } from '../args.js'
import { flushOut } from '../io.js'
import { openPath, requireBitmap, requireReader } from './common.js'
import { MAP_FORMAT_WASM } from './map-format.bytes.js'

/** A buffer is written out when it passes this; one record is far below the slack. */
const FLUSH_AT = 1 << 20
const SLACK = 4096

/**
 * Where MapWriter's bytes go: a write of `data` (the writer does not touch it until the promise
 * settles), resolving to false when the reader has gone (a closed pipe): the writer then stops.
 */
export type Sink = (data: Uint8Array) => Promise<boolean>

/** A Sink writing to file descriptor `fd` (asynchronously); false once the pipe is closed (EPIPE). */
export function fdSink(fd: number): Sink {
  let closed = false
  const once = (data: Uint8Array, off: number): Promise<number> => new Promise((ok, fail) => {
    write(fd, data, off, data.length - off, null, (e, n) => (e ? fail(e) : ok(n)))
  })
  return async (data) => {
    for (let off = 0; off < data.length && !closed;) {
      try {
        off += await once(data, off)
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'EAGAIN') { await new Promise((ok) => setTimeout(ok, 1)); continue }
        if (code === 'EPIPE') { closed = true; break }
        throw e
      }
    }
    return !closed
  }
}

/** Runs per call into the module (its input area holds 16,384). */
const IN_PAIRS = 16384

/** The exports of map-format.wat. */
interface MapFormat {
  mem: { buffer: ArrayBuffer }
  inAt(): number
  outAt(k: number): number
  pos(): number
  reset(json: number, all: number, width: number, granularity: number, diskLength: number, out: number): void
  switchTo(out: number): void
  start(): void
  records(i: number, n: number): number
  finish(): void
}

/**
 * The records of `qbm map`, from batches of runs of set bits ([start, end) bit pairs, as
 * BitmapReader.runBatches yields them), as nbdinfo prints them (JSON array or aligned columns;
 * with `all`, the clean gaps too) in guest bytes: formatted by map-format.wat into one of its
 * two output buffers while the other one is written.
 */
export class MapWriter {
  private readonly f: MapFormat
  private readonly input: Float64Array
  private readonly outs: Uint8Array[]
  /** the output buffer being filled (0 or 1) */
  private cur = 0
  /** the write of the other buffer, if one is in flight */
  private pending: Promise<boolean> | undefined
  /** the sink's reader has gone (`qbm map ... | head`): nothing more is formatted */
  private closed = false

  constructor(json: boolean, all: boolean, width: number, granularity: number, diskLength: number, private readonly sink: Sink = fdSink(1)) {
    this.f = new WebAssembly.Instance(new WebAssembly.Module(MAP_FORMAT_WASM as Uint8Array<ArrayBuffer>), {}).exports as unknown as MapFormat
    const buf = this.f.mem.buffer
    this.input = new Float64Array(buf, this.f.inAt(), 2 * IN_PAIRS)
    this.outs = [0, 1].map((k) => new Uint8Array(buf, this.f.outAt(k), FLUSH_AT + SLACK))
    this.f.reset(json ? 1 : 0, all ? 1 : 0, width, granularity, diskLength, this.f.outAt(0))
  }

  /** The opening bracket of a JSON array. */
  start(): void {
    this.f.start()
  }

  /** The records of one batch of [start, end) bit pairs (the batch is not kept); false once the reader has gone. */
  async batch(bt: Float64Array): Promise<boolean> {
    for (let at = 0; at < bt.length && !this.closed; at += 2 * IN_PAIRS) {
      const part = bt.subarray(at, at + 2 * IN_PAIRS)
      this.input.set(part)
      const n = part.length >>> 1
      for (let i = 0; i < n && !this.closed;) {
        i = this.f.records(i, n)
        if (this.f.pos() >= FLUSH_AT) await this.flush()
      }
    }
    return !this.closed
  }

  /** The closing records and brackets; resolves when everything is written. */
  async finish(): Promise<void> {
    this.f.finish()
    await this.flush()
    await this.pending
  }

  /**
   * Hand the filled buffer to the sink, after the write before it (one write at a time: two
   * writes in flight on the thread pool could interleave on a pipe), and go on in the other
   * buffer once that earlier write, which was the other buffer's, is done.
   */
  private async flush(): Promise<void> {
    const len = this.f.pos()
    if (len === 0 || this.closed) return
    const previous = this.pending
    const data = this.outs[this.cur]!.subarray(0, len)
    this.pending = previous ? previous.then((open) => (open ? this.sink(data) : false)) : this.sink(data)
    this.cur ^= 1
    this.f.switchTo(this.f.outAt(this.cur))
    if (previous && !(await previous)) this.closed = true
  }
}

/** `qbm map IMAGE BITMAP`: the dirty extents (or, with --all, every extent) on stdout. */
export async function cmdMap(p: Parsed, path: string, name: string): Promise<number> {
  const json = outputFormat(p) === 'json'
  const all = has(p, 'all')
  const { dev, img } = await openPath(path)
  try {
    const r = requireReader(img, requireBitmap(img, name))
    flushOut() // anything already queued through io.ts goes first
    // nbdinfo prints "%10" PRIu64 "  %10" PRIu64: at least 10 columns, wider for longer numbers
    const o = new MapWriter(json, all, Math.max(10, String(r.diskLength).length), r.granularity, r.diskLength)
    o.start()
    for await (const b of r.runBatches()) if (!(await o.batch(b))) break
    await o.finish()
    return 0
  } finally {
    dev.close()
  }
}
