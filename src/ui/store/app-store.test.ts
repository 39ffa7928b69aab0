import { describe, expect, it, vi } from 'vitest'
import type {
  AlgebraResult, BitmapRef, BitmapSummary, CheckpointFile, CheckpointView, CommitProgressFn, EngineClient, Estimate, Extent,
  ExtentWindow, HeatmapPreview, ImageSummary, OpenResult, OpenSetResult, OpenSource, OverlayResult, PlanRequest, PlanReview, ProgressFn,
  ScanResult, SetOp, SplitRow,
} from '../../session/api.js'
import { ConstraintError, toErrorInfo } from '../../engine/index.js'
import { cellsFor } from '../heatmap/geometry.js'
import type { RecentEntry, RecentFiles } from '../recent.js'
import { EXTENT_PAGE, createAppStore, type AppStore } from './app-store.js'
import { sortedBitmaps } from './selectors.js'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

function bitmap(index: number, name: string, over: Partial<BitmapSummary> = {}): BitmapSummary {
  return {
    index, name, granularity: 65536, flags: ['auto'], flagsRaw: 2, type: 1, enabled: true, status: 'ok',
    problems: [], warnings: [], tableOffset: 0x50000 + index * 0x10000, tableSize: 1, expectedTableSize: 1,
    entryOffset: 0x40000 + index * 32, dirtyBytes: null, extentCount: null, dataBytes: 65536, ...over,
  }
}

function summary(bitmaps: BitmapSummary[], diskLength = 1 * GiB): ImageSummary {
  return {
    fileSize: 10 * MiB, virtualSize: diskLength, diskLength, clusterSize: 65536, version: 3, refcountBits: 16,
    compressionType: 'zlib', features: { incompatible: [], compatible: [], autoclear: ['bitmaps'] },
    warnings: [], qemuRefuses: [], bitmaps,
  }
}

const abortInfo = { code: 'AbortError', message: 'operation cancelled' }

/** A deferred promise the test settles by hand. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((a, b) => { resolve = a; reject = b })
  return { promise, resolve, reject }
}

/**
 * A fake EngineClient: every bitmap has `dirty[index]` bytes in extents of 64 KiB every 1 MiB.
 * Scans wait for `release(index)` when `manualScans` is set, and honour the AbortSignal.
 */
class FakeClient implements EngineClient {
  calls: string[] = []
  scanGates = new Map<number, ReturnType<typeof deferred<void>>>()
  manualScans = false
  openResult: OpenResult | Error = { name: 'disk.qcow2', writable: false, writeMode: 'copy', summary: summary([bitmap(0, 'b0'), bitmap(1, 'b1', { enabled: false, flags: [] }), bitmap(2, 'stale', { status: 'in-use', flags: ['in-use', 'auto'] })]) }
  extentCount: Record<number, number> = { 0: 3, 1: 0, 2: 7 }
  heatGate: ReturnType<typeof deferred<void>> | undefined

  async open(source: OpenSource, signal?: AbortSignal): Promise<OpenResult> {
    this.calls.push(`open ${source.kind}`)
    if (signal?.aborted) throw { info: abortInfo }
    if (this.openResult instanceof Error) throw this.openResult
    return this.openResult
  }

  async scan(i: number, onProgress?: ProgressFn, signal?: AbortSignal): Promise<ScanResult> {
    this.calls.push(`scan ${i}`)
    onProgress?.(0, 100)
    if (this.manualScans) {
      const gate = deferred<void>()
      this.scanGates.set(i, gate)
      signal?.addEventListener('abort', () => gate.reject({ info: abortInfo }))
      await gate.promise
    }
    onProgress?.(100, 100)
    const n = this.extentCount[i] ?? 0
    return { bitmapIndex: i, dirtyBytes: n * 65536, extentCount: n }
  }

  release(i: number): void {
    this.scanGates.get(i)?.resolve()
  }

  async heatmap(i: number, start: number, end: number, cells: number): Promise<Float64Array> {
    this.calls.push(`heatmap ${i} ${start} ${end} ${cells}`)
    if (this.heatGate) await this.heatGate.promise
    const out = new Float64Array(cells)
    out[0] = 65536
    return out
  }

  async heatmapPreview(i: number, start: number, end: number, cells: number): Promise<HeatmapPreview> {
    this.calls.push(`preview ${i} ${start} ${end} ${cells}`)
    return { counts: new Float64Array(cells).fill(NaN), complete: false }
  }

  async extentPage(i: number, first: number, count: number): Promise<Extent[]> {
    this.calls.push(`page ${i} ${first}`)
    const n = this.extentCount[i] ?? 0
    const out: Extent[] = []
    for (let k = first; k < Math.min(n, first + count); k++) out.push({ offset: k * MiB, length: 65536 })
    return out
  }

