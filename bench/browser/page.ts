/**
 * Bench-only page (bench/browser/index.html): hands the file picked in its input to
 * scan.worker.ts and leaves the answer in `window.__scan` for the bench (bench/browser.ts).
 */
import type { ScanResult } from './scan.worker.js'

declare global {
  interface Window { __scan?: { result?: ScanResult; error?: string } }
}

const input = document.querySelector('input')!
input.addEventListener('change', () => {
  const file = input.files?.[0]
  if (!file) return
  const w = new Worker('./scan.worker.js', { type: 'module' })
  w.onmessage = (e: MessageEvent<{ result?: ScanResult; error?: string }>) => {
    window.__scan = e.data
    w.terminate()
  }
  w.onerror = (e) => { window.__scan = { error: e.message } }
  w.postMessage({ file, bitmap: input.dataset.bitmap ?? '', runs: Number(input.dataset.runs ?? 3) })
})
