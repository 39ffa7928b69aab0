/**
 * The engine in a dedicated worker, exposed with Comlink. It builds the BlockDevice from what
 * the page sends (a File, a FileSystemFileHandle or the demo's URL), so image bytes never
 * reach the main thread. Errors leave as plain ErrorInfo objects (Comlink would keep only an
 * Error's name and message).
 */
import * as Comlink from 'comlink'
import {
  type AbortSignalLike, type BlockDevice, type Checkpoint, type Edit, type Extent, type Image, type Plan,
  AbortError, AllocationMap, ConstraintError, DeviceError, bitmapSha256, cellBoundaries, combineExtents, commitPlan,
  crossCheck, extentPage, extentsInRange, heatmap, heatmapFromExtents, openImage, parseCheckpointXml, planEdits,
  planRepair, splitByAllocation, toErrorInfo,
} from '../engine/index.js'
// Not (yet) on the engine's public surface; the CLI imports them the same way.
import { describeImage, readable, readerFor } from '../engine/describe.js'
import type { BitmapReader } from '../engine/qcow2/bitmaps/data.js'
import { BlobDevice } from '../io/blob.js'
import { FileHandleDevice } from '../io/file-handle.js'
import { patchedBlob, planWritesInOrder } from '../io/patched-blob.js'
import { WritableStreamDevice } from '../io/writable-stream.js'
import { extentIndexAt, extentWindowOf } from './extent-index.js'
import { ExtentStore } from './extent-store.js'
import { overlayCells } from './overlay.js'
import type {
  CheckpointView, EditRequest, EngineApi, Estimate, ExportFormat, ImageEntry, OpenResult, OpenSetResult, OpenSource,
  OverlayResult, PlanReview, ProgressFn, ScanResult, SplitRow,
} from './api.js'

/** At most one progress message per this many milliseconds (each is a postMessage). */
const PROGRESS_INTERVAL_MS = 50

interface Session {
  /** id in the open set */
  id: number
  name: string
  source: OpenSource
  device: BlockDevice & { close?: () => void }
  /** the file as opened: what plans are made from, and what an edited copy is built on */
  original: Blob
  image: Image
  readers: Map<number, BitmapReader>
  plans: Map<number, Plan>
  /** the allocation map through the open backing chain, built on first use */
  alloc?: Promise<ChainMap>
  result: OpenResult
}

interface ChainMap {
  map: AllocationMap
  layerNames: string[]
  backingMissing?: string
}

/** the open images; `session` is the current one */
let sessions: Session[] = []
let session: Session | undefined
let planSeq = 0
let algebraSeq = 0
const algebraResults = new Map<number, ExtentStore>()
/** longest backing chain followed through the open images */
const MAX_CHAIN = 16
const jobs = new Map<number, { aborted: boolean }>()

function signalFor(jobId: number | undefined): AbortSignalLike | undefined {
  if (jobId === undefined) return undefined
  let s = jobs.get(jobId)
  if (!s) { s = { aborted: false }; jobs.set(jobId, s) }
  return s
}

/** Run `fn`, converting any error to plain ErrorInfo and forgetting the job afterwards. */
async function guard<T>(jobId: number | undefined, fn: (signal: AbortSignalLike | undefined) => Promise<T>): Promise<T> {
  const signal = signalFor(jobId)
  try {
    return await fn(signal)
  } catch (e) {
    throw toErrorInfo(e)
  } finally {
    if (jobId !== undefined) jobs.delete(jobId)
  }
}

function current(): Session {
  if (!session) throw new Error('no image is open')
  return session
}

function reader(bitmapIndex: number, s: Session = current()): BitmapReader {
  const b = s.image.bitmaps.find((x) => x.index === bitmapIndex)
  if (!b) throw new Error(`no bitmap number ${bitmapIndex}`)
  if (!readable(b)) throw new Error(`bitmap '${b.name}' cannot be read: ${b.problems[0] ?? 'it has no usable bitmap table'}`)
  return readerFor(s.image, b, s.readers)
}

