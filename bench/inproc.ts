/**
 * In-process measurements (what the browser worker pays), run in a child Node process so each
 * figure starts from a clean heap. Prints one JSON object on stdout.
 *
 *   inproc.mjs describe IMAGE RUNS       openImage + describeImage (counts), performance.now
 *   inproc.mjs scan IMAGE BITMAP RUNS VIEWS SEED
 *       full scan (dirty count + 4096-cell heatmap) vs a plain sequential read of the same
 *       bitmap data bytes, then VIEWS heatmaps at random zooms (unaligned starts) on the
 *       scanned reader
 *   inproc.mjs extents IMAGE BITMAP START LENGTH   dirty extents in a range (D's validation)
 */
import { NodeFileDevice } from '../src/io/node-file.js'
import { BitmapReader, describeImage, extentsInRange, findBitmap, heatmap, openImage } from '../src/engine/index.js'
import { Prng, median, max } from './util.js'

async function describeOnce(path: string): Promise<{ ms: number; dirty: number; extents: number; dataBytes: number }> {
  const t = performance.now()
  const dev = NodeFileDevice.open(path)
  try {
    const img = await openImage(dev)
    const s = await describeImage(img)
    const ms = performance.now() - t
    return {
      ms,
      dirty: s.bitmaps.reduce((a, b) => a + (b.dirtyBytes ?? 0), 0),
      extents: s.bitmaps.reduce((a, b) => a + (b.extentCount ?? 0), 0),
      dataBytes: s.bitmaps.reduce((a, b) => a + b.dataBytes, 0),
    }
  } finally {
    dev.close()
  }
}

async function describe(path: string, runs: number): Promise<unknown> {
  for (let i = 0; i < 3; i++) await describeOnce(path) // warm-up: JIT and page cache
  const ms: number[] = []
  let last = await describeOnce(path)
  for (let i = 0; i < runs; i++) {
    last = await describeOnce(path)
    ms.push(last.ms)
  }
  // The floor: a plain read of the same bitmap data bytes, in the same chunks, nothing else.
  const readMs: number[] = []
  const dev = NodeFileDevice.open(path)
  try {
    const img = await openImage(dev)
    for (let i = 0; i < runs + 1; i++) {
      let t = 0
      for (const b of img.bitmaps) t += (await plainRead(dev, b.table, img.header.clusterSize)).ms
      if (i > 0) readMs.push(t)
    }
  } finally {
    dev.close()
  }
  return { ms, medianMs: median(ms), dirtyBytes: last.dirty, extents: last.extents, dataBytes: last.dataBytes, readMs, readMedianMs: median(readMs) }
}

/** Read the bitmap's data clusters in the same coalesced chunks (<= 8 MiB) the scan reads, doing nothing with them. */
async function plainRead(dev: NodeFileDevice, table: Float64Array, cs: number): Promise<{ ms: number; bytes: number; xor: number }> {
  const t = performance.now()
  let bytes = 0
  let xor = 0
  for (let i = 0; i < table.length;) {
    const e = table[i]!
    if (e <= 1) { i++; continue }
    let n = 1
    while (i + n < table.length && n * cs < 8 * 1024 * 1024 && table[i + n] === e + n * cs) n++
    const buf = await dev.read(e, n * cs)
    xor ^= buf[buf.length - 1]!
    bytes += buf.length
    i += n
  }
  return { ms: performance.now() - t, bytes, xor }
}