  async extentIndex(): Promise<number> {
    return 0
  }

  async extentWindow(i: number, from: number, to: number): Promise<ExtentWindow> {
    this.calls.push(`window ${i} ${from} ${to}`)
    const n = this.extentCount[i] ?? 0
    const first = Math.min(n, Math.ceil(Math.max(0, from - 65535) / MiB))
    const last = Math.min(n, Math.ceil(to / MiB))
    return { first, count: Math.max(0, last - first) }
  }

  async extentsInRange(): Promise<Extent[]> {
    return []
  }

  async exportExtents(i: number, format: 'csv' | 'json', from?: number, to?: number): Promise<Blob> {
    this.calls.push(`export ${i} ${format} ${from ?? '-'} ${to ?? '-'}`)
    return new Blob(['offset,length,end\n'])
  }

  async sha256(i: number): Promise<string> {
    return `sha-of-${i}`
  }

  async hostInfo(): Promise<null> {
    return null
  }

  async hostOverview(): Promise<never> {
    throw new Error('no host in this fake')
  }

  async hostCheck(): Promise<never> {
    throw new Error('no host in this fake')
  }

  requests: PlanRequest[] = []
  planError: unknown
  commitError: unknown
  afterCommit: OpenResult | undefined

  async planEdits(req: PlanRequest): Promise<PlanReview> {
    this.calls.push(`plan ${req.force ? 'force' : ''}`)
    this.requests.push(req)
    if (this.planError && !req.force) throw this.planError
    return {
      planId: this.requests.length, summary: req.edits.map((e) => `${e.op} ${e.name}`), warnings: [],
      allocatedClusters: 2, freedClusters: 1, writeCount: 4, writeBytes: 3 * 65536 + 512,
      result: [{ name: 'b0', flags: ['auto'], granularity: 65536 }], fileSize: 10 * MiB, writeMode: 'copy',
    }
  }

  async commitPlan(planId: number, onProgress?: CommitProgressFn): Promise<OpenResult> {
    this.calls.push(`commit ${planId}`)
    onProgress?.(0, 0, 'copying')
    if (this.commitError) throw this.commitError
    onProgress?.(100, 100, 'bitmap table')
    return this.afterCommit ?? (this.openResult as OpenResult)
  }

  async editedCopy(planId: number): Promise<Blob> {
    this.calls.push(`copy ${planId}`)
    return new Blob(['QFI\xfb'])
  }

  async dropPlan(planId: number): Promise<void> {
    this.calls.push(`drop ${planId}`)
  }

  async close(): Promise<void> {
    this.calls.push('close')
  }

  dispose(): void {}

  // ---- analysis (issue 6) ----
  openSetResult: OpenSetResult | undefined
  async openSet(sources: OpenSource[]): Promise<OpenSetResult> {
    this.calls.push(`openSet ${sources.length}`)
    if (!this.openSetResult) throw new Error('no open set in this fake')
    return this.openSetResult
  }

  async activate(id: number): Promise<OpenResult> {
    this.calls.push(`activate ${id}`)
    const e = this.openSetResult?.images.find((x) => x.id === id)
    if (!e) throw new Error(`no image ${id}`)
    return e.result
  }

  async overlay(i: number, start: number, end: number, cells: number): Promise<OverlayResult> {
    this.calls.push(`overlay ${i} ${start} ${end} ${cells}`)
    const z = (): Float64Array => new Float64Array(cells)
    const dirtyData = z()
    dirtyData[0] = 4096
    return { dirtyData, dirtyZero: z(), dirtyUnallocated: z(), cleanData: z(), layers: [z()], layerNames: ['disk.qcow2'] }
  }

  async extentSplits(i: number, first: number, count: number): Promise<SplitRow[]> {
    this.calls.push(`split ${i} ${first}`)
    const n = Math.max(0, Math.min(count, (this.extentCount[i] ?? 0) - first))
    return Array.from({ length: n }, () => ({ data: 65536, zero: 0, unallocated: 0 }))
  }

  async estimate(i: number): Promise<Estimate> {
    this.calls.push(`estimate ${i}`)
    const d = (this.extentCount[i] ?? 0) * 65536
    return { bitmapIndex: i, dirtyBytes: d, dataBytes: d, zeroBytes: 0, unallocatedBytes: 0, layerNames: ['disk.qcow2'] }
  }

