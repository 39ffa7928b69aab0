/**
 * "Latest request wins": at most one request in flight; asks that come while it runs are not
 * queued, only the last one is remembered and runs next. After a request that succeeded with
 * nothing waiting, `settled` runs (to look again at what is wanted now).
 */
export function latestWins<W>(run: (want: W) => Promise<boolean>, settled?: () => void): (want: W) => void {
  let busy = false
  let next: { want: W } | null = null
  const go = (want: W): void => {
    if (busy) { next = { want }; return }
    busy = true
    void run(want).then((ok) => ok, () => false).then((ok) => {
      busy = false
      const n = next
      next = null
      if (n) go(n.want)
      else if (ok) settled?.()
    })
  }
  return go
}

/**
 * latestWins for a request that reads what is wanted from the store when it runs: `run` asks for
 * what the store wants now and resolves true when it fetched something (the store may have moved
 * on meanwhile, so it looks again), false when nothing was needed or the request failed (no
 * retry). Asks while one runs make it run once more afterwards.
 */
export function latestRefresh(run: () => Promise<boolean>): () => void {
  const go: (want: void) => void = latestWins<void>(run, () => go())
  return () => go()
}
