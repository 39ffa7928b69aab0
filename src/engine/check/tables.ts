/**
 * The memory the check walks its tables in, and the kernels that do its per-entry work there
 * (check/references.ts, check/check.ts). On a sparse image almost every table entry is zero; on
 * a preallocated one (`preallocation=metadata`: 1.6 million data clusters per 100 GiB) every one
 * is a data cluster to decode, count and compare. Both are done in WebAssembly (tables.wat:
 * SIMD zero skipping, the L2 entries, the refcount comparison 16 clusters per step) where the
 * platform runs it, else by the same code in JavaScript (tables-js.ts); tables.test.ts proves
 * the two equal.
 *
 * Layout, when the image's clusters fit (`layout`): one byte of reference count per cluster of
 * the file, the refcount blocks covering those clusters back to back (check/stored.ts preloads
 * them), then the buffer tables are read into. The memory is sized once, so the views handed
 * out stay valid for the whole check. Without a layout (a file with more clusters than
 * MAX_MEMORY allows, or no memory for it) there are no kernels: the walk does every non-zero
 * entry with its own code, as it always could, and only the zero search runs here.
 */
import type { BlockDevice } from '../device.js'
import { readPadded } from '../padded.js'
import { TABLES_WASM } from './tables.bytes.js'
import { JsKernels, type Kernels } from './tables-js.js'

export { L2Flag } from './tables-js.js'

/** The part of the WebAssembly namespace used here (the engine compiles without DOM or Node types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> }
}
interface WasmGlobal { value: number }
interface WasmExports {
  mem: { buffer: ArrayBuffer; grow: (pages: number) => number }
  next: (p: number, end: number) => number
  setup: Kernels['setup']
  l2: Kernels['l2']
  compare: Kernels['compare']
  next_contig: WasmGlobal
  allocated: WasmGlobal
  fragmented: WasmGlobal
  highest: WasmGlobal
}

const PAGE = 65536
/** Alignment of each region (and room for a 16-byte load past the end of the buffer). */
const ALIGN = 64
/**
 * Largest memory a check lays out (1 + refcount_bits/8 bytes per cluster of the file, and the
 * buffer: 170 million clusters with 16-bit refcounts, a 10 TiB file of 64 KiB clusters); a file
 * with more clusters is walked without the kernels.
 */
export const MAX_MEMORY = 512 << 20

/** The compiled module (compiled on first use: most commands never check), or why it is not there. */
let compiled: { module: object; api: WasmApi } | { error: string } | undefined

function compiledModule(): { module: object; api: WasmApi } | { error: string } {
  if (compiled) return compiled
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly
  if (!api) return (compiled = { error: 'this platform has no WebAssembly' })
  try {
    compiled = { module: new api.Module(TABLES_WASM), api }
  } catch (e) {
    // A platform without SIMD rejects the module; a CSP without 'wasm-unsafe-eval' forbids compiling.
    compiled = { error: `the WebAssembly table kernels do not compile here: ${(e as Error).message}` }
  }
  return compiled
}

/** The module's exports as Kernels (its globals read and written through `.value`). */
class WasmKernels implements Kernels {
  readonly next: Kernels['next']
  readonly setup: Kernels['setup']
  readonly l2: Kernels['l2']
  readonly compare: Kernels['compare']
  constructor(private readonly ex: WasmExports) {
    this.next = ex.next
    this.setup = ex.setup
    this.l2 = ex.l2
    this.compare = ex.compare
  }
  get nextContig(): number { return this.ex.next_contig.value }
  set nextContig(v: number) { this.ex.next_contig.value = v }
  get allocated(): number { return this.ex.allocated.value }
  set allocated(v: number) { this.ex.allocated.value = v }
  get fragmented(): number { return this.ex.fragmented.value }
  set fragmented(v: number) { this.ex.fragmented.value = v }
  get highest(): number { return this.ex.highest.value }
  set highest(v: number) { this.ex.highest.value = v }
}

/** The regions a check needs and the image's constants for the kernels (check.ts sizes them). */
export interface TablesLayout {
  readonly clusterBits: number
  readonly fileSize: number
  readonly refcountOrder: number
  /** the largest count a kernel writes: min(the largest refcount, 254) */
  readonly limit: number
  /** clusters counted: those of the file and one more (a reference may pass its end by less than a cluster) */
  readonly clusters: number
  /** bytes of the refcount blocks that cover them */
  readonly storedBytes: number
  /** the longest buffer() the walk asks for */
  readonly bufferBytes: number
}

/** Which implementation runs: the module, its JavaScript twin, or (tests) the walk's own per-entry code. */
export type ScannerKind = 'wasm' | 'js' | 'entrywise'

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN

/**
 * The check's memory and kernels. One per check; the buffer holds what the last `buffer()` call
 * asked for (positions in it are what `view`, `next` and `l2` take).
 */
export class TableScanner {
  /** which zero search runs: 'wasm', or 'js' with the reason the WebAssembly one does not */
  readonly kind: 'wasm' | 'js'
  readonly fallbackReason?: string
  /** the kernels over the layout, or undefined (no layout: the walk does every entry itself) */
  readonly kernels?: Kernels
  /** why there are no kernels, when there is a layout but they are not used */
  readonly kernelsReason?: string
  /** one byte per cluster: the references counted (check/counts.ts), when there are kernels */
  readonly counts?: Uint8Array
  /** the refcount blocks of those clusters back to back (check/stored.ts), when there are kernels */
  readonly stored?: Uint8Array
  /** big-endian reads of the entries in the buffer (positions as `buffer()` and `next()` use them) */
  view: DataView
  private bytes: Uint8Array
  /** the view the last `buffer()` gave (reused while the length stays the same) */
  private last: Uint8Array | undefined
  private readonly ex?: WasmExports
  private js?: JsKernels
  /** where the buffer starts in the memory, and its fixed size with a layout */
  private readonly base: number
  private readonly fixed?: number