  algebraExtents: Extent[] = [{ offset: 0, length: 65536 }, { offset: 2 * MiB, length: 65536 }]
  async algebra(a: BitmapRef, b: BitmapRef, op: SetOp): Promise<AlgebraResult> {
    this.calls.push(`algebra ${a.image}:${a.bitmap} ${op} ${b.image}:${b.bitmap}`)
    return { id: 7, extentCount: this.algebraExtents.length, dirtyBytes: this.algebraExtents.reduce((n, e) => n + e.length, 0) }
  }

  async algebraHeat(id: number, start: number, end: number, cells: number): Promise<Float64Array> {
    this.calls.push(`alg-heat ${id} ${start} ${end} ${cells}`)
    return new Float64Array(cells)
  }

  async algebraPage(id: number, first: number, count: number): Promise<Extent[]> {
    this.calls.push(`alg-page ${id} ${first}`)
    return this.algebraExtents.slice(first, first + count)
  }

  async algebraWindow(id: number, from: number, to: number): Promise<ExtentWindow> {
    this.calls.push(`alg-window ${id} ${from} ${to}`)
    return { first: 0, count: this.algebraExtents.filter((e) => e.offset < to && e.offset + e.length > from).length }
  }

  async dropAlgebra(id: number): Promise<void> {
    this.calls.push(`alg-drop ${id}`)
  }

  async checkpoints(files: CheckpointFile[]): Promise<CheckpointView> {
    this.calls.push(`checkpoints ${files.length}`)
    return { errors: [], checkpoints: [], disks: [] }
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0))
}

function make(client = new FakeClient(), extra: Partial<Parameters<typeof createAppStore>[0]> = {}): { store: AppStore; client: FakeClient; marks: string[] } {
  const marks: string[] = []
  const store = createAppStore({
    client, mark: (n) => marks.push(n), measure: () => 42, ...extra,
  })
  return { store, client, marks }
}

const demo: OpenSource = { kind: 'url', url: 'http://127.0.0.1/demo.qcow2', name: 'demo.qcow2' }

describe('opening an image', () => {
  it('shows its bitmaps at once, selects the first and views the whole disk', async () => {
    const { store, client } = make()
    client.manualScans = true
    await store.getState().open(demo, 'demo')
    const s = store.getState()
    expect(s.image?.name).toBe('disk.qcow2')
    expect(s.image?.summary.bitmaps.map((b) => b.name)).toEqual(['b0', 'b1', 'stale'])
    expect(s.selected).toBe(0)
    expect(s.view).toEqual({ start: 0, end: 1 * GiB })
    expect(s.stats[0]?.scan.status).toBe('scanning')
    expect(s.stats[1]?.scan.status).toBe('idle')
  })

  it('scans the selected bitmap first, then the others one by one, recording dirty totals', async () => {
    const { store, client } = make()
    await store.getState().open(demo, 'demo')
    await settle()
    expect(client.calls.filter((c) => c.startsWith('scan'))).toEqual(['scan 0', 'scan 1', 'scan 2'])
    const st = store.getState().stats
    expect(st[0]?.scan).toEqual({ status: 'done', dirtyBytes: 3 * 65536, extentCount: 3 })
    expect(st[2]?.scan).toEqual({ status: 'done', dirtyBytes: 7 * 65536, extentCount: 7 })
    expect(store.getState().jobs).toEqual([])
  })

  it('reports progress of a running scan as a job', async () => {
    const { store, client } = make()
    client.manualScans = true
    await store.getState().open(demo, 'demo')
    await settle()
    const job = store.getState().jobs.find((j) => j.kind === 'scan')
    expect(job).toMatchObject({ label: "Reading bitmap 'b0'", doneBytes: 0, totalBytes: 100 })
    client.release(0)
    await settle()
    expect(store.getState().jobs.find((j) => j.label === "Reading bitmap 'b0'")).toBeUndefined()
  })

  it('keeps the engine error with its structure, field and offset when opening fails', async () => {
    const { store, client } = make()
    const info = { code: 'FormatError', message: 'header at 0x0: magic is wrong', structure: 'header', field: 'magic', offset: 0 }
    client.openResult = Object.assign(new Error(info.message), { info })
    await store.getState().open(demo, 'demo')
    const s = store.getState()
    expect(s.image).toBeNull()
    expect(s.opening).toBeNull()
    expect(s.error).toEqual({ context: 'Opening demo.qcow2', info })
  })

  it('drops results that arrive for an image that was replaced', async () => {
    const { store, client } = make()
    client.manualScans = true
    await store.getState().open(demo, 'demo')
    await settle()
    const second = summary([bitmap(0, 'other')], 2 * GiB)
    client.openResult = { name: 'second.qcow2', writable: true, writeMode: 'copy', summary: second }
    await store.getState().open({ kind: 'url', url: 'x', name: 'second.qcow2' }, 'demo')
    client.release(0) // the first image's scan of b0 finishing late (it was aborted)
    await settle()
    const s = store.getState()
    expect(s.image?.name).toBe('second.qcow2')
    expect(s.view).toEqual({ start: 0, end: 2 * GiB })
    expect(s.stats[1]).toBeUndefined()
  })
})

