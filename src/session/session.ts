/**
 * The engine session: the open images of one page (or one socket of `qbm serve`), their bitmap
 * readers, plans and comparisons, behind the one EngineApi. It owns no transport and no
 * platform: storage comes from a SessionHost, progress leaves through a sink. Unit-tested
 * directly (session.test.ts); the Web Worker and the server's WebSocket only carry it.
 */
import {
  type AbortSignalLike, type Extent, type Plan,
  type BitmapReader, AbortError, ConstraintError, kindOf, readable, readerFor, bitmapSha256, cellBoundaries, combineExtents,
  extentIndexAt, extentPage, extentWindow, extentsInRange, heatmap, heatmapFromExtents, heatmapSoFar, parseCheckpointXml, planEdits, planRepair,
  splitByAllocation, type Checkpoint, type EditSources,
} from '../engine/index.js'
import type {
  CheckpointView, EngineApi, Estimate, HeatmapPreview, HostInfo, OpenResult, OpenSetResult, OpenSource,
  OverlayResult, PlanRequest, PlanReview, ScanResult, SplitRow,
} from './api.js'
import { checkpointView } from './checkpoint-view.js'
import { exportBytes } from './export.js'
import { ExtentStore } from './extent-store.js'
import type { SessionHost } from './host.js'
import { JobRegistry, type ProgressSink } from './jobs.js'
import { type OpenImage, OpenSet } from './open-set.js'
import { overlayCells } from './overlay.js'

/** Most extents a comparison keeps (16 bytes each: 128 MiB). */
export const MAX_ALGEBRA_EXTENTS = 8_000_000

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
  private readonly set: OpenSet
  private planSeq = 0
  private algebraSeq = 0
  private readonly algebraResults = new Map<number, ExtentStore>()
  private readonly jobs: JobRegistry

  constructor(private readonly host: SessionHost, progress: ProgressSink) {
    this.jobs = new JobRegistry(progress)
    this.set = new OpenSet(host)
  }

  private cur(): OpenImage {
    return this.set.cur()
  }

  private byId(id: number): OpenImage {
    return this.set.byId(id)
  }

  private closeAll(): void {
    this.set.closeAll()
    this.algebraResults.clear()
  }

  private reader(bitmapIndex: number, s: OpenImage = this.cur()): BitmapReader {
    const b = s.image.bitmaps.find((x) => x.index === bitmapIndex)
    if (!b) throw new Error(`no bitmap number ${bitmapIndex}`)
    if (!readable(b)) throw new Error(`bitmap '${b.name}' cannot be read: ${b.problems[0] ?? 'it has no usable bitmap table'}`)
    return readerFor(s.image, b, s.readers)
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
      return (await this.set.openOnly(source, signal)).result
    })
  }

  openSet(sources: OpenSource[], jobId?: number): Promise<OpenSetResult> {
    return this.jobs.run(jobId, async (signal) => {
      this.closeAll()
      return this.set.openMany(sources, signal)
    })
  }

  activate(imageId: number): Promise<OpenResult> {
    return this.jobs.run(undefined, async () => {
      return this.set.activate(imageId).result
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
      const chain = await this.set.allocationOf(s)
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
      const { map } = await this.set.allocationOf(s)
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
      const chain = await this.set.allocationOf(s)
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
      const shown = this.set.shown()
      const cur = this.set.currentOrUndefined()
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
      const fresh = await this.set.reopen(s)
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
    this.set.currentOrUndefined()?.plans.delete(planId)
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
