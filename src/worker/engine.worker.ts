/**
 * The engine in a dedicated worker, exposed with Comlink. It builds the BlockDevice from what
 * the page sends (a File, a FileSystemFileHandle or the demo's URL), so image bytes never
 * reach the main thread. Errors leave as plain ErrorInfo objects (Comlink would keep only an
 * Error's name and message).
 */
import * as Comlink from 'comlink'
import {
  type AbortSignalLike, type BlockDevice, type Extent, type Image, type Plan,
  AbortError, ConstraintError, DeviceError, bitmapSha256, commitPlan, extentPage, extentsInRange, heatmap, openImage,
  planEdits, planRepair, toErrorInfo,
} from '../engine/index.js'
// Not (yet) on the engine's public surface; the CLI imports them the same way.
import { describeImage, readable, readerFor } from '../engine/describe.js'
import type { BitmapReader } from '../engine/qcow2/bitmaps/data.js'
import { BlobDevice } from '../io/blob.js'
import { FileHandleDevice } from '../io/file-handle.js'
import { patchedBlob, planWritesInOrder } from '../io/patched-blob.js'
import { WritableStreamDevice } from '../io/writable-stream.js'
import { extentIndexAt, extentWindowOf } from './extent-index.js'
import type { EngineApi, ExportFormat, OpenResult, OpenSource, PlanReview, ProgressFn, ScanResult } from './api.js'

/** At most one progress message per this many milliseconds (each is a postMessage). */
const PROGRESS_INTERVAL_MS = 50

interface Session {
  source: OpenSource
  device: BlockDevice & { close?: () => void }
  /** the file as opened: what plans are made from, and what an edited copy is built on */
  original: Blob
  image: Image
  readers: Map<number, BitmapReader>
  plans: Map<number, Plan>
}

let session: Session | undefined
let planSeq = 0
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

function reader(bitmapIndex: number): BitmapReader {
  const s = current()
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

/** Open `source` and describe it (metadata only); becomes the current session. */
async function openSession(source: OpenSource, signal?: AbortSignalLike): Promise<OpenResult> {
  closeSession()
  const { device, original, name } = await deviceFor(source)
  const image = await openImage(device, signal ? { signal } : {})
  const readers = new Map<number, BitmapReader>()
  const summary = await describeImage(image, { counts: false, readers, ...(signal ? { signal } : {}) })
  session = { source, device, original, image, readers, plans: new Map() }
  return { name, writable: source.kind === 'handle', summary }
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

  planEdits(request, jobId) {
    return guard(jobId, async () => {
      const s = current()
      const plan = request.repair
        ? await planRepair(s.image, request.repair)
        : await planEdits(s.image, request.edits, { force: request.force === true })
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
        return await openSession(s.source)
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
  session?.device.close?.()
  session = undefined
}

Comlink.expose(api)
