/**
 * The engine session: the open images of one page (or one socket of `qbm serve`), their bitmap
 * readers, plans and comparisons, behind the one EngineApi. It owns no transport and no
 * platform: storage comes from a SessionHost, progress leaves through a sink. Unit-tested
 * directly (session.test.ts); the Web Worker and the server's WebSocket only carry it.
 */
import {
  type AbortSignalLike, type Extent, type Image, type Plan,
  type BitmapReader, AbortError, AllocationMap, ConstraintError, kindOf, readable, readerFor, bitmapSha256, cellBoundaries, combineExtents, describeImage,
  extentIndexAt, extentPage, extentWindow, extentsInRange, heatmap, heatmapFromExtents, heatmapSoFar, openImage, parseCheckpointXml, planEdits, planRepair,
  splitByAllocation, type Checkpoint, type EditSources,
} from '../engine/index.js'
import type {
  CheckpointView, EngineApi, Estimate, HeatmapPreview, HostInfo, ImageEntry, OpenResult, OpenSetResult, OpenSource,
  OverlayResult, PlanRequest, PlanReview, ScanResult, SplitRow,
} from './api.js'
import { checkpointView } from './checkpoint-view.js'
import { exportBytes } from './export.js'
import { ExtentStore } from './extent-store.js'
import type { OpenedSource, SessionHost } from './host.js'
import { JobRegistry, type ProgressSink } from './jobs.js'
import { overlayCells } from './overlay.js'

/** Longest backing chain followed. */
const MAX_CHAIN = 16
/** Most extents a comparison keeps (16 bytes each: 128 MiB). */
export const MAX_ALGEBRA_EXTENTS = 8_000_000

/** One open image. */
export interface OpenImage {
  /** id in the open set */
  id: number
  source: OpenSource
  opened: OpenedSource
  image: Image
  readers: Map<number, BitmapReader>
  plans: Map<number, Plan>
  /** the allocation map through the backing chain, built on first use */
  alloc?: Promise<ChainMap>
  result: OpenResult
  /** opened by the session itself to follow a backing chain (not shown) */
  hidden: boolean
}

interface ChainMap {
  map: AllocationMap
  layerNames: string[]
  backingMissing?: string
}

function baseName(p: string): string {
  return p.split(/[\\/]/).pop() ?? p
}

