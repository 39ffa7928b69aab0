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
 *   inproc.mjs map-part IMAGE BITMAP runs|format|devnull
 *       one cold pass of `qbm map --output=json`'s work in this fresh process, from the open:
 *       finding the runs only; + formatting the JSON into MapWriter's buffers (written nowhere);
 *       + writing it to /dev/null. The bench subtracts these to split the whole process's time.
 */
import { NodeFileDevice } from '../src/io/node-file.js'
import { BitmapReader, describeImage, extentsInRange, findBitmap, heatRequest, heatmap, openImage } from '../src/engine/index.js'
import { Prng, median, max } from './util.js'
import { openSync } from 'node:fs'
import { MapWriter, fdSink } from '../src/cli/commands/map.js'

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
  const intoMs: number[] = []
  const dev = NodeFileDevice.open(path)
  try {
    const img = await openImage(dev)
    for (let i = 0; i < runs + 1; i++) {
      let t = 0
      let u = 0
      for (const b of img.bitmaps) {
        t += (await plainRead(dev, b.table, img.header.clusterSize)).ms
        u += plainReadInto(dev, b.table, img.header.clusterSize).ms
      }
      if (i > 0) { readMs.push(t); intoMs.push(u) }
    }
  } finally {
    dev.close()
  }
  return {
    ms, medianMs: median(ms), dirtyBytes: last.dirty, extents: last.extents, dataBytes: last.dataBytes,
    readMs, readMedianMs: median(readMs), intoMs, intoMedianMs: median(intoMs),
  }
}

/** The bitmap's data clusters as the scan coalesces them: [offset, bytes] runs of <= 8 MiB. */
function* dataRuns(table: Float64Array, cs: number): Generator<[number, number]> {
  for (let i = 0; i < table.length;) {
    const e = table[i]!
    if (e <= 1) { i++; continue }
    let n = 1
    while (i + n < table.length && n * cs < 8 * 1024 * 1024 && table[i + n] === e + n * cs) n++
    yield [e, n * cs]
    i += n
  }
}

/** Read the bitmap's data clusters in the same coalesced chunks the scan reads, doing nothing with them. */
async function plainRead(dev: NodeFileDevice, table: Float64Array, cs: number): Promise<{ ms: number; bytes: number; xor: number }> {
  const t = performance.now()
  let bytes = 0
  let xor = 0
  for (const [off, len] of dataRuns(table, cs)) {
    const buf = await dev.read(off, len)
    xor ^= buf[buf.length - 1]!
    bytes += buf.length
  }
  return { ms: performance.now() - t, bytes, xor }
}

/**
 * The same bytes read the way the scan now reads them from a NodeFileDevice: readInto one reused
 * 1 MiB buffer, 1 MiB at a time (no allocation, no zero-fill, no page faults on fresh memory).
 */