  /**
   * `prefer: 'js'` asks for the JavaScript code, 'entrywise' for no kernels (the tests compare
   * all three). `layout`: the regions of a check (none: only the zero search).
   */
  constructor(prefer: ScannerKind = 'wasm', layout?: TablesLayout) {
    let reason = prefer !== 'wasm' ? `the ${prefer === 'js' ? 'JS code' : 'entrywise walk'} was asked for` : undefined
    let ex: WasmExports | undefined
    if (!reason) {
      const c = compiledModule()
      if ('error' in c) reason = c.error
      else {
        try {
          ex = new c.api.Instance(c.module, {}).exports as unknown as WasmExports
          // Self-test on a buffer whose answer is known.
          const b = new Uint8Array(ex.mem.buffer, 0, 256)
          b.fill(0)
          b[200] = 1
          const ok = ex.next(0, 256) === 200 && ex.next(208, 256) === 256 && ex.next(8, 200) === 200
          b.fill(0) // the regions must start zeroed
          if (!ok) {
            reason = 'the WebAssembly table kernels failed their self-test'
            ex = undefined
          }
        } catch (e) {
          reason = `the WebAssembly table kernels do not instantiate here: ${(e as Error).message}`
          ex = undefined
        }
      }
    }
    this.kind = ex ? 'wasm' : 'js'
    if (reason && prefer !== 'entrywise') this.fallbackReason = reason

    let counts = 0, stored = 0, base = 0, total = PAGE
    let useLayout = layout !== undefined && prefer !== 'entrywise'
    if (layout && useLayout) {
      counts = ALIGN
      stored = counts + align(layout.clusters)
      base = stored + align(layout.storedBytes)
      total = base + align(layout.bufferBytes) + ALIGN
      if (total > MAX_MEMORY) {
        useLayout = false
        this.kernelsReason = `the file has too many clusters (${layout.clusters}) for the check's memory`
      }
    }
    let buf: ArrayBuffer
    if (ex) {
      if (useLayout) {
        const pages = Math.ceil(total / PAGE) - ex.mem.buffer.byteLength / PAGE
        try {
          if (pages > 0) ex.mem.grow(pages)
        } catch (e) {
          useLayout = false
          this.kernelsReason = `no memory for the check's tables: ${(e as Error).message}`
        }
      }
      this.ex = ex
      buf = ex.mem.buffer
    } else {
      try {
        buf = new ArrayBuffer(useLayout ? Math.ceil(total / PAGE) * PAGE : PAGE)
      } catch (e) {
        useLayout = false
        this.kernelsReason = `no memory for the check's tables: ${(e as Error).message}`
        buf = new ArrayBuffer(PAGE)
      }
      this.js = new JsKernels(buf)
    }
    if (layout && useLayout) {
      this.kernels = ex ? new WasmKernels(ex) : this.js!
      this.kernels.setup(layout.clusterBits, layout.fileSize, counts, stored, layout.refcountOrder, layout.limit)
      this.counts = new Uint8Array(buf, counts, layout.clusters)
      this.stored = new Uint8Array(buf, stored, layout.storedBytes)
      this.base = base
      this.fixed = layout.bufferBytes
    } else {
      this.base = 0
    }
    this.bytes = new Uint8Array(buf, this.base)
    this.view = new DataView(buf, this.base)
  }

  /** The first `length` bytes of the buffer, grown to hold them without a layout (contents not kept). */
  buffer(length: number): Uint8Array {
    if (this.fixed !== undefined && length > this.fixed) throw new RangeError(`the check's table buffer holds ${this.fixed} bytes, not ${length}`)
    if (length > this.bytes.length) {
      const pages = Math.ceil(length / PAGE)
      let buf: ArrayBuffer
      if (this.ex) {
        this.ex.mem.grow(pages - this.ex.mem.buffer.byteLength / PAGE)
        buf = this.ex.mem.buffer
      } else {
        buf = new ArrayBuffer(pages * PAGE)
        this.js = new JsKernels(buf)
      }
      this.bytes = new Uint8Array(buf)
      this.view = new DataView(buf)
      this.last = undefined
    }
    if (this.last?.length !== length) this.last = this.bytes.subarray(0, length)
    return this.last
  }

  /**
   * `length` bytes of the file at `offset` into the buffer (at position 0), zeros past the end of
   * the file; straight from the device when it can read in place.
   */
  async load(dev: BlockDevice, offset: number, length: number): Promise<void> {
    const buf = this.buffer(length)
    if (dev.readInto && offset + length <= dev.size) await dev.readInto(offset, buf)
    else buf.set(await readPadded(dev, offset, length))
  }

  /**
   * Byte position of the first non-zero 8-byte word in buffer[from, end), or `end` when all are
   * zero. `from` and `end` are multiples of 8 inside the last `buffer()`.
   */
  next(from: number, end: number): number {
    const b = this.base
    return (this.ex ? this.ex.next(from + b, end + b) : this.js!.next(from + b, end + b)) - b
  }

  /** The kernels' l2 over buffer positions [start, end) (tables.wat); only with kernels. */
  l2(start: number, end: number, flags: number, times: number): number {
    const b = this.base
    return this.kernels!.l2(start + b, end + b, flags, times) - b
  }
}
