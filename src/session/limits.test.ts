import { describe, expect, it } from 'vitest'
import type { Extent } from '../engine/index.js'
import { exportBytes } from './export.js'
import { ExtentStore } from './extent-store.js'

async function* extents(n: number): AsyncGenerator<Extent> {
  for (let i = 0; i < n; i++) yield { offset: i * 131072, length: 65536 }
}

const header = { name: 'b', granularity: 65536, diskLength: 1 << 30, from: 0, to: 1 << 30 }

describe('bounded results (a page, or a socket, cannot make the engine hold unbounded memory)', () => {
  it('an export stops at its extent limit with an error saying what to do, and is whole below it', async () => {
    await expect(exportBytes('csv', header, extents(101), undefined, 100)).rejects.toMatchObject({ code: 'ConstraintError', message: /more than 100 extents to export/ })
    const ok = new TextDecoder().decode(await exportBytes('json', header, extents(100), undefined, 100))
    expect(JSON.parse(ok).extents).toHaveLength(100)
  })

  it('a comparison result stops at its extent limit', async () => {
    await expect(ExtentStore.from(extents(1001), undefined, 1000)).rejects.toMatchObject({ code: 'ConstraintError' })
    expect((await ExtentStore.from(extents(1000), undefined, 1000)).count).toBe(1000)
  })
})