describe('heatmap', () => {
  it('asks for one cell per pixel of the whole disk once the selected bitmap is scanned', async () => {
    const { store, client } = make()
    store.getState().setHeatWidth(800)
    await store.getState().open(demo, 'demo')
    await settle()
    const h = store.getState().heat.primary
    expect(h?.bitmapIndex).toBe(0)
    expect(h?.cells).toBe(800)
    expect(h?.view).toEqual({ start: 0, end: 1 * GiB })
    expect(h?.forView).toEqual({ start: 0, end: 1 * GiB })
    expect(client.calls).toContain(`heatmap 0 0 ${1 * GiB} 800`)
  })

  it('asks for whole index blocks on a big bitmap, and keeps them while a pan stays inside them', async () => {
    const TiB = 1024 * GiB
    const client = new FakeClient()
    client.openResult = { name: 'big.qcow2', writable: false, writeMode: 'copy', summary: summary([bitmap(0, 'fine', { granularity: 512 })], 2 * TiB) }
    const { store } = make(client)
    store.getState().setHeatWidth(1440)
    await store.getState().open(demo, 'demo')
    await settle()
    const h = store.getState().heat.primary!
    const block = 4096 * 512
    expect(h.view.start).toBe(0)
    expect(h.view.end).toBeGreaterThanOrEqual(2 * TiB)
    expect(((h.view.end - h.view.start) / h.cells) % block).toBe(0)
    expect(h.forView).toEqual({ start: 0, end: 2 * TiB })
    const calls = client.calls.filter((c) => c.startsWith('heatmap')).length
    store.getState().zoom(0.5, 0)
    store.getState().pan(512) // less than a block: same cells
    await settle()
    const moved = client.calls.filter((c) => c.startsWith('heatmap')).length
    expect(moved).toBe(calls + 1) // the zoom fetched; the pan reused its cells
    expect(store.getState().heat.primary?.forView).toEqual(store.getState().view)
  })

  it('zooms around an anchor, pans, clamps at the disk ends and refetches', async () => {
    const { store, client } = make()
    store.getState().setHeatWidth(1000)
    await store.getState().open(demo, 'demo')
    await settle()
    store.getState().zoom(0.5, 0)
    expect(store.getState().view).toEqual({ start: 0, end: 512 * MiB })
    store.getState().pan(-100 * MiB)
    expect(store.getState().view).toEqual({ start: 0, end: 512 * MiB })
    store.getState().pan(1 * GiB)
    expect(store.getState().view).toEqual({ start: 512 * MiB, end: 1 * GiB })
    await settle()
    expect(store.getState().heat.primary?.view).toEqual({ start: 512 * MiB, end: 1 * GiB })
    store.getState().resetView()
    expect(store.getState().view).toEqual({ start: 0, end: 1 * GiB })
    void client
  })

  it('zooms down to single granules, where each cell is one granule', async () => {
    const { store } = make()
    store.getState().setHeatWidth(1000)
    await store.getState().open(demo, 'demo')
    await settle()
    for (let i = 0; i < 60; i++) store.getState().zoom(0.5, 300 * MiB)
    await settle()
    const s = store.getState()
    expect(s.view!.end - s.view!.start).toBe(8 * 65536)
    expect(s.heat.primary?.cells).toBe(8)
    expect(cellsFor(s.view!, 1000, 65536)).toBe(8)
  })

  it('keeps one request in flight per row and fetches only the latest view after it', async () => {
    const { store, client } = make()
    store.getState().setHeatWidth(500)
    await store.getState().open(demo, 'demo')
    await settle()
    client.heatGate = deferred<void>()
    for (let i = 0; i < 5; i++) store.getState().zoom(0.5)
    await settle()
    const before = client.calls.filter((c) => c.startsWith('heatmap')).length
    client.heatGate.resolve()
    await settle()
    const heatCalls = client.calls.filter((c) => c.startsWith('heatmap'))
    expect(heatCalls.length).toBe(before + 1)
    expect(store.getState().heat.primary?.forView).toEqual(store.getState().view)
  })

  it('stacks a compare bitmap sharing the same view', async () => {
    const { store } = make()
    await store.getState().open(demo, 'demo')
    await settle()
    store.getState().setCompare(2)
    store.getState().zoom(0.25, 0)
    await settle()
    const s = store.getState()
    expect(s.heat.compare?.bitmapIndex).toBe(2)
    expect(s.heat.compare?.view).toEqual(s.view)
    expect(s.heat.primary?.view).toEqual(s.view)
    store.getState().setCompare(null)
    expect(store.getState().heat.compare).toBeNull()
  })

  it('records drop-to-first-heatmap once per open', async () => {
    const { store, marks } = make()
    await store.getState().open(demo, 'demo')
    await settle()
    expect(store.getState().firstHeatPending).toBe(true)
    store.getState().markFirstHeatmap()
    store.getState().markFirstHeatmap()
    expect(marks.filter((m) => !m.startsWith('qbm:scan'))).toEqual(['qbm:open', 'qbm:first-heatmap'])
    expect(store.getState().firstHeatMs).toBe(42)
  })
})

