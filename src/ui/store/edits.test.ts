import { describe, expect, it } from 'vitest'
import { describeEdit } from '../../engine/index.js'
import { describeChange, toPlanRequest } from './edits.js'

describe('pending changes', () => {
  it('are sent to the planner as the API\'s edits, without the list\'s ids (the server refuses unknown fields)', () => {
    const req = toPlanRequest([{ id: 4, op: 'copy', name: 'a', newName: 'a2' }, { id: 5, op: 'merge', name: 'a2', source: 'b', sourceImageId: 2 }], true)
    expect(req).toEqual({ force: true, edits: [{ op: 'copy', name: 'a', newName: 'a2' }, { op: 'merge', name: 'a2', source: 'b', sourceImageId: 2 }] })
  })

  it('a repair is planned on its own', () => {
    expect(toPlanRequest([{ id: 1, op: 'repair', mode: 'retrust' }], false)).toEqual({ edits: [], repair: 'retrust', force: false })
    expect(() => toPlanRequest([{ id: 1, op: 'repair', mode: 'retrust' }, { id: 2, op: 'remove', name: 'a' }], false)).toThrow(/on its own/)
  })

  it('say what they do in the planner\'s words, an add naming the default granularity of the image\'s cluster size', () => {
    const add = { op: 'add', name: 'n' } as const
    expect(describeChange(add, 2 * 1024 * 1024)).toBe(describeEdit(add, { clusterSize: 2 * 1024 * 1024 }))
    expect(describeChange(add, 2 * 1024 * 1024)).toBe("Add bitmap 'n' (granularity 64 KiB, qemu-img's default, enabled: QEMU records writes into it), empty.")
    expect(describeChange({ op: 'add', name: 'n', granularity: 512, disabled: true })).toBe("Add bitmap 'n' (granularity 512 B, disabled), empty.")
    expect(describeChange({ op: 'repair', mode: 'drop-all-bitmaps' })).toMatch(/^Repair: Remove every bitmap/)
  })
})