/** A progress callback that posts at most every PROGRESS_INTERVAL_MS, and always the last call. */
function throttled(fn: ProgressFn | undefined): ProgressFn | undefined {
  if (!fn) return undefined
  let last = 0
  return (done, total) => {
    const now = performance.now()
    if (done >= total || now - last >= PROGRESS_INTERVAL_MS) {
      last = now
      void Promise.resolve(fn(done, total)).catch(() => undefined)
    }
  }
}

function release(fn: unknown): void {
  const r = fn as { [Comlink.releaseProxy]?: () => void } | undefined
  r?.[Comlink.releaseProxy]?.()
}

async function deviceFor(source: OpenSource): Promise<{ device: Session['device']; original: Blob; name: string }> {
  switch (source.kind) {
    case 'file':
      return { device: new BlobDevice(source.file), original: source.file, name: source.file.name }
    case 'handle': {
      const device = await FileHandleDevice.open(source.handle)
      return { device, original: device.file!, name: source.handle.name }
    }
    case 'url': {
      const res = await fetch(source.url)
      if (!res.ok) throw new Error(`could not load ${source.name}: HTTP ${res.status}`)
      const blob = await res.blob()
      return { device: new BlobDevice(blob), original: blob, name: source.name }
    }
  }
}

/** Open `source` and describe it (metadata only). */
async function openOne(id: number, source: OpenSource, signal?: AbortSignalLike): Promise<Session> {
  const { device, original, name } = await deviceFor(source)
  try {
    const image = await openImage(device, signal ? { signal } : {})
    const readers = new Map<number, BitmapReader>()
    const summary = await describeImage(image, { counts: false, readers, ...(signal ? { signal } : {}) })
    return { id, name, source, device, original, image, readers, plans: new Map(), result: { name, writable: source.kind === 'handle', summary } }
  } catch (e) {
    device.close?.()
    throw e
  }
}

/** Open `source` alone; it becomes the current session. */
async function openSession(source: OpenSource, signal?: AbortSignalLike): Promise<OpenResult> {
  closeSession()
  const s = await openOne(1, source, signal)
  sessions = [s]
  session = s
  return s.result
}

function baseName(p: string): string {
  return p.split(/[\\/]/).pop() ?? p
}

/** The open image that is `s`'s backing file (matched by file name). */
function backingOf(s: Session): Session | undefined {
  const bf = s.image.backingFile
  if (bf === undefined) return undefined
  const want = baseName(bf)
  return sessions.find((x) => x !== s && x.name === want)
}

/** `s` and its backing files among the open images, top first. */
function chainOf(s: Session): { layers: Session[]; backingMissing?: string } {
  const layers = [s]
  for (;;) {
    const top = layers[layers.length - 1]!
    const bf = top.image.backingFile
    if (bf === undefined) return { layers }
    const next = backingOf(top)
    if (!next || layers.includes(next) || layers.length >= MAX_CHAIN) return { layers, backingMissing: bf }
    layers.push(next)
  }
}

function allocationOf(s: Session): Promise<ChainMap> {
  if (!s.alloc) {
    s.alloc = (async () => {
      const { layers, backingMissing } = chainOf(s)
      let m: AllocationMap | undefined
      for (let i = layers.length - 1; i >= 0; i--) m = await AllocationMap.open(layers[i]!.image, m)
      return { map: m!, layerNames: layers.map((l) => l.name), ...(backingMissing !== undefined ? { backingMissing } : {}) }
    })()
    s.alloc.catch(() => { s.alloc = undefined })
  }
  return s.alloc
}

function sessionById(id: number): Session {
  const s = sessions.find((x) => x.id === id)
  if (!s) throw new Error(`image ${id} is not open (it was closed or reopened)`)
  return s
}