describe('extents', () => {
  it('lists every extent at the whole-disk view and pages them from the worker once', async () => {
    const { store, client } = make()
    client.extentCount[0] = 600
    await store.getState().open(demo, 'demo')
    await settle()
    expect(store.getState().extents).toMatchObject({ bitmapIndex: 0, first: 0, count: 600 })
    store.getState().ensureExtents(0, 300)
    store.getState().ensureExtents(10, 20)
    await settle()
    expect(client.calls.filter((c) => c.startsWith('page'))).toEqual(['page 0 0', `page 0 ${EXTENT_PAGE}`])
    expect(store.getState().extentPages['0:1']?.[0]).toEqual({ offset: EXTENT_PAGE * MiB, length: 65536 })
  })

  it('follows the view in "in view" mode and lists all in "all" mode', async () => {
    const { store, client } = make()
    client.extentCount[0] = 600
    await store.getState().open(demo, 'demo')
    await settle()
    store.getState().setView({ start: 10 * MiB, end: 20 * MiB })
    await settle()
    expect(client.calls).toContain(`window 0 ${10 * MiB} ${20 * MiB}`)
    expect(store.getState().extents).toMatchObject({ mode: 'view', first: 10, count: 10 })
    store.getState().setExtentMode('all')
    await settle()
    expect(store.getState().extents).toMatchObject({ mode: 'all', first: 0, count: 600 })
  })

  it('zooms the heatmap to an extent picked in the list and highlights it', async () => {
    const { store } = make()
    await store.getState().open(demo, 'demo')
    await settle()
    const x = { offset: 100 * MiB, length: 64 * 1024 }
    store.getState().zoomToExtent(x)
    const s = store.getState()
    expect(s.focus).toEqual(x)
    expect(s.view!.start).toBeLessThanOrEqual(x.offset)
    expect(s.view!.end).toBeGreaterThanOrEqual(x.offset + x.length)
    expect(s.view!.end - s.view!.start).toBeLessThan(1 * MiB)
  })

  it('exports all extents or those in view through the worker', async () => {
    const { store, client } = make()
    await store.getState().open(demo, 'demo')
    await settle()
    store.getState().setView({ start: 0, end: 64 * MiB })
    expect(await store.getState().exportExtents('csv', 'all')).toBeInstanceOf(Blob)
    await store.getState().exportExtents('json', 'view')
    expect(client.calls).toContain('export 0 csv - -')
    expect(client.calls).toContain(`export 0 json 0 ${64 * MiB}`)
  })
})

describe('cancelling', () => {
  it('stops the running scan and the queue behind it; resuming picks them up again', async () => {
    const { store, client } = make()
    client.manualScans = true
    await store.getState().open(demo, 'demo')
    await settle()
    const job = store.getState().jobs.find((j) => j.kind === 'scan')!
    store.getState().cancelJob(job.id)
    await settle()
    let s = store.getState()
    expect(s.stats[0]?.scan.status).toBe('cancelled')
    expect(s.scansPaused).toBe(true)
    expect(client.calls.filter((c) => c.startsWith('scan'))).toEqual(['scan 0'])
    expect(s.jobs).toEqual([])
    client.manualScans = false
    store.getState().resumeScans()
    await settle()
    s = store.getState()
    expect(s.stats[0]?.scan.status).toBe('done')
    expect(s.stats[2]?.scan.status).toBe('done')
  })

  it('records a failed scan as an error on that bitmap only', async () => {
    const { store, client } = make()
    const orig = client.scan.bind(client)
    client.scan = vi.fn(async (i: number, p?: ProgressFn, sig?: AbortSignal) => {
      if (i === 1) throw { info: { code: 'Error', message: "bitmap 'b1' cannot be read" } }
      return orig(i, p, sig)
    })
    await store.getState().open(demo, 'demo')
    await settle()
    const st = store.getState().stats
    expect(st[1]?.scan).toEqual({ status: 'error', error: { code: 'Error', message: "bitmap 'b1' cannot be read" } })
    expect(st[2]?.scan.status).toBe('done')
    expect(store.getState().error).toBeNull()
  })
})