function plainReadInto(dev: NodeFileDevice, table: Float64Array, cs: number): { ms: number; bytes: number; xor: number } {
  const t = performance.now()
  const buf = new Uint8Array(1 << 20)
  let bytes = 0
  let xor = 0
  for (const [start, size] of dataRuns(table, cs)) {
    for (let off = 0; off < size; off += buf.length) {
      const len = Math.min(buf.length, size - off)
      dev.readIntoSync(start + off, buf.subarray(0, len))
      xor ^= buf[len - 1]!
      bytes += len
    }
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
    plainReadInto(dev, b.table, cs)
    await scanOnce()
    const readMs: number[] = []
    const intoMs: number[] = []
    const fullMs: number[] = []
    const scanMs: number[] = []
    const heatMs: number[] = []
    let bytes = 0
    let dirty = 0
    for (let i = 0; i < runs; i++) {
      const p = await plainRead(dev, b.table, cs)
      readMs.push(p.ms)
      bytes = p.bytes
      intoMs.push(plainReadInto(dev, b.table, cs).ms)
      const s = await scanOnce()
      fullMs.push(s.ms); scanMs.push(s.scanMs); heatMs.push(s.heatMs)
      dirty = s.dirty
    }
    // Random zooms on the scanned reader: lengths log-uniform from the whole disk down to
    // 4096 granules, starts at arbitrary (unaligned) byte offsets; view 0 is the whole disk.
    // Two independent sets of views (fresh random views each, so neither profits from blocks the
    // other cached): the views as asked ("exact"), and the same distribution passed through
    // heatRequest (analysis/heat-request.ts: the page's request for a 4096-pixel heatmap), which
    // puts a view on the block grid when a pixel spans at least one block and leaves deeper zooms
    // as asked (what the UI shows; see README).
    const r = reader!
    const g = r.granularity
    const zoomSet = async (rngSeed: number, how: 'exact' | 'snapped'): Promise<Array<{ start: number; length: number; ms: number; snapped: boolean }>> => {
      const rng = new Prng(rngSeed)
      const out: Array<{ start: number; length: number; ms: number; snapped: boolean }> = []
      const minLen = 4096 * g
      for (let v = 0; v < views; v++) {
        let start = 0
        let length = L
        if (v > 0) {
          length = Math.max(minLen, Math.floor(L * 2 ** (-rng.float() * Math.log2(L / minLen))))
          start = rng.int(L - length + 1)
        }
        let end = start + length
        let snapped = false
        let cells = 4096
        const t = performance.now()
        if (how === 'snapped') ({ start, end, cells, snapped } = heatRequest({ start, end }, 4096, g))
        await heatmap(r, start, end, cells)
        out.push({ start, length: end - start, ms: performance.now() - t, snapped })
      }
      return out
    }
    const zoom = await zoomSet(seed, 'exact')
    const zSnappedAll = await zoomSet(seed + 2, 'snapped')
    const zSnapped = zSnappedAll.map((z) => z.ms)
    const zms = zoom.map((z) => z.ms)
    const mem = process.memoryUsage()
    return {
      bytes, dirtyBytes: dirty,
      readMs, intoMs, fullMs, scanMs, heatMs,
      readMedianMs: median(readMs), intoMedianMs: median(intoMs), fullMedianMs: median(fullMs),
      readMBps: bytes / 1e6 / (median(readMs) / 1000), intoMBps: bytes / 1e6 / (median(intoMs) / 1000), scanMBps: bytes / 1e6 / (median(fullMs) / 1000),
      zoom: { views, medianMs: median(zms), maxMs: max(zms), slowest: zoom.slice().sort((a, c) => c.ms - a.ms).slice(0, 5) },
      zoomSnapped: {
        medianMs: median(zSnapped), maxMs: max(zSnapped), snappedViews: zSnappedAll.filter((z) => z.snapped).length,
        slowest: zSnappedAll.slice().sort((a, c) => c.ms - a.ms).slice(0, 5),
      },
      maxRssKiB: process.resourceUsage().maxRSS, rssNow: mem.rss,
    }
  } finally {
    dev.close()
  }
}

/** Dirty extents of a bitmap inside [start, start + length), clipped, as [offset, length] pairs. */
async function extents(path: string, name: string, start: number, length: number): Promise<unknown> {
  return withReader(path, name, async (r) => (await extentsInRange(r, start, start + length)).map((e) => [e.offset, e.length]))
}

/** Run `fn` on a reader of bitmap `name` of the image at `path`, then close the file. */
async function withReader<T>(path: string, name: string, fn: (r: BitmapReader) => Promise<T>): Promise<T> {
  const dev = NodeFileDevice.open(path)
  try {
    const img = await openImage(dev)
    const b = findBitmap(img, name)
    if (!b) throw new Error(`no bitmap ${name}`)
    return await fn(new BitmapReader(dev, b, img.header.diskLength, img.header.clusterSize))
  } finally {
    dev.close()
  }
}

/** One cold pass of qbm map's work (see the header): ms from the open, and the bytes formatted. */
async function mapPart(path: string, name: string, part: string): Promise<{ ms: number; bytes: number }> {
  const t = performance.now()
  return withReader(path, name, async (r) => {
    let bytes = 0
    if (part === 'runs') {
      for await (const x of r.runBatches()) bytes += x.length
    } else {
      const out = part === 'devnull' ? fdSink(openSync('/dev/null', 'w')) : undefined
      const sink = async (d: Uint8Array): Promise<boolean> => { bytes += d.length; return out ? out(d) : true }
      const w = new MapWriter(true, false, 10, r.granularity, r.diskLength, sink)
      w.start()
      for await (const x of r.runBatches()) await w.batch(x)
      await w.finish()
    }
    return { ms: performance.now() - t, bytes }
  })
}

async function main(): Promise<void> {
  const [cmd, ...a] = process.argv.slice(2)
  let out: unknown
  if (cmd === 'describe') out = await describe(a[0]!, Number(a[1] ?? 7))
  else if (cmd === 'scan') out = await scan(a[0]!, a[1]!, Number(a[2] ?? 3), Number(a[3] ?? 50), Number(a[4] ?? 1))
  else if (cmd === 'extents') out = await extents(a[0]!, a[1]!, Number(a[2]), Number(a[3]))
  else if (cmd === 'map-part') out = await mapPart(a[0]!, a[1]!, a[2]!)
  else throw new Error(`inproc: unknown command ${cmd}`)
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((e: unknown) => {
  process.stderr.write(`inproc: ${(e as Error).stack ?? String(e)}\n`)
  process.exit(1)
})
