/**
 * An edit reads and decodes the refcount blocks once: the check's StoredRefcounts is the source
 * the planner's loadRefcounts takes them from (qcow2/refcount.ts RefcountSource). Loaded that
 * way, the refcounts equal those loaded from the device on every committed fixture (every
 * refcount width, 512 B to 64 KiB clusters), with no refcount block read again; and the decoder
 * both use gives the values getRefcountEntry gives, entry by entry, for every width.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { MemoryDevice } from '../../io/memory.js'
import { fixturePath, smallFixtures } from '../../test-support/fixtures.js'
import { checkImage, openImage } from '../index.js'
import type { BlockDevice } from '../device.js'
import { type RefcountSource, decodeRefcountBlock, getRefcountEntry, loadRefcounts } from '../qcow2/refcount.js'

/** A device that records the offsets read. */
function recording(inner: BlockDevice): BlockDevice & { reads: number[] } {
  const reads: number[] = []
  return {
    reads,
    size: inner.size,
    read: async (offset, length) => { reads.push(offset); return inner.read(offset, length) },
    readInto: async (offset, target) => { reads.push(offset); await inner.readInto!(offset, target) },
  }
}

describe('refcounts shared between the check and the plan', () => {
  const fixtures = smallFixtures().filter((f) => !f.large)

  it.each(fixtures.map((f) => [f.name, f] as const))('%s', async (_n, f) => {
    const mem = new MemoryDevice(new Uint8Array(readFileSync(fixturePath(f))))
    let img
    try {
      img = await openImage(mem)
    } catch {
      return // images qbm refuses to open have nothing to share
    }
    let source: RefcountSource | undefined
    await checkImage(img, { onRefcounts: (s) => { source = s } })
    let fromDevice
    try {
      fromDevice = await loadRefcounts(mem, img.header)
    } catch (e) {
      await expect(loadRefcounts(mem, img.header, undefined, source), 'the same refusal with the source').rejects.toThrow((e as Error).message)
      return
    }
    if (!source) {
      // the check stopped before it read the refcounts (an image QEMU cannot check)
      expect(img.header.version === 2 || f.qemuCheckExit === 1, `${f.name}: no source although the check ran`).toBe(true)
      return
    }
    const dev = recording(mem)
    const shared = await loadRefcounts(dev, img.header, undefined, source)
    expect(Array.from(shared.counts)).toEqual(Array.from(fromDevice.counts))
    expect(Array.from(shared.reftable)).toEqual(Array.from(fromDevice.reftable))
    expect(shared.problems.map((p) => p.message)).toEqual(fromDevice.problems.map((p) => p.message))
    const blocks = new Set(Array.from(fromDevice.reftable).filter((o) => o > 0))
    expect(dev.reads.filter((o) => blocks.has(o)), 'refcount blocks read again').toEqual([])
    expect(dev.reads, 'the refcount table read again').not.toContain(img.header.refcountTableOffset)
  })

  it('decodeRefcountBlock gives getRefcountEntry\'s values for every width', () => {
    let s = 7
    const block = new Uint8Array(4096)
    for (let i = 0; i < block.length; i++) { s = (s * 1103515245 + 12345) >>> 0; block[i] = s >>> 24 }
    for (let order = 0; order <= 6; order++) {
      const out = new Float64Array((block.length * 8) >> order)
      decodeRefcountBlock(block, order, out)
      for (let i = 0; i < out.length; i++) {
        if (out[i] !== getRefcountEntry(block, order, i)) throw new Error(`order ${order}, entry ${i}: ${out[i]} != ${getRefcountEntry(block, order, i)}`)
      }
    }
  })
})