describe('reviewing and saving changes', () => {
  const handle = { kind: 'file', name: 'disk.qcow2' } as unknown as FileSystemFileHandle
  const viaHandle: OpenSource = { kind: 'handle', handle }

  it('plans every pending change in one request, in order, and shows the plan for review', async () => {
    const { store, client } = make()
    await store.getState().open(viaHandle, 'drop')
    store.getState().addPending({ op: 'add', name: 'new', disabled: true, granularity: 4096 })
    store.getState().addPending({ op: 'clear-in-use', name: 'stale', mode: 'dirty' })
    store.getState().addPending({ op: 'merge', name: 'b0', source: 'b1' })
    await store.getState().reviewChanges()
    expect(client.requests[0]).toEqual({
      force: false,
      edits: [
        { op: 'add', name: 'new', granularity: 4096, disabled: true },
        { op: 'clear-in-use', name: 'stale', mode: 'dirty' },
        { op: 'merge', name: 'b0', source: 'b1' },
      ],
    })
    expect(store.getState().review).toMatchObject({ status: 'ready', plan: { planId: 1, summary: ['add new', 'clear-in-use stale', 'merge b0'] } })
  })

  it('offers to plan again with force when the planner refuses because bitmaps are in use', async () => {
    const { store, client } = make()
    await store.getState().open(viaHandle, 'drop')
    // The engine's own refusal (the planner's words may change; the code is what the store reads).
    client.planError = { info: toErrorInfo(new ConstraintError('1 bitmap is in use (stale)', 'bitmaps-in-use')) }
    store.getState().addPending({ op: 'remove', name: 'b1' })
    await store.getState().reviewChanges()
    const r = store.getState().review
    expect(r).toMatchObject({ status: 'refused', needsForce: true, error: { code: 'bitmaps-in-use' } })
    // Another refusal with the same words but another code offers no force.
    client.planError = { info: toErrorInfo(new ConstraintError('1 bitmap is in use (stale)', 'image-check-failed')) }
    await store.getState().reviewChanges()
    expect(store.getState().review).toMatchObject({ status: 'refused', needsForce: false })
    client.planError = { info: toErrorInfo(new ConstraintError('1 bitmap is in use (stale)', 'bitmaps-in-use')) }
    await store.getState().reviewChanges()
    await store.getState().reviewChanges(true)
    expect(client.requests.at(-1)?.force).toBe(true)
    expect(store.getState().review?.status).toBe('ready')
  })

  it('writes after the permission is granted, then shows the reopened file and clears the changes', async () => {
    const { store, client } = make()
    await store.getState().open(viaHandle, 'drop')
    await settle()
    store.getState().select(2)
    store.getState().addPending({ op: 'remove', name: 'b1' })
    await store.getState().reviewChanges()
    client.afterCommit = { name: 'disk.qcow2', writable: true, writeMode: 'copy', summary: summary([bitmap(0, 'b0'), bitmap(1, 'stale')]) }
    const asked: FileSystemFileHandle[] = []
    const ok = await store.getState().writeToFile(async (h) => { asked.push(h); return true })
    expect(ok).toBe(true)
    expect(asked).toEqual([handle])
    const s = store.getState()
    expect(client.calls).toContain('commit 1')
    expect(s.pending).toEqual([])
    expect(s.review).toBeNull()
    expect(s.image?.summary.bitmaps.map((b) => b.name)).toEqual(['b0', 'stale'])
    expect(s.selected).toBe(1) // 'stale' is still selected, under its new index
    expect(s.notice).toMatch(/^Wrote 1 change to disk.qcow2/)
    await settle()
    expect(store.getState().stats[1]?.scan.status).toBe('done') // rescanned
  })

  it('writes nothing when the permission is refused, and keeps the review', async () => {
    const { store, client } = make()
    await store.getState().open(viaHandle, 'drop')
    store.getState().addPending({ op: 'clear', name: 'b0' })
    await store.getState().reviewChanges()
    expect(await store.getState().writeToFile(async () => false)).toBe(false)
    expect(client.calls.some((c) => c.startsWith('commit'))).toBe(false)
    expect(store.getState().error?.info.code).toBe('NotAllowedError')
    expect(store.getState().review?.status).toBe('ready')
    expect(store.getState().pending).toHaveLength(1)
  })

  it('refuses to write an image opened as a plain File, but builds an edited copy', async () => {
    const { store, client } = make()
    await store.getState().open(demo, 'demo')
    store.getState().addPending({ op: 'disable', name: 'b0' })
    await store.getState().reviewChanges()
    expect(await store.getState().writeToFile(async () => true)).toBe(false)
    expect(client.calls.some((c) => c.startsWith('commit'))).toBe(false)
    expect(await store.getState().editedCopy()).toBeInstanceOf(Blob)
    expect(client.calls).toContain('copy 1')
  })

  it('keeps the changes and reports the error when the commit fails', async () => {
    const { store, client } = make()
    await store.getState().open(viaHandle, 'drop')
    store.getState().addPending({ op: 'clear', name: 'b0' })
    await store.getState().reviewChanges()
    client.commitError = { info: { code: 'DeviceError', message: "'disk.qcow2' changed on disk since it was opened; nothing was written." } }
    expect(await store.getState().writeToFile(async () => true)).toBe(false)
    expect(store.getState().error).toMatchObject({ context: 'Writing disk.qcow2', info: { code: 'DeviceError' } })
    expect(store.getState().pending).toHaveLength(1)
    expect(store.getState().review?.status).toBe('ready')
    expect(store.getState().jobs).toEqual([])
  })

  it('drops the worker-side plan when the review is closed', async () => {
    const { store, client } = make()
    await store.getState().open(viaHandle, 'drop')
    store.getState().addPending({ op: 'clear', name: 'b0' })
    await store.getState().reviewChanges()
    store.getState().closeReview()
    expect(store.getState().review).toBeNull()
    expect(client.calls).toContain('drop 1')
  })
})