async function scan(path: string, name: string, runs: number, views: number, seed: number): Promise<unknown> {
  const dev = NodeFileDevice.open(path)
  try {
    const img = await openImage(dev)
    const b = findBitmap(img, name)
    if (!b) throw new Error(`no bitmap ${name}`)
    const L = img.header.diskLength
    const cs = img.header.clusterSize
    let reader: BitmapReader | undefined
    const scanOnce = async (): Promise<{ scanMs: number; heatMs: number; ms: number; dirty: number }> => {
      const r = new BitmapReader(dev, b, L, cs)
      const t = performance.now()
      await r.scan()
      const t1 = performance.now()
      const cells = await heatmap(r, 0, L, 4096)
      const t2 = performance.now()
      let sum = 0
      for (const c of cells) sum += c
      if (sum !== r.dirtyBytes) throw new Error(`heatmap sum ${sum} != dirty bytes ${r.dirtyBytes}`)
      reader = r
      return { scanMs: t1 - t, heatMs: t2 - t1, ms: t2 - t, dirty: r.dirtyBytes }
    }
    // warm-up (page cache, JIT), then alternate so both see the same conditions
    await plainRead(dev, b.table, cs)
    await scanOnce()
    const readMs: number[] = []
    const fullMs: number[] = []
    const scanMs: number[] = []
    const heatMs: number[] = []
    let bytes = 0
    let dirty = 0
    for (let i = 0; i < runs; i++) {
      const p = await plainRead(dev, b.table, cs)
      readMs.push(p.ms)
      bytes = p.bytes
      const s = await scanOnce()
      fullMs.push(s.ms); scanMs.push(s.scanMs); heatMs.push(s.heatMs)
      dirty = s.dirty
    }
    // Random zooms on the scanned reader: lengths log-uniform from the whole disk down to
    // 4096 granules, starts at arbitrary (unaligned) byte offsets; view 0 is the whole disk.
    // Two independent sets of views (fresh random views each, so neither profits from blocks the
    // other cached): the views as asked, and the same distribution snapped to the block grid
    // (a candidate fix on the UI side, measured here for the report; see bench/README.md).
    const r = reader!
    const g = r.granularity
    const blockBytes = 4096 * g
    const zoomSet = async (rngSeed: number, how: 'heatmap' | 'snapped'): Promise<Array<{ start: number; length: number; ms: number }>> => {
      const rng = new Prng(rngSeed)
      const out: Array<{ start: number; length: number; ms: number }> = []
      const minLen = 4096 * g
      for (let v = 0; v < views; v++) {
        let start = 0
        let length = L
        if (v > 0) {
          length = Math.max(minLen, Math.floor(L * 2 ** (-rng.float() * Math.log2(L / minLen))))
          start = rng.int(L - length + 1)
        }
        if (how === 'snapped' && length >= 4096 * blockBytes) {
          // The UI picks the view: cell width a whole number of index blocks, start on a block.
          const cellBlocks = Math.max(1, Math.round(length / 4096 / blockBytes))
          length = Math.min(L, cellBlocks * 4096 * blockBytes)
          start = Math.min(L - length, Math.floor(start / blockBytes) * blockBytes)
        }
        const t = performance.now()
        await heatmap(r, start, start + length, 4096)
        out.push({ start, length, ms: performance.now() - t })
      }
      return out
    }
    const zoom = await zoomSet(seed, 'heatmap')
    const zSnapped = (await zoomSet(seed + 2, 'snapped')).map((z) => z.ms)
    const zms = zoom.map((z) => z.ms)
    const mem = process.memoryUsage()
    return {
      bytes, dirtyBytes: dirty,
      readMs, fullMs, scanMs, heatMs,
      readMedianMs: median(readMs), fullMedianMs: median(fullMs),
      readMBps: bytes / 1e6 / (median(readMs) / 1000), scanMBps: bytes / 1e6 / (median(fullMs) / 1000),
      zoom: { views, medianMs: median(zms), maxMs: max(zms), slowest: zoom.slice().sort((a, c) => c.ms - a.ms).slice(0, 5) },
      zoomSnapped: { medianMs: median(zSnapped), maxMs: max(zSnapped) },
      maxRssKiB: process.resourceUsage().maxRSS, rssNow: mem.rss,
    }
  } finally {
    dev.close()
  }
}

/** Dirty extents of a bitmap inside [start, start + length), clipped, as [offset, length] pairs. */
async function extents(path: string, name: string, start: number, length: number): Promise<unknown> {
  const dev = NodeFileDevice.open(path)
  try {
    const img = await openImage(dev)
    const b = findBitmap(img, name)
    if (!b) throw new Error(`no bitmap ${name}`)
    const r = new BitmapReader(dev, b, img.header.diskLength, img.header.clusterSize)
    return (await extentsInRange(r, start, start + length)).map((e) => [e.offset, e.length])
  } finally {
    dev.close()
  }
}

async function main(): Promise<void> {
  const [cmd, ...a] = process.argv.slice(2)
  let out: unknown
  if (cmd === 'describe') out = await describe(a[0]!, Number(a[1] ?? 7))
  else if (cmd === 'scan') out = await scan(a[0]!, a[1]!, Number(a[2] ?? 3), Number(a[3] ?? 50), Number(a[4] ?? 1))
  else if (cmd === 'extents') out = await extents(a[0]!, a[1]!, Number(a[2]), Number(a[3]))
  else throw new Error(`inproc: unknown command ${cmd}`)
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((e: unknown) => {
  process.stderr.write(`inproc: ${(e as Error).stack ?? String(e)}\n`)
  process.exit(1)
})
