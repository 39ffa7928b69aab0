import { describe, expect, it } from 'vitest'
import type { BitmapSummary, EngineClient, HeatmapPreview, ImageSummary, OpenResult, OverlayResult, ScanResult } from '../../session/api.js'
import { createAppStore, type AppStore } from './app-store.js'
import { currentMapGrid } from './map.js'


const TiB = 2 ** 40

function bitmap(index: number, name: string, over: Partial<BitmapSummary> = {}): BitmapSummary {
  return {
    index, name, granularity: 65536, flags: ['auto'], flagsRaw: 2, type: 1, enabled: true, status: 'ok',
    problems: [], warnings: [], tableOffset: 0x50000, tableSize: 1, expectedTableSize: 1,
    entryOffset: 0x40000, dirtyBytes: null, extentCount: null, dataBytes: 65536, ...over,
  }
}

function summary(diskLength: number): ImageSummary {
  return {
    fileSize: 1 << 20, virtualSize: diskLength, diskLength, clusterSize: 65536, version: 3, refcountBits: 16,
    compressionType: 'zlib', features: { incompatible: [], compatible: [], autoclear: ['bitmaps'] },
    warnings: [], qemuRefuses: [], bitmaps: [bitmap(0, 'a'), bitmap(1, 'b')],
  } as unknown as ImageSummary
}

/** Settle every pending promise callback. */
const flush = async (): Promise<void> => { for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0)) }

/**
 * A fake engine: scans wait for release() when asked to; heatmap counts each cell's bytes as
 * dirty up to `dirtyTo`; every call is logged. Calls the map does not make answer emptily.
 */
function fakeClient(disk: number): { client: EngineClient; calls: string[]; release: () => void; holdScans: (on: boolean) => void } {
  const calls: string[] = []
  let hold = false
  let gate: (() => void) | null = null
  const counts = (start: number, end: number, cells: number): Float64Array => {
    const out = new Float64Array(cells)
    const w = (end - start) / cells
    for (let i = 0; i < cells; i++) out[i] = start + i * w < disk / 2 ? w : 0
    return out
  }
  const base: Partial<EngineClient> = {
    async open(): Promise<OpenResult> { return { name: 'd.qcow2', writable: false, writeMode: 'copy', summary: summary(disk) } },
    async scan(i: number): Promise<ScanResult> {
      calls.push(`scan ${i}`)
      if (hold) await new Promise<void>((r) => { gate = r })
      return { bitmapIndex: i, dirtyBytes: disk / 2, extentCount: 1 }
    },
    async heatmap(i: number, start: number, end: number, cells: number): Promise<Float64Array> {
      calls.push(`heatmap ${i} ${start} ${end} ${cells}`)
      return counts(start, end, cells)
    },
    async heatmapPreview(i: number, start: number, end: number, cells: number): Promise<HeatmapPreview> {
      calls.push(`preview ${i} ${cells}`)
      const c = counts(start, end, cells)
      c.fill(NaN, cells >> 1)
      return { counts: c, complete: false }
    },
    async overlay(i: number, start: number, end: number, cells: number): Promise<OverlayResult> {
      calls.push(`overlay ${i} ${cells}`)
      const z = new Float64Array(cells)
      return { dirtyData: counts(start, end, cells), dirtyZero: z, dirtyUnallocated: z, cleanData: z, layers: [], layerNames: ['d.qcow2'] }
    },
    async extentWindow() { return { first: 0, count: 1 } },
    async extentPage() { return [] },
    async extentSplits() { return [] },
    async estimate(i: number) { return { bitmapIndex: i, dirtyBytes: 0, dataBytes: 0, zeroBytes: 0, unallocatedBytes: 0, layerNames: [] } },
    async close() { /* nothing */ },
  }
  const client = new Proxy(base, { get: (t, k) => (t as Record<string | symbol, unknown>)[k] ?? (async () => undefined) }) as EngineClient
  return { client, calls, release: () => { gate?.(); gate = null }, holdScans: (on) => { hold = on } }
}

async function openWith(disk: number, canvas = { width: 900, height: 300, minPx: 1 }): Promise<{ store: AppStore; f: ReturnType<typeof fakeClient> }> {
  const f = fakeClient(disk)
  const store = createAppStore({ client: f.client, mark: () => undefined, measure: () => null })
  store.getState().setMapCanvas(canvas)
  await store.getState().open({ kind: 'url', url: 'x', name: 'd.qcow2' }, 'demo')
  await flush()
  return { store, f }
}

