/**
 * Choosing the scan kernel (kernel.ts): the WebAssembly one wherever it runs, the JS one with
 * the reason recorded where it does not.
 */
import type { BlockKernel, KernelInfo } from './kernel.js'
import { jsKernel } from './kernel-js.js'
import { wasmKernel } from './kernel-wasm.js'

/** Which kernel `createKernel()` gives on this platform (and why not the WebAssembly one, if not). */
export function kernelInfo(): KernelInfo {
  return createKernel().info
}

/**
 * A fresh kernel: the WebAssembly one when this platform runs it, else the JS one with the
 * reason recorded in its `info`. `prefer: 'js'` asks for the JS kernel (tests compare the two).
 */
export function createKernel(prefer: 'wasm' | 'js' = 'wasm'): BlockKernel {
  if (prefer === 'js') return jsKernel({ kind: 'js', fallbackReason: 'the JS kernel was asked for' })
  const k = wasmKernel()
  return typeof k === 'string' ? jsKernel({ kind: 'js', fallbackReason: k }) : k
}
