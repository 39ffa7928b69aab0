/**
 * What the slices of the app store share (app-store.ts builds it once): the store itself, the
 * engine client, the generation counter that voids results computed for an older image, jobs,
 * errors, and the refreshes one slice asks of another (a new view wants new heat cells, a
 * finished scan wants its heatmap and extent list). Slices never call the engine for each other.
 */
import type { BitmapSummary, EngineClient } from '../../session/api.js'
import type { AppActions, AppState } from './app-store.js'
import type { JobControl } from './jobs.js'

/** The refreshes the slices offer each other; each fetches what the store wants now, the latest ask winning. */
export interface Refreshes {
  /** heat cells of one pane (heat.ts) */
  heat(slot: 'primary' | 'compare'): void
  /** the extent list's window (extents.ts) */
  extents(): void
  /** scan the bitmaps not scanned yet, one after another (scans.ts) */
  scans(): Promise<void>
  /** the dirty × allocation overlay (analysis.ts) */
  overlay(): void
  /** the comparison's cells and window (analysis.ts) */
  algebra(): void
  /** the backup estimate of a bitmap, when it is cheap enough to start by itself (analysis.ts) */
  estimate(index: number): void
  /** the allocation split of one page of extents (analysis.ts) */
  splits(bitmapIndex: number, page: number, first: number, count: number): void
  /** cross-check the loaded checkpoints again (analysis.ts) */
  checkpoints(): void
}

/** The shared context every slice is created with. */
export interface StoreContext {
  get(): AppState & AppActions
  set(p: Partial<AppState>): void
  client: EngineClient
  /** the current generation: bumped on every open, close, switch and commit */
  generation(): number
  /** a new generation: results for the old one are dropped when they arrive */
  nextGeneration(): number
  jobs: JobControl
  /** show an error with what we were doing */
  fail(context: string, e: unknown): void
  /** performance.mark (or the test's) */
  mark(name: string): void
  /** the shown image's bitmap with that index */
  bitmap(index: number | null): BitmapSummary | undefined
  /** filled in by the slices as they are created */
  refresh: Refreshes
}
