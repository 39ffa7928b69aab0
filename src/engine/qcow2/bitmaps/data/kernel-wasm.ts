/**
 * The WebAssembly SIMD block kernel (see kernel.ts; source kernel-wasm.wat, bytes in the
 * generated kernel-wasm.bytes.ts). The module is compiled once, when this file loads: a compiled
 * WebAssembly.Module is immutable, and compiling it once lets V8 tier its code up once per
 * process. Every kernel is a fresh instance with its own memory. ~5-8 GB/s on dense random bits
 * including the copy into its memory, several times that on sparse ones (zero halves skipped).
 */
import { BLOCK_BYTES } from './bits.js'
import type { BlockKernel } from './kernel.js'
import { PIECE_BLOCKS, PIECE_BYTES } from './kernel.js'
import { KERNEL_WASM } from './kernel-wasm.bytes.js'

/** The part of the WebAssembly namespace used here (the engine compiles without DOM or Node types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> }
}
interface KernelExports {
  mem: { buffer: ArrayBuffer }
  blocks: (src: number, nblocks: number, onesOut: number, runsOut: number, carry: number, onesBefore: number, runsBefore: number) => number
}

/** The compiled module, or what kept it from compiling. */
const COMPILED: { module: object; api: WasmApi } | { error: string } = compile()

function compile(): { module: object; api: WasmApi } | { error: string } {
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly
  if (!api) return { error: 'this platform has no WebAssembly' }
  try {
    return { module: new api.Module(KERNEL_WASM), api }
  } catch (e) {
    // A platform without SIMD rejects the module; a CSP without 'wasm-unsafe-eval' forbids compiling.
    return { error: `the WebAssembly kernel does not compile here: ${(e as Error).message}` }
  }
}

/**
 * A fresh WebAssembly kernel, or the reason there is none (the module did not compile, would
 * not instantiate, or failed its self-test).
 */
export function wasmKernel(): BlockKernel | string {
  if ('error' in COMPILED) return COMPILED.error
  let ex: KernelExports
  try {
    ex = new COMPILED.api.Instance(COMPILED.module, {}).exports as unknown as KernelExports
  } catch (e) {
    return `the WebAssembly kernel does not instantiate here: ${(e as Error).message}`
  }
  const runsAt = PIECE_BYTES + 8 * PIECE_BLOCKS
  if (ex.mem.buffer.byteLength < runsAt + 8 * PIECE_BLOCKS) return 'the WebAssembly kernel has less memory than a piece needs'
  const piece = new Uint8Array(ex.mem.buffer, 0, PIECE_BYTES)
  const ones = new Float64Array(ex.mem.buffer, PIECE_BYTES, PIECE_BLOCKS)
  const runs = new Float64Array(ex.mem.buffer, runsAt, PIECE_BLOCKS)
  const count = (nblocks: number, carry: number, onesBefore: number, runsBefore: number): number =>
    ex.blocks(0, nblocks, PIECE_BYTES, runsAt, carry, onesBefore, runsBefore)
  // Self-test on a block whose answer is known: 0b0110 in every nibble is 2 bits and 1 run each.
  piece.fill(0x66, 0, BLOCK_BYTES)
  if (count(1, 0, 5, 7) !== 0 || ones[0] !== 2053 || runs[0] !== 1031) return 'the WebAssembly kernel failed its self-test'
  return { info: { kind: 'wasm' }, piece, ones, runs, count }
}
