/**
 * Bitmap data (spec §4.4-§4.5): the reader and what callers use with it. The parts live in
 * data/, one subject each: reader.ts (BitmapReader), clusters.ts (stored clusters, cache),
 * scan.ts (the block index), kernel*.ts (the counting kernels; kernel-wasm.wat is the
 * WebAssembly source), runs.ts (the run finder), blocks.ts (single-block lookups), bits.ts.
 */
export { BitmapReader } from './data/reader.js'
export type { ReaderOptions } from './data/reader.js'
export type { IndexSoFar, Progress, ScanOptions } from './data/scan.js'
export type { KernelInfo } from './data/kernel.js'
export { kernelInfo } from './data/kernel-choice.js'
export { BLOCK_BITS } from './data/bits.js'
