/** Derived data from the store state: pure functions, memoized by the components. */
import type { BitmapSummary } from '../../session/api.js'
import type { AppState, BitmapStats, SortKey } from './app-store.js'

const STATUS_ORDER: Record<BitmapSummary['status'], number> = { invalid: 0, 'in-use': 1, untrusted: 2, ok: 3 }

/** Dirty bytes known for a bitmap (after its scan), else null. */
export function dirtyOf(stats: BitmapStats | undefined): number | null {
  return stats?.scan.status === 'done' ? stats.scan.dirtyBytes : null
}

function key(b: BitmapSummary, k: SortKey, stats: Record<number, BitmapStats>): number | string {
  switch (k) {
    case 'index': return b.index
    case 'name': return b.name
    case 'granularity': return b.granularity
    case 'enabled': return b.enabled ? 1 : 0
    case 'status': return STATUS_ORDER[b.status]
    case 'dirty': return dirtyOf(stats[b.index]) ?? -1
    case 'tableSize': return b.tableSize
  }
}

/** The bitmaps in table order. */
export function sortedBitmaps(s: Pick<AppState, 'image' | 'sort' | 'stats'>): BitmapSummary[] {
  const list = [...(s.image?.summary.bitmaps ?? [])]
  const { key: k, dir } = s.sort
  list.sort((a, b) => {
    const x = key(a, k, s.stats)
    const y = key(b, k, s.stats)
    const c = typeof x === 'string' && typeof y === 'string' ? x.localeCompare(y) : (x as number) - (y as number)
    return c !== 0 ? c * dir : a.index - b.index
  })
  return list
}

/** Plain-word explanation of a bitmap's status badge. */
export function statusExplanation(b: BitmapSummary): string {
  switch (b.status) {
    case 'ok':
      return 'Consistent: QEMU loads it and its data is current.'
    case 'in-use':
      return 'in_use is set: the image is open in a running VM, or its writer crashed. QEMU calls it inconsistent and will not use it; the stored data is stale.'
    case 'untrusted':
      return 'Autoclear bit 0 is clear (or the image is v2): a program without bitmap support wrote the image, so QEMU ignores every bitmap in it.'
    case 'invalid':
      return `QEMU refuses this bitmap, and with it the whole image: ${b.problems[0] ?? 'its metadata is invalid'}.`
  }
}

/** The job to show in the progress bar: the oldest long-running one. */
export function visibleJob(s: Pick<AppState, 'jobs'>): AppState['jobs'][number] | undefined {
  return s.jobs.find((j) => j.kind !== 'open') ?? s.jobs[0]
}