describe('table, SHA-256, pending changes and recent files', () => {
  it('sorts by dirty bytes, descending on the second click', async () => {
    const { store } = make()
    await store.getState().open(demo, 'demo')
    await settle()
    store.getState().setSort('dirty')
    expect(sortedBitmaps(store.getState()).map((b) => b.name)).toEqual(['b1', 'b0', 'stale'])
    store.getState().setSort('dirty')
    expect(sortedBitmaps(store.getState()).map((b) => b.name)).toEqual(['stale', 'b0', 'b1'])
  })

  it('computes a SHA-256 on demand', async () => {
    const { store } = make()
    await store.getState().open(demo, 'demo')
    await store.getState().computeSha(2)
    expect(store.getState().stats[2]).toMatchObject({ sha: 'done', sha256: 'sha-of-2' })
  })

  it('stages edits as a pending list and removes them one by one', () => {
    const { store } = make()
    store.getState().addPending({ op: 'remove', name: 'b1' })
    store.getState().addPending({ op: 'clear-in-use', name: 'stale', mode: 'dirty' })
    const [a, b] = store.getState().pending
    expect(a).toMatchObject({ op: 'remove', name: 'b1' })
    store.getState().removePending(a!.id)
    expect(store.getState().pending).toEqual([b])
    store.getState().clearPending()
    expect(store.getState().pending).toEqual([])
  })

  it('does not open a recent file whose permission was refused', async () => {
    const handle = { kind: 'file', name: 'old.qcow2' } as unknown as FileSystemFileHandle
    const entry: RecentEntry = { id: 'x', name: 'old.qcow2', openedAt: 1, handle }
    const recent: RecentFiles = { list: async () => [entry], add: async () => [entry], remove: async () => [] }
    const { store, client } = make(new FakeClient(), { recent })
    await store.getState().loadRecent()
    expect(store.getState().recent).toEqual([entry])
    await store.getState().openRecent(entry, async () => false)
    expect(client.calls).toEqual([])
    expect(store.getState().error?.info.code).toBe('NotAllowedError')
    await store.getState().openRecent(entry, async () => true)
    expect(client.calls[0]).toBe('open handle')
  })
})