/** Dirty extents of a bitmap meeting [from, to), clipped, streamed in pages. */
async function* dirtyIn(r: BitmapReader, from: number, to: number, signal?: AbortSignalLike): AsyncGenerator<Extent> {
  const limit = 65536
  let cursor = from
  for (;;) {
    const page = await extentsInRange(r, cursor, to, limit, signal)
    yield* page
    if (page.length < limit) return
    const last = page[page.length - 1]!
    cursor = last.offset + last.length
  }
}

async function* one(e: Extent): AsyncGenerator<Extent> {
  yield e
}

function algebraResult(id: number): ExtentStore {
  const r = algebraResults.get(id)
  if (!r) throw new Error('this comparison is gone (the image was reopened): compute it again')
  return r
}

/** An edit request as the engine's Edit: a merge source in another open image becomes that Image. */
function toEdit(e: EditRequest): Edit {
  if (e.op === 'merge' && e.sourceImageId !== undefined) {
    const src = sessionById(e.sourceImageId)
    if (src === current()) return { op: 'merge', name: e.name, source: e.source }
    return { op: 'merge', name: e.name, source: e.source, sourceImage: src.image }
  }
  if (e.op === 'merge') return { op: 'merge', name: e.name, source: e.source }
  if (e.op === 'set-ranges') {
    const st = algebraResult(e.algebraId)
    const ranges = new Float64Array(2 * st.count)
    for (let i = 0; i < st.count; i++) {
      const x = st.at(i)
      ranges[2 * i] = x.offset
      ranges[2 * i + 1] = x.offset + x.length
    }
    return { op: 'set-ranges', name: e.name, ranges, what: e.what }
  }
  return e
}

/** Cross-check checkpoints against the open images, per disk. */
function checkpointView(cps: Array<{ cp: Checkpoint; file: string }>, errors: CheckpointView['errors']): CheckpointView {
  const list = cps.map((x) => x.cp)
  const disks = new Map<string, string | undefined>()
  for (const cp of list) for (const d of cp.disks) if (!disks.has(d.name) || d.source) disks.set(d.name, d.source ?? disks.get(d.name))
  const withBitmaps = [...new Set(list.flatMap((c) => c.disks.filter((d) => d.checkpoint === 'bitmap').map((d) => d.name)))]
  const out: CheckpointView['disks'] = []
  for (const [disk, source] of disks) {
    if (!withBitmaps.includes(disk)) continue
    let img: Session | undefined
    let matchedBy: 'source' | 'only-disk' | null = null
    if (source) {
      img = sessions.find((s) => s.name === baseName(source))
      if (img) matchedBy = 'source'
    }
    if (!img && withBitmaps.length === 1 && session) {
      img = session
      matchedBy = 'only-disk'
    }
    const rep = img ? crossCheck(img.image, list, disk) : undefined
    out.push({
      disk,
      ...(source ? { source } : {}),
      imageId: img?.id ?? null,
      imageName: img?.name ?? null,
      matchedBy,
      findings: rep
        ? rep.findings.map((f) => ({ checkpoint: f.checkpoint, bitmap: f.bitmap, state: f.state, fix: f.fix }))
        : list.flatMap((cp) => cp.disks.filter((d) => d.name === disk && d.checkpoint === 'bitmap' && d.bitmap).map((d) => ({
          checkpoint: cp.name, bitmap: d.bitmap!, state: 'missing' as const, fix: 'no open image is this disk: open its qcow2 file together with the others to check it',
        }))),
      orphans: rep ? rep.orphans : [],
    })
  }
  return {
    errors,
    checkpoints: cps.map(({ cp, file }) => ({ name: cp.name, file, ...(cp.parent ? { parent: cp.parent } : {}), ...(cp.creationTime !== undefined ? { creationTime: cp.creationTime } : {}) })),
    disks: out,
  }
}

function planOf(planId: number): Plan {
  const p = current().plans.get(planId)
  if (!p) throw new Error('this plan is gone (the image was reopened); review the changes again')
  return p
}

