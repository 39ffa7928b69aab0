import { describe, expect, it } from 'vitest'
import type { OpenSource } from '../../session/api.js'
import { type LaunchParamsLike, consumeLaunches } from './launch.js'

describe('consumeLaunches', () => {
  it('opens the launched files as handles, skipping directories, and does nothing without a launch queue', () => {
    let consumer: ((p: LaunchParamsLike) => void) | undefined
    const opened: OpenSource[][] = []
    expect(consumeLaunches({ setConsumer: (fn) => { consumer = fn } }, (s) => opened.push(s))).toBe(true)
    const a = { kind: 'file', name: 'a.qcow2' } as unknown as FileSystemFileHandle
    const dir = { kind: 'directory', name: 'd' } as unknown as FileSystemHandle
    consumer!({ files: [a, dir] })
    consumer!({ files: [] })
    expect(opened).toEqual([[{ kind: 'handle', handle: a }]])
    expect(consumeLaunches(undefined, () => undefined)).toBe(false)
  })
})