function sig(signal: AbortSignalLike | undefined): { signal?: AbortSignalLike } {
  return signal ? { signal } : {}
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

export class EngineSession implements EngineApi {
  private images: OpenImage[] = []
  private current: OpenImage | undefined
  private planSeq = 0
  private algebraSeq = 0
  private readonly algebraResults = new Map<number, ExtentStore>()
  private readonly jobs: JobRegistry

  constructor(private readonly host: SessionHost, progress: ProgressSink) {
    this.jobs = new JobRegistry(progress)
  }

  // ---- open images ---------------------------------------------------------------------------

  private cur(): OpenImage {
    if (!this.current) throw new Error('no image is open')
    return this.current
  }

  private byId(id: number): OpenImage {
    const s = this.images.find((x) => x.id === id && !x.hidden)
    if (!s) throw new Error(`image ${id} is not open (it was closed or reopened)`)
    return s
  }

  private reader(bitmapIndex: number, s: OpenImage = this.cur()): BitmapReader {
    const b = s.image.bitmaps.find((x) => x.index === bitmapIndex)
    if (!b) throw new Error(`no bitmap number ${bitmapIndex}`)
    if (!readable(b)) throw new Error(`bitmap '${b.name}' cannot be read: ${b.problems[0] ?? 'it has no usable bitmap table'}`)
    return readerFor(s.image, b, s.readers)
  }

  /** Open `source` and describe it (metadata only). */
  private async openOne(id: number, source: OpenSource, signal?: AbortSignalLike, hidden = false): Promise<OpenImage> {
    const opened = await this.host.open(source, signal)
    try {
      const image = await openImage(opened.device, sig(signal))
      await opened.afterOpen?.(image)
      const readers = new Map<number, BitmapReader>()
      const summary = await describeImage(image, { counts: false, readers, ...sig(signal) })
      const result: OpenResult = {
        name: opened.name,
        writable: opened.writable,
        writeMode: opened.writeMode,
        ...(opened.readOnlyReason !== undefined ? { readOnlyReason: opened.readOnlyReason } : {}),
        ...(opened.heldBy ? { heldBy: opened.heldBy } : {}),
        summary,
      }
      return { id, source, opened, image, readers, plans: new Map(), result, hidden }
    } catch (e) {
      opened.device.close?.()
      throw e
    }
  }

  private closeAll(): void {
    for (const s of this.images) s.opened.device.close?.()
    this.images = []
    this.current = undefined
    this.algebraResults.clear()
  }

  /** The open image that is `s`'s backing file: by file name among the open set, else as the host resolves it. */
  private async backingOf(s: OpenImage, open: boolean): Promise<OpenImage | undefined> {
    const bf = s.image.backingFile
    if (bf === undefined) return undefined
    const want = baseName(bf)
    const shown = this.images.find((x) => x !== s && !x.hidden && x.opened.fileName === want)
    if (shown) return shown
    const src = this.host.resolveBacking?.(s.source, bf)
    if (!src) return undefined
    const key = JSON.stringify(src)
    const known = this.images.find((x) => x !== s && JSON.stringify(x.source) === key)
    if (known || !open) return known
    const hidden = await this.openOne(-(this.images.length + 1), src, undefined, true)
    this.images.push(hidden)
    return hidden
  }

  /** `s` and its backing files, top first. */
  private async chainOf(s: OpenImage, open: boolean): Promise<{ layers: OpenImage[]; backingMissing?: string }> {
    const layers = [s]
    for (;;) {
      const top = layers[layers.length - 1]!
      const bf = top.image.backingFile
      if (bf === undefined) return { layers }
      const next = await this.backingOf(top, open)
      if (!next || layers.includes(next) || layers.length >= MAX_CHAIN) return { layers, backingMissing: bf }
      layers.push(next)
    }
  }

  private allocationOf(s: OpenImage): Promise<ChainMap> {
    if (!s.alloc) {
      s.alloc = (async () => {
        const { layers, backingMissing } = await this.chainOf(s, true)
        let m: AllocationMap | undefined
        for (let i = layers.length - 1; i >= 0; i--) m = await AllocationMap.open(layers[i]!.image, m)
        return { map: m!, layerNames: layers.map((l) => l.opened.name), ...(backingMissing !== undefined ? { backingMissing } : {}) }
      })()
      s.alloc.catch(() => { s.alloc = undefined })
    }
    return s.alloc
  }

  private algebraResult(id: number): ExtentStore {
    const r = this.algebraResults.get(id)
    if (!r) throw new Error('this comparison is gone (the image was reopened): compute it again')
    return r
  }

  private planOf(planId: number): Plan {
    const p = this.cur().plans.get(planId)
    if (!p) throw new Error('this plan is gone (the image was reopened); review the changes again')
    return p
  }

  /** What the edits name by id: the open images (a merge's source) and the comparisons (set-ranges). */
  private editSources(): EditSources {
    return {
      image: (id) => this.byId(id).image,
      ranges: (id) => {
        const st = this.algebraResult(id)
        const ranges = new Float64Array(2 * st.count)
        for (let i = 0; i < st.count; i++) {
          const x = st.at(i)
          ranges[2 * i] = x.offset
          ranges[2 * i + 1] = x.offset + x.length
        }
        return ranges
      },
    }
  }

  // ---- EngineApi ----------------------------------------------------------------------------

  open(source: OpenSource, jobId?: number): Promise<OpenResult> {
    return this.jobs.run(jobId, async (signal) => {
      this.closeAll()
      const s = await this.openOne(1, source, signal)
      this.images = [s]
      this.current = s
      return s.result
    })
  }

  openSet(sources: OpenSource[], jobId?: number): Promise<OpenSetResult> {
    return this.jobs.run(jobId, async (signal) => {
      this.closeAll()
      const opened: OpenImage[] = []
      try {
        for (let i = 0; i < sources.length; i++) opened.push(await this.openOne(i + 1, sources[i]!, signal))
      } catch (e) {
        for (const s of opened) s.opened.device.close?.()
        throw e
      }
      this.images = opened
      // The current image: the top of the longest chain (ties: the first given).
      const backing = new Map<OpenImage, OpenImage | undefined>()
      for (const s of opened) backing.set(s, await this.backingOf(s, false))
      let best = opened[0]!
      let bestLen = 0
      for (const s of opened) {
        if (opened.some((o) => o !== s && backing.get(o) === s)) continue // something is on top of it
        const n = (await this.chainOf(s, false)).layers.length
        if (n > bestLen) { best = s; bestLen = n }
      }
      this.current = best
      const images: ImageEntry[] = opened.map((s) => ({ id: s.id, backingId: backing.get(s)?.id ?? null, result: s.result }))
      return { images, activeId: best.id }
    })
  }

  activate(imageId: number): Promise<OpenResult> {
    return this.jobs.run(undefined, async () => {
      this.current = this.byId(imageId)
      return this.current.result
    })
  }

  scan(bitmapIndex: number, jobId?: number): Promise<ScanResult> {
    return this.jobs.run(jobId, async (signal) => {
      const r = this.reader(bitmapIndex)
      const p = this.jobs.progress(jobId)
      await r.scan({ ...sig(signal), ...(p ? { onProgress: p } : {}) })
      p?.(r.dataBytesToRead, r.dataBytesToRead)
      return { bitmapIndex, dirtyBytes: r.dirtyBytes, extentCount: r.runCount }
    })
  }

  heatmap(bitmapIndex: number, start: number, end: number, cells: number, jobId?: number): Promise<Float64Array> {
    return this.jobs.run(jobId, (signal) => heatmap(this.reader(bitmapIndex), start, end, cells, signal))
  }

  heatmapPreview(bitmapIndex: number, start: number, end: number, cells: number): Promise<HeatmapPreview> {
    return this.jobs.run(undefined, async () => {
      const r = this.reader(bitmapIndex)
      if (r.scanned) return { counts: await heatmap(r, start, end, cells), complete: true }
      return { counts: heatmapSoFar(r, start, end, cells), complete: false }
    })
  }

  extentPage(bitmapIndex: number, first: number, count: number): Promise<Extent[]> {
    return this.jobs.run(undefined, () => extentPage(this.reader(bitmapIndex), first, count))
  }

  extentIndex(bitmapIndex: number, offset: number): Promise<number> {
    return this.jobs.run(undefined, () => extentIndexAt(this.reader(bitmapIndex), offset))
  }

  extentWindow(bitmapIndex: number, from: number, to: number): Promise<{ first: number; count: number }> {
    return this.jobs.run(undefined, () => extentWindow(this.reader(bitmapIndex), from, to))
  }

  extentsInRange(bitmapIndex: number, from: number, to: number, limit: number): Promise<Extent[]> {
    return this.jobs.run(undefined, () => extentsInRange(this.reader(bitmapIndex), from, to, limit))
  }

  exportExtents(bitmapIndex: number, format: 'csv' | 'json', from?: number, to?: number, jobId?: number): Promise<Uint8Array> {
    return this.jobs.run(jobId, async (signal) => {
      const r = this.reader(bitmapIndex)
      await r.scan(sig(signal))
      const b = this.cur().image.bitmaps.find((x) => x.index === bitmapIndex)!
      const lo = from ?? 0
      const hi = to ?? r.diskLength
      return exportBytes(format, { name: b.name, granularity: b.granularity, diskLength: r.diskLength, from: lo, to: hi }, dirtyIn(r, lo, hi, signal), signal)
    })
  }

  sha256(bitmapIndex: number, jobId?: number): Promise<string> {
    return this.jobs.run(jobId, (signal) => {
      const p = this.jobs.progress(jobId)
      return bitmapSha256(this.reader(bitmapIndex), { ...sig(signal), ...(p ? { onProgress: p } : {}) })
    })
  }

  overlay(bitmapIndex: number, start: number, end: number, cells: number, jobId?: number): Promise<OverlayResult> {
    return this.jobs.run(jobId, async (signal) => {
      const s = this.cur()
      const r = this.reader(bitmapIndex, s)
      await r.scan(sig(signal))
      const chain = await this.allocationOf(s)
      const lo = Math.max(0, start)
      const hi = Math.min(end, s.image.header.diskLength)
      const b = cellBoundaries(start, end, cells)
      const o = await overlayCells(chain.map.runs(lo, hi, signal), dirtyIn(r, lo, hi, signal), b, signal)
      return { ...o, layerNames: chain.layerNames, ...(chain.backingMissing !== undefined ? { backingMissing: chain.backingMissing } : {}) }
    })
  }

  extentSplits(bitmapIndex: number, first: number, count: number, jobId?: number): Promise<SplitRow[]> {
    return this.jobs.run(jobId, async (signal) => {
      const s = this.cur()
      const rows = await extentPage(this.reader(bitmapIndex, s), first, count)
      const { map } = await this.allocationOf(s)
      // One sweep over the allocation runs under the page, not one walk per extent: on a sparse
      // 256 TiB disk each walk merged unallocated runs to the disk's end (seconds per page).
      const out: SplitRow[] = rows.map(() => ({ data: 0, zero: 0, unallocated: 0 }))
      if (rows.length === 0) return out
      const last = rows[rows.length - 1]!
      let k = 0
      for await (const r of map.runs(rows[0]!.offset, last.offset + last.length, signal)) {
        const end = r.start + r.length
        const kind = kindOf(r)
        while (k < rows.length && rows[k]!.offset + rows[k]!.length <= r.start) k++
        for (let j = k; j < rows.length && rows[j]!.offset < end; j++) {
          const e = rows[j]!
          const overlap = Math.min(end, e.offset + e.length) - Math.max(r.start, e.offset)
          if (overlap > 0) out[j]![kind] += overlap
        }
      }
      return out
    })
  }

  estimate(bitmapIndex: number, jobId?: number): Promise<Estimate> {
    return this.jobs.run(jobId, async (signal) => {
      const s = this.cur()
      const r = this.reader(bitmapIndex, s)
      await r.scan(sig(signal))
      const chain = await this.allocationOf(s)
      const x = await splitByAllocation(chain.map, dirtyIn(r, 0, r.diskLength, signal), signal)
      return {
        bitmapIndex, dirtyBytes: x.dirty, dataBytes: x.data, zeroBytes: x.zero, unallocatedBytes: x.unallocated,
        layerNames: chain.layerNames, ...(chain.backingMissing !== undefined ? { backingMissing: chain.backingMissing } : {}),
      }
    })
  }

  algebra(a: { image: number; bitmap: number }, b: { image: number; bitmap: number }, op: 'union' | 'intersect' | 'minus' | 'xor', jobId?: number) {
    return this.jobs.run(jobId, async (signal) => {
      const sa = this.byId(a.image)
      const sb = this.byId(b.image)
      if (sa.image.header.diskLength !== sb.image.header.diskLength) {
        throw new ConstraintError(`the images differ in size (${sa.image.header.diskLength} vs ${sb.image.header.diskLength} bytes): bitmaps can only be combined over disks of one size`)
      }
      const ra = this.reader(a.bitmap, sa)
      const rb = this.reader(b.bitmap, sb)
      await ra.scan(sig(signal))
      await rb.scan(sig(signal))
      const L = ra.diskLength
      const store = await ExtentStore.from(combineExtents(dirtyIn(ra, 0, L, signal), dirtyIn(rb, 0, L, signal), op), signal, MAX_ALGEBRA_EXTENTS)
      const id = ++this.algebraSeq
      this.algebraResults.set(id, store)
      return { id, extentCount: store.count, dirtyBytes: store.totalBytes }
    })
  }

  algebraHeat(resultId: number, start: number, end: number, cells: number): Promise<Float64Array> {
    return this.jobs.run(undefined, () => {
      const st = this.algebraResult(resultId)
      return heatmapFromExtents(st.between(start, end), start, end, cells, cellBoundaries(start, end, cells))
    })
  }

  algebraPage(resultId: number, first: number, count: number): Promise<Extent[]> {
    return this.jobs.run(undefined, async () => this.algebraResult(resultId).page(first, count))
  }

  algebraWindow(resultId: number, from: number, to: number): Promise<{ first: number; count: number }> {
    return this.jobs.run(undefined, async () => this.algebraResult(resultId).window(from, to))
  }

  async dropAlgebra(resultId: number): Promise<void> {
    this.algebraResults.delete(resultId)
  }

  checkpoints(files: Array<{ name: string; text: string }>): Promise<CheckpointView> {
    return this.jobs.run(undefined, async () => {
      const errors: CheckpointView['errors'] = []
      const cps: Array<{ cp: Checkpoint; file: string }> = []
      for (const f of files) {
        try {
          cps.push({ cp: parseCheckpointXml(f.text), file: f.name })
        } catch (e) {
          errors.push({ file: f.name, message: (e as Error).message })
        }
      }
      const shown = this.images.filter((s) => !s.hidden)
      const cur = this.current
      return checkpointView(cps, errors, shown.map((s) => ({ id: s.id, fileName: s.opened.fileName, name: s.opened.name, image: s.image })), cur && !cur.hidden ? cur.id : null)
    })
  }

  planEdits(request: PlanRequest, jobId?: number): Promise<PlanReview> {
    return this.jobs.run(jobId, async (signal) => {
      const refused = this.host.editsRefused?.()
      if (refused) throw new ConstraintError(refused)
      const s = this.cur()
      if (s.opened.editsRefused) throw new ConstraintError(s.opened.editsRefused)
      // Planning runs the image check first (an image that fails it is refused): cancellable.
      const p = this.jobs.progress(jobId)
      const opts = { ...sig(signal), ...(p ? { onProgress: p } : {}) }
      const plan = request.repair
        ? await planRepair(s.image, request.repair, opts)
        : await planEdits(s.image, request.edits, { force: request.force === true, sources: this.editSources(), ...opts })
      const planId = ++this.planSeq
      s.plans.set(planId, plan)
      const writes = [...plan.writes, plan.header, ...plan.frees]
      return {
        planId,
        summary: plan.summary,
        warnings: plan.warnings,
        allocatedClusters: plan.allocatedClusters,
        freedClusters: plan.freedClusters,
        writeCount: writes.length,
        writeBytes: writes.reduce((n, w) => n + w.data.length, 0),
        result: plan.result,
        fileSize: s.image.fileSize,
        writeMode: s.opened.writeMode,
      }
    })
  }

  commitPlan(planId: number, jobId?: number): Promise<OpenResult> {
    // The job id carries progress only: a commit is never cancelled.
    return this.jobs.run(undefined, async () => {
      const refused = this.host.editsRefused?.()
      if (refused) throw new ConstraintError(refused)
      const s = this.cur()
      const plan = this.planOf(planId)
      const p = this.jobs.progress(jobId)
      await this.host.commit(s.source, s.opened, plan, (d, t, step) => p?.(d, t, step))
      // Reopen the written file in its place in the open set; the others stay.
      const fresh = await this.openOne(s.id, s.source)
      s.opened.device.close?.()
      this.images = this.images.map((x) => (x === s ? fresh : x))
      for (const x of this.images) x.alloc = undefined
      this.current = fresh
      this.algebraResults.clear()
      return fresh.result
    })
  }

  editedCopy(planId: number): Promise<Blob> {
    return this.jobs.run(undefined, async () => {
      const s = this.cur()
      if (!this.host.editedCopy) throw new ConstraintError('edits are written in place here; there is no copy to download')
      return this.host.editedCopy(s.opened, this.planOf(planId))
    })
  }

  async dropPlan(planId: number): Promise<void> {
    this.current?.plans.delete(planId)
  }

  async cancel(jobId: number): Promise<void> {
    this.jobs.cancel(jobId)
  }

  async close(): Promise<void> {
    this.closeAll()
  }

  async hostInfo(): Promise<HostInfo | null> {
    return this.host.info?.() ?? null
  }

  hostOverview(jobId?: number, ids?: string[]) {
    return this.jobs.run(jobId, async (signal) => {
      if (!this.host.overview) throw new ConstraintError('there is no host overview here: the engine runs in the browser')
      const p = this.jobs.progress(jobId)
      return this.host.overview(signal, (d, t) => p?.(d, t), ids)
    })
  }

  hostCheck(id: string, jobId?: number) {
    return this.jobs.run(jobId, async (signal) => {
      if (!this.host.check) throw new ConstraintError('there is no host here: the engine runs in the browser')
      if (signal?.aborted) throw new AbortError()
      return this.host.check(id, signal)
    })
  }

  /** Cancel every job and close every image (the page went away). */
  dispose(): void {
    this.jobs.cancelAll()
    this.closeAll()
  }
}