function csvOf(rows: Extent[]): string {
  let s = ''
  for (const x of rows) s += `${x.offset},${x.length},${x.offset + x.length}\n`
  return s
}

const api: EngineApi = {
  open(source, jobId) {
    return guard(jobId, (signal) => openSession(source, signal))
  },

  openSet(sources, jobId) {
    return guard(jobId, async (signal) => {
      closeSession()
      const opened: Session[] = []
      try {
        for (let i = 0; i < sources.length; i++) opened.push(await openOne(i + 1, sources[i]!, signal))
      } catch (e) {
        for (const s of opened) s.device.close?.()
        throw e
      }
      sessions = opened
      // The current image: the top of the longest chain (ties: the first given).
      let best = opened[0]!
      let bestLen = 0
      for (const s of opened) {
        if (opened.some((o) => o !== s && backingOf(o) === s)) continue // something is on top of it
        const n = chainOf(s).layers.length
        if (n > bestLen) { best = s; bestLen = n }
      }
      session = best
      const images: ImageEntry[] = opened.map((s) => ({ id: s.id, backingId: backingOf(s)?.id ?? null, result: s.result }))
      const res: OpenSetResult = { images, activeId: best.id }
      return res
    })
  },

  activate(imageId) {
    return guard(undefined, async () => {
      session = sessionById(imageId)
      return session.result
    })
  },

  scan(bitmapIndex, onProgress, jobId) {
    return guard(jobId, async (signal) => {
      try {
        const r = reader(bitmapIndex)
        const p = throttled(onProgress)
        await r.scan({ ...(signal ? { signal } : {}), ...(p ? { onProgress: p } : {}) })
        p?.(r.dataBytesToRead, r.dataBytesToRead)
        const result: ScanResult = { bitmapIndex, dirtyBytes: r.dirtyBytes, extentCount: r.runCount }
        return result
      } finally {
        release(onProgress)
      }
    })
  },

  heatmap(bitmapIndex, start, end, cells, jobId) {
    return guard(jobId, async (signal) => {
      const counts = await heatmap(reader(bitmapIndex), start, end, cells, signal)
      return Comlink.transfer(counts, [counts.buffer])
    })
  },

  extentPage(bitmapIndex, first, count) {
    return guard(undefined, () => extentPage(reader(bitmapIndex), first, count))
  },

  extentIndex(bitmapIndex, offset) {
    return guard(undefined, () => extentIndexAt(reader(bitmapIndex), offset))
  },

  extentWindow(bitmapIndex, from, to) {
    return guard(undefined, () => extentWindowOf(reader(bitmapIndex), from, to))
  },

  extentsInRange(bitmapIndex, from, to, limit) {
    return guard(undefined, () => extentsInRange(reader(bitmapIndex), from, to, limit))
  },

  exportExtents(bitmapIndex, format: ExportFormat, from, to, jobId) {
    return guard(jobId, async (signal) => {
      const r = reader(bitmapIndex)
      await r.scan(signal ? { signal } : {})
      const lo = from ?? 0
      const hi = to ?? r.diskLength
      const b = current().image.bitmaps.find((x) => x.index === bitmapIndex)!
      const parts: string[] = [format === 'csv'
        ? 'offset,length,end\n'
        : `{\n  "bitmap": ${JSON.stringify(b.name)},\n  "granularity": ${b.granularity},\n  "diskLength": ${r.diskLength},\n  "from": ${lo},\n  "to": ${hi},\n  "extents": [`]
      // extentsInRange clips the first and last extent to [lo, hi), as the export says.
      const limit = 65536
      let n = 0
      let cursor = lo
      for (;;) {
        if (signal?.aborted) throw new AbortError()
        const page = await extentsInRange(r, cursor, hi, limit, signal)
        if (format === 'csv') parts.push(csvOf(page))
        else {
          let s = ''
          for (const x of page) s += `${n++ > 0 ? ',' : ''}\n    {"offset": ${x.offset}, "length": ${x.length}}`
          parts.push(s)
        }
        if (page.length < limit) break
        const last = page[page.length - 1]!
        cursor = last.offset + last.length
      }
      if (format === 'json') parts.push(`${n > 0 ? '\n  ' : ''}]\n}\n`)
      return new Blob(parts, { type: format === 'csv' ? 'text/csv' : 'application/json' })
    })
  },

  sha256(bitmapIndex, onProgress, jobId) {
    return guard(jobId, async (signal) => {
      try {
        const p = throttled(onProgress)
        return await bitmapSha256(reader(bitmapIndex), { ...(signal ? { signal } : {}), ...(p ? { onProgress: p } : {}) })
      } finally {
        release(onProgress)
      }
    })
  },

  overlay(bitmapIndex, start, end, cells, jobId) {
    return guard(jobId, async (signal) => {
      const s = current()
      const r = reader(bitmapIndex, s)
      await r.scan(signal ? { signal } : {})
      const chain = await allocationOf(s)
      const lo = Math.max(0, start)
      const hi = Math.min(end, s.image.header.diskLength)
      const b = cellBoundaries(start, end, cells)
      const o = await overlayCells(chain.map.runs(lo, hi, signal), dirtyIn(r, lo, hi, signal), b, signal)
      const res: OverlayResult = { ...o, layerNames: chain.layerNames, ...(chain.backingMissing !== undefined ? { backingMissing: chain.backingMissing } : {}) }
      return Comlink.transfer(res, [o.dirtyData.buffer, o.dirtyZero.buffer, o.dirtyUnallocated.buffer, o.cleanData.buffer, ...o.layers.map((l) => l.buffer)])
    })
  },

  extentSplits(bitmapIndex, first, count, jobId) {
    return guard(jobId, async (signal) => {
      const s = current()
      const r = reader(bitmapIndex, s)
      const rows = await extentPage(r, first, count)
      const { map } = await allocationOf(s)
      const out: SplitRow[] = []
      for (const e of rows) {
        const x = await splitByAllocation(map, one(e), signal)
        out.push({ data: x.data, zero: x.zero, unallocated: x.unallocated })
      }
      return out
    })
  },

  estimate(bitmapIndex, jobId) {
    return guard(jobId, async (signal) => {
      const s = current()
      const r = reader(bitmapIndex, s)
      await r.scan(signal ? { signal } : {})
      const chain = await allocationOf(s)
      const x = await splitByAllocation(chain.map, dirtyIn(r, 0, r.diskLength, signal), signal)
      const res: Estimate = {
        bitmapIndex, dirtyBytes: x.dirty, dataBytes: x.data, zeroBytes: x.zero, unallocatedBytes: x.unallocated,
        layerNames: chain.layerNames, ...(chain.backingMissing !== undefined ? { backingMissing: chain.backingMissing } : {}),
      }
      return res
    })
  },

  algebra(a, b, op, jobId) {
    return guard(jobId, async (signal) => {
      const sa = sessionById(a.image)
      const sb = sessionById(b.image)
      if (sa.image.header.diskLength !== sb.image.header.diskLength) {
        throw new ConstraintError(`the images differ in size (${sa.image.header.diskLength} vs ${sb.image.header.diskLength} bytes): bitmaps can only be combined over disks of one size`)
      }
      const ra = reader(a.bitmap, sa)
      const rb = reader(b.bitmap, sb)
      await ra.scan(signal ? { signal } : {})
      await rb.scan(signal ? { signal } : {})
      const L = ra.diskLength
      const store = await ExtentStore.from(combineExtents(dirtyIn(ra, 0, L, signal), dirtyIn(rb, 0, L, signal), op), signal)
      const id = ++algebraSeq
      algebraResults.set(id, store)
      return { id, extentCount: store.count, dirtyBytes: store.totalBytes }
    })
  },

  algebraHeat(resultId, start, end, cells) {
    return guard(undefined, async () => {
      const st = algebraResult(resultId)
      const counts = await heatmapFromExtents(st.between(start, end), start, end, cells, cellBoundaries(start, end, cells))
      return Comlink.transfer(counts, [counts.buffer])
    })
  },

  algebraPage(resultId, first, count) {
    return guard(undefined, async () => algebraResult(resultId).page(first, count))
  },

  algebraWindow(resultId, from, to) {
    return guard(undefined, async () => algebraResult(resultId).window(from, to))
  },

  async dropAlgebra(resultId) {
    algebraResults.delete(resultId)
  },

  checkpoints(files) {
    return guard(undefined, async () => {
      const errors: CheckpointView['errors'] = []
      const cps: Array<{ cp: Checkpoint; file: string }> = []
      for (const f of files) {
        try {
          cps.push({ cp: parseCheckpointXml(f.text), file: f.name })
        } catch (e) {
          errors.push({ file: f.name, message: (e as Error).message })
        }
      }
      return checkpointView(cps, errors)
    })
  },

  planEdits(request, jobId) {
    return guard(jobId, async (signal) => {
      const s = current()
      // Planning runs the image check first (an image that fails it is refused): cancellable.
      const opts = signal ? { signal } : {}
      const plan = request.repair
        ? await planRepair(s.image, request.repair, opts)
        : await planEdits(s.image, request.edits.map(toEdit), { force: request.force === true, ...opts })
      const planId = ++planSeq
      s.plans.set(planId, plan)
      const writes = planWritesInOrder(plan)
      const review: PlanReview = {
        planId,
        summary: plan.summary,
        warnings: plan.warnings,
        allocatedClusters: plan.allocatedClusters,
        freedClusters: plan.freedClusters,
        writeCount: writes.length,
        writeBytes: writes.reduce((n, w) => n + w.data.length, 0),
        result: plan.result,
        fileSize: s.image.fileSize,
      }
      return review
    })
  },

  commitPlan(planId, onProgress) {
    return guard(undefined, async () => {
      try {
        const s = current()
        const plan = planOf(planId)
        if (s.source.kind !== 'handle') {
          throw new ConstraintError('this image was opened as a plain file, which the browser gives read-only: download an edited copy instead')
        }
        const dev = s.device
        if (dev instanceof FileHandleDevice && !(await dev.unchanged())) {
          throw new DeviceError(`'${s.source.handle.name}' changed on disk since it was opened; nothing was written. Reopen it and stage the changes again.`)
        }
        // createWritable copies the whole file into <name>.crswap before the first write.
        void Promise.resolve(onProgress?.(0, 0, 'copying')).catch(() => undefined)
        const out = await WritableStreamDevice.open(s.source.handle)
        try {
          const p = onProgress
          await commitPlan(out, plan, p ? { onProgress: (d, t, step) => { void Promise.resolve(p(d, t, step)).catch(() => undefined) } } : {})
          await out.close()
        } catch (e) {
          // Nothing reached the file: the swap copy is thrown away.
          await out.abort().catch(() => undefined)
          throw e
        }
        // Reopen the written file in its place in the open set; the others stay.
        const fresh = await openOne(s.id, s.source)
        s.device.close?.()
        sessions = sessions.map((x) => (x === s ? fresh : x))
        for (const x of sessions) x.alloc = undefined
        session = fresh
        return fresh.result
      } finally {
        release(onProgress)
      }
    })
  },

  editedCopy(planId) {
    return guard(undefined, async () => patchedBlob(current().original, planOf(planId)))
  },

  async dropPlan(planId) {
    session?.plans.delete(planId)
  },

  async cancel(jobId) {
    const s = jobs.get(jobId)
    if (s) s.aborted = true
  },

  async close() {
    closeSession()
  },
}

function closeSession(): void {
  for (const s of sessions) s.device.close?.()
  sessions = []
  session = undefined
  algebraResults.clear()
}

Comlink.expose(api)
