/**
 * The scan's block counting kernel: for whole 512-byte blocks of bitmap data, the set bits and
 * the run starts of each block (spec §4.5 bit order), from which the reader's block index is
 * summed. Two implementations with the same results:
 *  - WebAssembly SIMD (kernel-wasm.ts, source kernel-wasm.wat): the one every platform qbm
 *    targets runs (Node >= 20, current Chromium, Firefox and Safari);
 *  - JavaScript (kernel-js.ts): a fallback for a platform where that module cannot run (no
 *    WebAssembly, no SIMD, or a Content-Security-Policy without 'wasm-unsafe-eval' on the
 *    worker script), about 4× slower on dense bitmaps.
 * The fallback is never silent: `kernelInfo()` (kernel-choice.ts) and `BitmapReader.kernel` say
 * which kernel counts and why the WebAssembly one does not; the tests assert 'wasm'
 * (data/kernel.test.ts).
 *
 * Each scan creates its own kernel (its own 1 MiB of memory), so concurrent scans never share
 * state; the compiled WebAssembly module is the only thing shared, and it is immutable.
 */
import { BLOCK_BYTES } from './bits.js'

/** Blocks per kernel call: 1 MiB of data. */
export const PIECE_BLOCKS = 2048
/** Bytes per kernel call (the size of `BlockKernel.piece`). */
export const PIECE_BYTES = PIECE_BLOCKS * BLOCK_BYTES

/** Which kernel counts, and why it is not the WebAssembly one when it is not. */
export interface KernelInfo {
  kind: 'wasm' | 'js'
  /** set when kind is 'js': what kept the WebAssembly kernel from running */
  fallbackReason?: string
}

/** A block counting kernel with its own memory: put data in `piece`, call `count`, read `ones` and `runs`. */
export interface BlockKernel {
  readonly info: KernelInfo
  /** PIECE_BYTES bytes to count from (the WebAssembly module's own memory for 'wasm'); reads may land here directly */
  readonly piece: Uint8Array
  /** after count(n, ...): onesBefore + the set bits of blocks 0..i, at [i] for i < n */
  readonly ones: Float64Array
  /** after count(n, ...): runsBefore + the run starts of blocks 0..i, at [i] for i < n */
  readonly runs: Float64Array
  /**
   * Count blocks [0, nblocks) of `piece` (nblocks <= PIECE_BLOCKS) into running totals from
   * `onesBefore` and `runsBefore` (the block index's entries, written by the kernel so that
   * the scan copies them with one native `set`). `carry` is the bit before the first block
   * (0 or 1); returns the last bit of the last block, the next call's carry.
   */
  count(nblocks: number, carry: number, onesBefore: number, runsBefore: number): number
}
