/**
 * The host part of the store, when `qbm serve` served the page: what the host serves, the
 * overview of every image under its PATHs (refreshed on demand, checked row by row in the
 * background), and which row to open. In the browser (`hostInfo()` is null) it stays empty.
 * Wired into createAppStore; opening (open.ts) and jobs (jobs.ts) are other slices'.
 */
import type { EngineClient, HostInfo, HostOverview, OverviewRow } from '../../session/api.js'
import { needsAttention } from '../../session/overview.js'

export interface HostState {
  /** the host that served the page; null in the browser (or before hostInfo answered) */
  host: HostInfo | null
  overview: HostOverview | null
  /** the overview is being (re)built */
  overviewLoading: boolean
  /** show only the rows that need attention */
  attentionOnly: boolean
  /** ids whose check is running */
  checking: string[]
}

export interface HostActions {
  /** Ask the engine what host it runs on; loads the overview when there is one. */
  loadHost(): Promise<void>
  refreshOverview(): Promise<void>
  setAttentionOnly(on: boolean): void
  /** Run the image check on one row now. */
  checkRow(id: string): Promise<void>
  /** Open one row's image in the image view. */
  openHostImage(id: string): Promise<void>
  /** Leave the image view for the overview (its row is read again: it may have been edited). */
  showOverview(): Promise<void>
}

export const initialHost = (): HostState => ({ host: null, overview: null, overviewLoading: false, attentionOnly: false, checking: [] })

/** The rows the table shows. */
export function visibleRows(s: Pick<HostState, 'overview' | 'attentionOnly'>): OverviewRow[] {
  const rows = s.overview?.rows ?? []
  return s.attentionOnly ? rows.filter(needsAttention) : rows
}

interface HostDeps {
  get(): HostState & { image: unknown }
  set(p: Partial<HostState>): void
  client: EngineClient
  startJob(label: string): { id: number; signal: AbortSignal; progress: (d: number, t: number) => void }
  endJob(id: number): void
  fail(context: string, e: unknown): void
  isAbort(e: unknown): boolean
  openHost(id: string, name: string): Promise<void>
  closeImage(): Promise<void>
  /** the catalog id of the image shown, when it came from the host */
  shownHostId(): string | undefined
}

export function createHost(d: HostDeps): HostActions {
  /** rows still to check in the background, in table order */
  let queue: string[] = []
  let draining = false

  function patchRow(id: string, patch: Partial<OverviewRow>): void {
    const ov = d.get().overview
    if (!ov) return
    d.set({ overview: { ...ov, rows: ov.rows.map((r) => (r.id === id ? { ...r, ...patch } : r)) } })
  }

  async function check(id: string): Promise<void> {
    if (d.get().checking.includes(id)) return
    d.set({ checking: [...d.get().checking, id] })
    try {
      const res = await d.client.hostCheck(id)
      patchRow(id, { check: res })
    } catch (e) {
      if (!d.isAbort(e)) patchRow(id, { check: { status: 'failed', corruptions: 0, leaks: 0, checkErrors: 1, message: (e as Error).message } })
    } finally {
      d.set({ checking: d.get().checking.filter((x) => x !== id) })
    }
  }

  /** Check the rows lazily, one at a time, while the overview is on screen. */
  async function drain(): Promise<void> {
    if (draining) return
    draining = true
    try {
      while (queue.length > 0 && d.get().image === null) {
        const id = queue.shift()!
        const row = d.get().overview?.rows.find((r) => r.id === id)
        if (row && row.check === null && row.error === null && !row.holder) await check(id)
      }
    } finally {
      draining = false
    }
  }

  const actions: HostActions = {
    async loadHost() {
      try {
        const host = await d.client.hostInfo()
        d.set({ host })
        if (host) await actions.refreshOverview()
      } catch (e) {
        d.fail('Connecting to the host', e)
      }
    },

    async refreshOverview() {
      if (d.get().overviewLoading) return
      d.set({ overviewLoading: true })
      const job = d.startJob('Scanning the images on the host')
      try {
        const overview = await d.client.hostOverview((done, total) => job.progress(done, total), job.signal)
        d.set({ overview })
        queue = overview.rows.map((r) => r.id)
        void drain()
      } catch (e) {
        if (!d.isAbort(e)) d.fail('Scanning the images on the host', e)
      } finally {
        d.endJob(job.id)
        d.set({ overviewLoading: false })
      }
    },

    setAttentionOnly(on) {
      d.set({ attentionOnly: on })
    },

    async checkRow(id) {
      queue = queue.filter((x) => x !== id)
      await check(id)
    },

    async openHostImage(id) {
      const row = d.get().overview?.rows.find((r) => r.id === id)
      await d.openHost(id, row?.path ?? id)
    },

    async showOverview() {
      const id = d.shownHostId()
      await d.closeImage()
      if (id !== undefined) {
        try {
          const fresh = await d.client.hostOverview(undefined, undefined, [id])
          const row = fresh.rows[0]
          if (row) patchRow(id, row)
          queue.unshift(id)
        } catch (e) {
          if (!d.isAbort(e)) d.fail('Reading the image again', e)
        }
      }
      void drain()
    },
  }
  return actions
}
