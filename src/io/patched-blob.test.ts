import { describe, expect, it } from 'vitest'
import { overlay, patchedBlob } from './patched-blob.js'
import type { Plan } from '../engine/index.js'

function plan(writes: Array<[number, number[]]>): Plan {
  const w = writes.map(([offset, d]) => ({ offset, data: Uint8Array.from(d), what: 'x' }))
  return { summary: [], writes: w.slice(0, -1), header: w[w.length - 1]!, frees: [], allocatedClusters: 0, freedClusters: 0, result: [], warnings: [] }
}

describe('patched blob', () => {
  it('lays later writes over earlier ones and over the original', async () => {
    const original = new Blob([Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7])])
    const b = patchedBlob(original, plan([[2, [9, 9, 9]], [3, [8]], [0, [7]]]))
    expect([...new Uint8Array(await b.arrayBuffer())]).toEqual([7, 1, 9, 8, 9, 5, 6, 7])
  })
  it('extends the file with zero gaps when writes land past its end', async () => {
    const original = new Blob([Uint8Array.from([1, 2])])
    const b = patchedBlob(original, plan([[5, [3, 4]], [0, [6]]]))
    expect([...new Uint8Array(await b.arrayBuffer())]).toEqual([6, 2, 0, 0, 0, 3, 4])
  })
  it('splits a segment that a later write lands inside', () => {
    const segs = overlay([{ offset: 0, data: new Uint8Array(10).fill(1) }, { offset: 4, data: new Uint8Array(2).fill(2) }])
    expect(segs.map((s) => [s.start, s.end, s.data[0]])).toEqual([[0, 4, 1], [4, 6, 2], [6, 10, 1]])
  })
})