describe('backup analysis (issue 6)', () => {
  it('fetches the overlay only in allocation mode, for the same cells as the heatmap, and the estimate after the first heatmap', async () => {
    const { store, client } = make()
    await store.getState().open(demo, 'demo')
    await settle()
    expect(client.calls.some((c) => c.startsWith('overlay'))).toBe(false)
    expect(client.calls).toContain('estimate 0')
    expect(store.getState().estimates[0]).toMatchObject({ status: 'done', estimate: { dirtyBytes: 3 * 65536 } })
    store.getState().setHeatMode('allocation')
    await settle()
    const heat = client.calls.filter((c) => c.startsWith('heatmap 0')).at(-1)!.split(' ').slice(2)
    const ov = client.calls.filter((c) => c.startsWith('overlay 0')).at(-1)!.split(' ').slice(2)
    expect(ov).toEqual(heat)
    expect(store.getState().overlay?.bitmapIndex).toBe(0)
    // zooming refetches the overlay for the new view
    const before = client.calls.filter((c) => c.startsWith('overlay')).length
    store.getState().zoom(0.25)
    await settle()
    expect(client.calls.filter((c) => c.startsWith('overlay')).length).toBe(before + 1)
    expect(store.getState().overlay?.forView).toEqual(store.getState().view)
  })

  it('annotates each extent page with its allocation split', async () => {
    const { store, client } = make()
    await store.getState().open(demo, 'demo')
    await settle()
    store.getState().ensureExtents(0, 2)
    await settle()
    expect(client.calls).toContain('split 0 0')
    expect(store.getState().extentSplits['0:0']).toHaveLength(3)
  })

  it('computes A op B in the worker, pages its extents, and stages a union as add + merge + merge', async () => {
    const { store, client } = make()
    await store.getState().open(demo, 'demo')
    await settle()
    await store.getState().runAlgebra({ image: 1, bitmap: 0 }, { image: 1, bitmap: 1 }, 'minus')
    await settle()
    let al = store.getState().algebra!
    expect(client.calls).toContain('algebra 1:0 minus 1:1')
    expect(al).toMatchObject({ status: 'done', aName: 'b0', bName: 'b1', result: { id: 7, extentCount: 2 } })
    expect(al.heat?.forView).toEqual(store.getState().view)
    expect(al.window).toEqual({ first: 0, count: 2 }) // the whole disk is in view
    store.getState().ensureAlgebraExtents(0, 1)
    await settle()
    expect(store.getState().algebra!.pages[0]).toEqual(client.algebraExtents)
    // not a union: add + set the result's granules (qbm's own edit), by the result's id
    expect(store.getState().stageAlgebraSave('x')).toBe(true)
    expect(store.getState().pending.map((p) => p.op)).toEqual(['add', 'set-ranges'])
    expect(store.getState().pending[1]).toMatchObject({ op: 'set-ranges', name: 'x', resultId: 7, what: 'b0 ∖ b1' })
    store.getState().clearPending()
    await store.getState().runAlgebra({ image: 1, bitmap: 0 }, { image: 1, bitmap: 1 }, 'union')
    await settle()
    expect(client.calls).toContain('alg-drop 7') // the previous result is forgotten in the worker
    expect(store.getState().stageAlgebraSave('both')).toBe(true)
    expect(store.getState().pending.map((p) => p.op)).toEqual(['add', 'merge', 'merge'])
    expect(store.getState().pending[0]).toMatchObject({ op: 'add', name: 'both', granularity: 65536 })
    expect(store.getState().pending[1]).toMatchObject({ op: 'merge', source: 'b0', name: 'both' })
    expect(store.getState().pending[2]).toMatchObject({ op: 'merge', source: 'b1', name: 'both' })
    store.getState().closeAlgebra()
    al = store.getState().algebra!
    expect(al).toBeNull()
  })

  it('opens several images, shows the active one and switches between them', async () => {
    const { store, client } = make()
    const base = { name: 'base.qcow2', writable: false, writeMode: 'copy' as const, summary: summary([bitmap(0, 'base-bm')]) }
    const top = { name: 'top.qcow2', writable: false, writeMode: 'copy' as const, summary: { ...summary([bitmap(0, 'top-bm')]), backingFile: 'base.qcow2' } }
    client.openSetResult = { images: [{ id: 1, backingId: null, result: base }, { id: 2, backingId: 1, result: top }], activeId: 2 }
    const file = (n: string): OpenSource => ({ kind: 'file', file: new File([], n) })
    await store.getState().openMany([file('base.qcow2'), file('top.qcow2')], 'drop')
    await settle()
    expect(client.calls[0]).toBe('openSet 2')
    expect(store.getState().image?.name).toBe('top.qcow2')
    expect(store.getState().activeImageId).toBe(2)
    expect(store.getState().images).toHaveLength(2)
    await store.getState().activateImage(1)
    await settle()
    expect(client.calls).toContain('activate 1')
    expect(store.getState().image?.name).toBe('base.qcow2')
    expect(store.getState().image?.summary.bitmaps[0]?.name).toBe('base-bm')
    // a single file goes through the plain open
    await store.getState().openMany([file('one.qcow2')], 'drop')
    expect(client.calls).toContain('open file')
    expect(store.getState().images).toEqual([])
  })
})
