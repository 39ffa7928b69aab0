import { describe, expect, it } from 'vitest'
import type { CheckResult, EngineClient, HostOverview, OverviewRow } from '../../session/api.js'
import { type HostState, createHost, initialHost, visibleRows } from './host.js'

function row(id: string, patch: Partial<OverviewRow> = {}): OverviewRow {
  return {
    id, path: `/images/${id}.qcow2`, realPath: `/images/${id}.qcow2`, kind: 'file', fileSize: 1 << 20, virtualSize: 1 << 30,
    bitmapCount: 1, inUseCount: 0, maxDirtyPercent: 1, bitmaps: [], holder: null, holderText: null, check: null,
    checkpoints: [], checkpointMismatches: 0, warnings: [], error: null, ...patch,
  }
}

const clean: CheckResult = { status: 'clean', corruptions: 0, leaks: 0, checkErrors: 0 }

/** The slice over a plain state object and a client that answers from `rows`. */
function harness(rows: OverviewRow[]) {
  const state: HostState & { image: unknown } = { ...initialHost(), image: null }
  const calls: string[] = []
  const opened: string[] = []
  let shown: string | undefined
  const client = {
    async hostInfo() { return { hostname: 'hv1', writable: false, paths: ['/images'], version: '0' } },
    async hostOverview(_p?: unknown, _s?: unknown, ids?: string[]): Promise<HostOverview> {
      calls.push(`overview ${ids ? ids.join(',') : 'all'}`)
      return { rows: ids ? rows.filter((r) => ids.includes(r.id)) : rows, errors: [], scannedAt: 1 }
    },
    async hostCheck(id: string) { calls.push(`check ${id}`); return clean },
  } as unknown as EngineClient
  const actions = createHost({
    get: () => state, set: (p) => Object.assign(state, p), client,
    startJob: () => ({ id: 1, signal: new AbortController().signal, progress: () => undefined }),
    endJob: () => undefined, fail: (c, e) => { throw new Error(`${c}: ${String(e)}`) }, isAbort: () => false,
    openHost: async (id) => { opened.push(id); shown = id; state.image = {} },
    closeImage: async () => { shown = undefined; state.image = null },
    shownHostId: () => shown,
  })
  return { state, actions, calls, opened }
}

const settle = () => new Promise((r) => setTimeout(r, 10))

describe('host overview slice', () => {
  it('loads the host and its overview, then checks the rows one by one, skipping held and unreadable images', async () => {
    const h = harness([row('a'), row('held', { holder: { pid: 9, write: true, lockBytes: [100, 101] }, holderText: 'qemu-nbd (pid 9)' }), row('bad', { error: 'not qcow2' }), row('b')])
    await h.actions.loadHost()
    expect(h.state.host?.hostname).toBe('hv1')
    expect(h.state.overview?.rows).toHaveLength(4)
    await settle()
    expect(h.calls).toEqual(['overview all', 'check a', 'check b'])
    expect(h.state.overview?.rows.find((r) => r.id === 'a')?.check).toEqual(clean)
    expect(h.state.overview?.rows.find((r) => r.id === 'held')?.check).toBeNull()
  })

  it('filters to the rows that need attention', async () => {
    const h = harness([row('a'), row('inuse', { inUseCount: 1 }), row('cp', { checkpointMismatches: 2 }), row('ok')])
    await h.actions.loadHost()
    expect(visibleRows(h.state).map((r) => r.id)).toEqual(['a', 'inuse', 'cp', 'ok'])
    h.actions.setAttentionOnly(true)
    expect(visibleRows(h.state).map((r) => r.id)).toEqual(['inuse', 'cp'])
  })

  it('opens a row by its id, and reads that row again when going back to the overview', async () => {
    const rows = [row('a', { inUseCount: 2 })]
    const h = harness(rows)
    await h.actions.loadHost()
    await settle()
    await h.actions.openHostImage('a')
    expect(h.opened).toEqual(['a'])
    rows[0] = row('a', { inUseCount: 0 }) // edited while shown
    await h.actions.showOverview()
    await settle()
    expect(h.calls.slice(-2)).toEqual(['overview a', 'check a'])
    expect(h.state.overview?.rows[0]?.inUseCount).toBe(0)
  })
})
