import { describe, expect, it } from 'vitest'
import { latestRefresh, latestWins } from './latest.js'

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((r) => { open = r })
  return { promise, open }
}

describe('latestWins', () => {
  it('runs one request at a time and, of the asks made meanwhile, only the last', async () => {
    const started: number[] = []
    const gates: Array<ReturnType<typeof gate>> = []
    let settled = 0
    const ask = latestWins(async (n: number) => {
      started.push(n)
      const g = gate()
      gates.push(g)
      await g.promise
      return true
    }, () => { settled++ })
    ask(1)
    ask(2)
    ask(3)
    expect(started).toEqual([1])
    gates[0]!.open()
    await new Promise((r) => setTimeout(r, 0))
    expect(started).toEqual([1, 3])
    expect(settled).toBe(0)
    gates[1]!.open()
    await new Promise((r) => setTimeout(r, 0))
    expect(settled).toBe(1)
  })

  it('does not call settled after a failure (no retry loop)', async () => {
    let settled = 0
    const ask = latestWins(async () => { throw new Error('no') }, () => { settled++ })
    ask(1)
    await new Promise((r) => setTimeout(r, 0))
    expect(settled).toBe(0)
  })
})

describe('latestRefresh', () => {
  it('reads what is wanted when it runs, looks again after a fetch, and runs once more for asks made meanwhile', async () => {
    let wanted = 1
    let have = 0
    const fetched: number[] = []
    let g = gate()
    const refresh = latestRefresh(async () => {
      if (have === wanted) return false // nothing to do: no loop
      const w = wanted
      await g.promise
      fetched.push(w)
      have = w
      return true
    })
    refresh()
    wanted = 2
    refresh()
    wanted = 3
    refresh() // only one more run for both asks
    g.open()
    await new Promise((r) => setTimeout(r, 0))
    expect(fetched).toEqual([1, 3])
    g = gate()
    g.open()
    refresh()
    await new Promise((r) => setTimeout(r, 0))
    expect(fetched).toEqual([1, 3])
  })
})
