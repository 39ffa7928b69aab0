/**
 * The scans part of the app store: each bitmap's scan (read once, in the background, the
 * selected one first) and its SHA-256 on demand. A finished scan asks for the heatmap, the
 * extent list and the overlay of the bitmaps on screen.
 */
import type { ErrorInfo } from '../../session/api.js'
import type { StoreContext } from './context.js'
import { errorInfo, isAbort } from './errors.js'

/** Where a bitmap's scan is. */
export type ScanState =
  | { status: 'idle' }
  | { status: 'scanning' }
  | { status: 'done'; dirtyBytes: number; extentCount: number }
  | { status: 'cancelled' }
  | { status: 'error'; error: ErrorInfo }

/** What the page knows of a bitmap's data: its scan, its SHA-256. */
export interface BitmapStats {
  scan: ScanState
  sha256?: string
  sha: 'idle' | 'running' | 'done' | 'error'
}

/** The scan fields of the app state. */
export interface ScansState {
  stats: Record<number, BitmapStats>
  /** the background scan queue was stopped by Cancel */
  scansPaused: boolean
}

/** The scan actions. */
export interface ScansActions {
  scanBitmap(index: number): Promise<void>
  resumeScans(): void
  computeSha(index: number): Promise<void>
}

/** Nothing scanned. */
export const initialScans = (): ScansState => ({ stats: {}, scansPaused: false })

/** Around each bitmap scan: tests check the page stays responsive in between. */
const MARK_SCAN_START = 'qbm:scan-start'
const MARK_SCAN_END = 'qbm:scan-end'

/** The scan actions, and the queue (`runQueue`: scan what is left, one bitmap after another). */
export function createScans(ctx: StoreContext): { actions: ScansActions; runQueue: () => Promise<void> } {
  const { get, set, client } = ctx
  let scanLoop: Promise<void> | null = null
  let scanLoopGen = -1

  function setStats(index: number, patch: Partial<BitmapStats>): void {
    const cur = get().stats[index] ?? { scan: { status: 'idle' }, sha: 'idle' }
    set({ stats: { ...get().stats, [index]: { ...cur, ...patch } } })
  }

  /** Order in which bitmaps are scanned: the selected one, the compared one, then the rest. */
  function nextToScan(): number | null {
    const s = get()
    if (!s.image || s.scansPaused) return null
    const order = [s.selected, s.compare, ...s.image.summary.bitmaps.map((b) => b.index)]
    for (const i of order) {
      if (i === null) continue
      const st = s.stats[i]?.scan.status ?? 'idle'
      if (st === 'idle') return i
    }
    return null
  }

  /** Scan bitmaps one after another in the background until none is left (or Cancel). */
  function runQueue(): Promise<void> {
    // A loop for an older image stops at its next step; start ours after it.
    if (scanLoop) return scanLoopGen === ctx.generation() ? scanLoop : scanLoop.then(() => runQueue())
    const gen = ctx.generation()
    scanLoopGen = gen
    scanLoop = (async () => {
      try {
        for (let i = nextToScan(); i !== null && gen === ctx.generation(); i = nextToScan()) await doScan(i)
      } finally {
        scanLoop = null
      }
    })()
    return scanLoop
  }

  async function doScan(index: number): Promise<void> {
    const b = ctx.bitmap(index)
    if (!b) return
    const gen = ctx.generation()
    const { job, signal } = ctx.jobs.start('scan', `Reading bitmap '${b.name}'`)
    setStats(index, { scan: { status: 'scanning' } })
    ctx.mark(MARK_SCAN_START)
    try {
      const r = await client.scan(index, (d, t) => { if (gen === ctx.generation()) ctx.jobs.progress(job.id, d, t) }, signal)
      ctx.mark(MARK_SCAN_END)
      if (gen !== ctx.generation()) return
      setStats(index, { scan: { status: 'done', dirtyBytes: r.dirtyBytes, extentCount: r.extentCount } })
      if (get().selected === index || get().compare === index) {
        ctx.refresh.heat(get().selected === index ? 'primary' : 'compare')
        if (get().compare === index && get().selected === index) ctx.refresh.heat('compare')
        if (get().selected === index) { ctx.refresh.extents(); ctx.refresh.overlay() }
      }
    } catch (e) {
      if (gen !== ctx.generation()) return
      if (isAbort(e)) {
        setStats(index, { scan: { status: 'cancelled' } })
        set({ scansPaused: true })
      } else {
        setStats(index, { scan: { status: 'error', error: errorInfo(e) } })
      }
    } finally {
      ctx.jobs.end(job.id)
    }
  }

  const actions: ScansActions = {
    async scanBitmap(index) {
      const st = get().stats[index]?.scan.status
      if (st === 'scanning' || st === 'done') return
      setStats(index, { scan: { status: 'idle' } })
      set({ scansPaused: false })
      await runQueue()
    },

    resumeScans() {
      const stats = { ...get().stats }
      for (const [k, v] of Object.entries(stats)) if (v.scan.status === 'cancelled') stats[Number(k)] = { ...v, scan: { status: 'idle' } }
      set({ stats, scansPaused: false })
      void runQueue()
    },

    async computeSha(index) {
      const b = ctx.bitmap(index)
      if (!b || get().stats[index]?.sha === 'running') return
      const gen = ctx.generation()
      const { job, signal } = ctx.jobs.start('sha256', `SHA-256 of '${b.name}'`)
      setStats(index, { sha: 'running' })
      try {
        const sha256 = await client.sha256(index, (d, t) => { if (gen === ctx.generation()) ctx.jobs.progress(job.id, d, t) }, signal)
        if (gen === ctx.generation()) setStats(index, { sha: 'done', sha256 })
      } catch (e) {
        if (gen !== ctx.generation()) return
        setStats(index, { sha: isAbort(e) ? 'idle' : 'error' })
        if (!isAbort(e)) ctx.fail(`Computing the SHA-256 of '${b.name}'`, e)
      } finally {
        ctx.jobs.end(job.id)
      }
    },
  }
  return { actions, runQueue }
}