describe('the map slice', () => {
  it('fits the whole disk once the pane is known and fetches the grid\'s cells after the scan', async () => {
    const { store, f } = await openWith(256 * TiB)
    const g = currentMapGrid(store.getState())!
    expect(g.start).toBe(0)
    expect(g.count * g.cellBytes).toBeGreaterThanOrEqual(256 * TiB)
    expect(g.cellBytes % (65536 * 4096)).toBe(0) // whole index blocks: no bitmap read
    const cells = store.getState().mapCells.primary!
    expect(cells).toMatchObject({ key: 'b0', start: 0, cellBytes: g.cellBytes, count: g.count, preview: false })
    expect(f.calls).toContain(`heatmap 0 0 ${g.count * g.cellBytes} ${g.count}`)
  })

  it('asks for one cell per index block first when the grid\'s cells are finer (no read), then the grid\'s', async () => {
    const { store, f } = await openWith(2 * TiB)
    const g = currentMapGrid(store.getState())!
    expect(g.cellBytes).toBeLessThan(65536 * 4096)
    // index-block cells: each (end - start) / cells = 4096 granules, ending at or past the disk
    const coarse = f.calls.findIndex((c) => {
      const [, , start, end, cells] = c.split(' ').map(Number)
      return c.startsWith('heatmap 0 ') && start === 0 && (end! - start!) / cells! === 65536 * 4096 && end! >= 2 * TiB
    })
    const fine = f.calls.indexOf(`heatmap 0 0 ${g.count * g.cellBytes} ${g.count}`)
    expect(coarse).toBeGreaterThanOrEqual(0)
    expect(fine).toBeGreaterThan(coarse)
    expect(store.getState().mapCells.primary).toMatchObject({ cellBytes: g.cellBytes, count: g.count })
  })

  it('shows a running scan\'s preview, then the exact cells when it ends', async () => {
    const f = fakeClient(256 * TiB)
    f.holdScans(true)
    const store = createAppStore({ client: f.client, mark: () => undefined, measure: () => null })
    store.getState().setMapCanvas({ width: 900, height: 300, minPx: 1 })
    void store.getState().open({ kind: 'url', url: 'x', name: 'd.qcow2' }, 'demo')
    await flush()
    expect(store.getState().stats[0]?.scan.status).toBe('scanning')
    expect(f.calls.some((c) => c.startsWith('preview 0'))).toBe(true)
    expect(store.getState().mapCells.primary?.preview).toBe(true)
    f.holdScans(false)
    f.release()
    await flush()
    expect(store.getState().mapCells.primary?.preview).toBe(false)
  })

  it('zooms towards single granules and back to the whole disk; a pan moves by whole rows', async () => {
    const { store } = await openWith(1 * TiB)
    const s = store.getState()
    const whole = s.mapView!
    for (let i = 0; i < 30; i++) store.getState().mapZoom(-1, 100, 100)
    expect(store.getState().mapView!.cellBytes).toBe(65536)
    const g = currentMapGrid(store.getState())!
    store.getState().mapPan(2)
    expect(store.getState().mapView!.start).toBe(g.start + 2 * g.cols * g.cellBytes)
    store.getState().mapReset()
    expect(store.getState().mapView).toEqual(whole)
  })

  it('asks for the dirty × allocation cells in that mode, and for the compared bitmap\'s cells', async () => {
    const { store, f } = await openWith(256 * TiB)
    store.getState().setHeatMode('allocation')
    await flush()
    expect(f.calls.some((c) => c.startsWith('overlay 0'))).toBe(true)
    expect(store.getState().mapCells.primary!.arrays).toHaveLength(4)
    store.getState().setCompare(1)
    await flush()
    expect(store.getState().mapCells.compare).toMatchObject({ key: 'b1', preview: false })
  })

  it('starts over on another image, keeping the pane size and the order', async () => {
    const { store } = await openWith(256 * TiB)
    store.getState().setMapOrder('hilbert')
    await flush()
    expect(currentMapGrid(store.getState())!.order).toBe('hilbert')
    await store.getState().open({ kind: 'url', url: 'y', name: 'e.qcow2' }, 'demo')
    await flush()
    expect(store.getState().mapOrder).toBe('hilbert')
    expect(store.getState().mapCanvas).toEqual({ width: 900, height: 300, minPx: 1 })
    expect(store.getState().mapCells.primary?.key).toBe('b0')
  })
})

