/**
 * The buffer the check reads L1 and L2 tables into, and the search for their non-zero entries
 * (check/references.ts). On a sparse image almost every entry is zero: C of the bench (64 TiB,
 * 2,000 writes) has 124 MiB of L2 tables holding 2,016 entries, so finding those is the walk's
 * whole cost beyond the read. The search runs in WebAssembly SIMD (nonzero.wat: 64 bytes per
 * step) where the platform runs it, else in JavaScript (32-bit words, 64 bytes OR-ed per step);
 * both give the same answers (check/nonzero.test.ts). The tables are read straight into the
 * scanner's memory, so a walk over thousands of tables allocates nothing per table.
 */
import { NONZERO_WASM } from './nonzero.bytes.js'

/** The part of the WebAssembly namespace used here (the engine compiles without DOM or Node types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> }
}
interface ScannerExports {
  mem: { buffer: ArrayBuffer; grow: (pages: number) => number }
  next: (p: number, end: number) => number
}

const PAGE = 65536

/** The compiled module (compiled on first use: most commands never check), or why it is not there. */
let compiled: { module: object; api: WasmApi } | { error: string } | undefined

function compiledModule(): { module: object; api: WasmApi } | { error: string } {
  if (compiled) return compiled
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly
  if (!api) return (compiled = { error: 'this platform has no WebAssembly' })
  try {
    compiled = { module: new api.Module(NONZERO_WASM), api }
  } catch (e) {
    // A platform without SIMD rejects the module; a CSP without 'wasm-unsafe-eval' forbids compiling.
    compiled = { error: `the WebAssembly zero skipper does not compile here: ${(e as Error).message}` }
  }
  return compiled
}

/**
 * The first non-zero 8-byte word of words[from/4, end/4) as a byte position, or `end`: 32-bit
 * words, 64 bytes OR-ed together per step once aligned.
 */
function nextJs(w: Int32Array, from: number, end: number): number {
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

/**
 * A reused buffer for tables and the search for their non-zero 8-byte words. One per walk; its
 * buffer is valid until the next `buffer()` call.
 */
export class TableScanner {
  /** which search runs: 'wasm', or 'js' with the reason the WebAssembly one does not */
  readonly kind: 'wasm' | 'js'
  readonly fallbackReason?: string
  /** big-endian reads of the entries in the buffer (positions as `buffer()` and `next()` use them) */
  view: DataView
  private bytes: Uint8Array
  /** the view the last `buffer()` gave (reused while the length stays the same) */
  private last: Uint8Array | undefined
  private readonly ex?: ScannerExports
  private words?: Int32Array

  /** `prefer: 'js'` asks for the JavaScript search (the tests compare the two). */
  constructor(prefer: 'wasm' | 'js' = 'wasm') {
    let reason = prefer === 'js' ? 'the JS search was asked for' : undefined
    if (!reason) {
      const c = compiledModule()
      if ('error' in c) reason = c.error
      else {
        try {
          const ex = new c.api.Instance(c.module, {}).exports as unknown as ScannerExports
          // Self-test on a buffer whose answer is known.
          const b = new Uint8Array(ex.mem.buffer, 0, 256)
          b.fill(0)
          b[200] = 1
          if (ex.next(0, 256) !== 200 || ex.next(208, 256) !== 256 || ex.next(8, 200) !== 200) reason = 'the WebAssembly zero skipper failed its self-test'
          else this.ex = ex
        } catch (e) {
          reason = `the WebAssembly zero skipper does not instantiate here: ${(e as Error).message}`
        }
      }
    }
    this.kind = this.ex ? 'wasm' : 'js'
    if (reason) this.fallbackReason = reason
    const buf = this.ex ? this.ex.mem.buffer : new ArrayBuffer(PAGE)
    this.bytes = new Uint8Array(buf)
    this.view = new DataView(buf)
    if (!this.ex) this.words = new Int32Array(buf)
  }

  /** The first `length` bytes of the buffer, grown to hold them (contents not kept). */
  buffer(length: number): Uint8Array {
    if (length > this.bytes.length) {
      const pages = Math.ceil(length / PAGE)
      let buf: ArrayBuffer
      if (this.ex) {
        this.ex.mem.grow(pages - this.ex.mem.buffer.byteLength / PAGE)
        buf = this.ex.mem.buffer
      } else {
        buf = new ArrayBuffer(pages * PAGE)
        this.words = new Int32Array(buf)
      }
      this.bytes = new Uint8Array(buf)
      this.view = new DataView(buf)
      this.last = undefined
    }
    if (this.last?.length !== length) this.last = this.bytes.subarray(0, length)
    return this.last
  }

  /**
   * Byte position of the first non-zero 8-byte word in buffer[from, end), or `end` when all are
   * zero. `from` and `end` are multiples of 8 inside the last `buffer()`.
   */
  next(from: number, end: number): number {
    return this.ex ? this.ex.next(from, end) : nextJs(this.words!, from, end)
  }
}
