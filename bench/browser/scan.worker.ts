/**
 * Bench-only worker (bench/browser/index.html): in one Chromium worker, the engine's full scan
 * of a bitmap (dirty count + 4096-cell heatmap, through BlobDevice as the app reads a dropped
 * File) against a plain read of the same data clusters with `File.slice().arrayBuffer()`, in
 * the same chunks. Runs alternate (plain, scan, plain, scan ...) after one warm-up of each.
 */
import { BlobDevice } from '../../src/io/blob.js'
import { BitmapReader, heatmap, openImage } from '../../src/engine/index.js'

/** What the page sends: the image file, its bitmap's name, timed runs. */
export interface ScanRequest { file: File; bitmap: string; runs: number }

/** What the worker answers. */
export interface ScanResult {
  bytes: number
  dirtyBytes: number
  kernel: string
  /** plain reads, one run of data clusters at a time */
  readMs: number[]
  /** plain reads with the next one started before the current one is awaited (as the scan reads) */
  readAheadMs: number[]
  /** scan + heatmap */
  scanMs: number[]
}

/** The bitmap's data clusters as the scan coalesces them: [offset, bytes], runs of <= 8 MiB. */
function dataRuns(table: Float64Array, cs: number): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (let i = 0; i < table.length;) {
    const e = table[i]!
    if (e <= 1) { i++; continue }
    let n = 1
    while (i + n < table.length && (n + 1) * cs <= 8 * 1024 * 1024 && table[i + n] === e + n * cs) n++
    out.push([e, n * cs])
    i += n
  }
  return out
}

/** Read the runs, doing nothing with the bytes: one at a time, or with the next read started before the current one is awaited (as the scan reads). */
async function plainRead(file: File, runs: Array<[number, number]>, ahead: boolean): Promise<number> {
  let bytes = 0
  const read = (i: number): Promise<ArrayBuffer> => file.slice(runs[i]![0], runs[i]![0] + runs[i]![1]).arrayBuffer()
  let cur = ahead && runs.length > 0 ? read(0) : undefined
  for (let i = 0; i < runs.length; i++) {
    if (!ahead) { bytes += (await read(i)).byteLength; continue }
    const next = i + 1 < runs.length ? read(i + 1) : undefined
    bytes += (await cur!).byteLength
    cur = next
  }
  return bytes
}

async function measure(req: ScanRequest): Promise<ScanResult> {
  const dev = new BlobDevice(req.file)
  const img = await openImage(dev)
  const b = img.bitmaps.find((x) => x.name === req.bitmap)
  if (!b) throw new Error(`no bitmap '${req.bitmap}'`)
  const L = img.header.diskLength
  const runs = dataRuns(b.table, img.header.clusterSize)
  const res: ScanResult = { bytes: 0, dirtyBytes: 0, kernel: '', readMs: [], readAheadMs: [], scanMs: [] }
  for (let i = 0; i <= req.runs; i++) {
    let t = performance.now()
    res.bytes = await plainRead(req.file, runs, false)
    if (i > 0) res.readMs.push(performance.now() - t)
    t = performance.now()
    await plainRead(req.file, runs, true)
    if (i > 0) res.readAheadMs.push(performance.now() - t)
    t = performance.now()
    const r = new BitmapReader(dev, b, L, img.header.clusterSize)
    await r.scan()
    const cells = await heatmap(r, 0, L, 4096)
    if (i > 0) res.scanMs.push(performance.now() - t)
    let sum = 0
    for (const c of cells) sum += c
    if (sum !== r.dirtyBytes) throw new Error(`heatmap sum ${sum} != dirty bytes ${r.dirtyBytes}`)
    res.dirtyBytes = r.dirtyBytes
    res.kernel = r.kernel?.kind === 'wasm' ? 'wasm' : `js (${r.kernel?.fallbackReason ?? '?'})`
  }
  return res
}

self.onmessage = (e: MessageEvent<ScanRequest>) => {
  measure(e.data).then(
    (result) => self.postMessage({ result }),
    (err: unknown) => self.postMessage({ error: String((err as Error).stack ?? err) }),
  )
}
