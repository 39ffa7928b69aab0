/**
 * Capacity of a device that cannot grow (edits/capacity.ts) and the committer's
 * beforeFirstWrite hook: the plan's end is where the committed file ends, the image's used end
 * is what `qemu-img check` calls the image end offset, the free tail of a padded device is
 * used before anything is appended, and a hook that throws stops the commit before any write.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemoryDevice } from '../../io/memory.js'
import { qemuImg, tempDir } from '../../test-support/tools.js'
import { humanAndExact } from '../analysis/units.js'
import { openImage } from '../image.js'
import { loadRefcounts } from '../qcow2/refcount.js'
import { capacityRefusal, planEnd, planOverrun, usedEnd } from './capacity.js'
import { commitPlan } from './commit.js'
import { planEdits } from './plan.js'

const CS = 65536
const tmp = tempDir('qbm-capacity-')
afterAll(() => tmp.cleanup())
/** A 64 MiB image with one bitmap, made by qemu-img: its clusters are all in use (no holes). */
const FIXTURE = join(tmp.path, 'full.qcow2')

beforeAll(async () => {
  for (const args of [['create', '-q', '-f', 'qcow2', FIXTURE, '64M'], ['bitmap', '--add', FIXTURE, 'a']]) {
    const r = qemuImg(args)
    if (r.code !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}`)
  }
  // The premise of the tests below: no free cluster before the end of the image.
  const img = await openImage(new MemoryDevice(new Uint8Array(readFileSync(FIXTURE))))
  const rc = await loadRefcounts(img.device, img.header)
  const used = await usedEnd(img)
  for (let c = 0; c < used / CS; c++) expect(rc.counts[c], `cluster ${c}`).toBeGreaterThan(0)
})

function bytesPadded(extra: number): Uint8Array {
  const raw = new Uint8Array(readFileSync(FIXTURE))
  const size = Math.ceil(raw.length / CS) * CS + extra
  const out = new Uint8Array(size)
  out.set(raw)
  return out
}

/** qemu-img check's "Image end offset": the end of the last cluster with a refcount. */
function qemuImageEnd(): number {
  const r = qemuImg(['check', '--output=json', FIXTURE])
  return (JSON.parse(r.stdout) as { 'image-end-offset': number })['image-end-offset']
}

describe('capacity of a device that cannot grow', () => {
  it('planEnd is where the committed image ends; planOverrun says how far past a device it reaches', async () => {
    const dev = new MemoryDevice(bytesPadded(0))
    const img = await openImage(dev)
    const plan = await planEdits(img, [{ op: 'add', name: 'x', granularity: 4096 }])
    const end = planEnd(plan)
    expect(end).toBeGreaterThan(dev.size) // every cluster is in use: the edit appends
    expect(planOverrun(plan, dev.size)).toEqual({ end, past: end - dev.size })
    expect(planOverrun(plan, end)).toBeNull()
    expect(planOverrun(plan, end - 1)).toEqual({ end, past: 1 })
    await commitPlan(dev, plan)
    expect(dev.size).toBe(end)
  })

  it('usedEnd is qemu-img check\'s image end offset', async () => {
    const img = await openImage(new MemoryDevice(new Uint8Array(readFileSync(FIXTURE))))
    expect(await usedEnd(img)).toBe(qemuImageEnd())
  })

  it('a device with free clusters after the image takes the edit below its end', async () => {
    const dev = new MemoryDevice(bytesPadded(8 * CS))
    const img = await openImage(dev)
    const plan = await planEdits(img, [{ op: 'add', name: 'x', granularity: 4096 }])
    expect(planOverrun(plan, dev.size)).toBeNull()
    expect(planEnd(plan)).toBeGreaterThan(await usedEnd(img))
  })

  it('the refusal names the bytes needed past the end and the bytes free', async () => {
    const dev = new MemoryDevice(bytesPadded(CS))
    const img = await openImage(dev)
    // A table and a directory: two clusters, one free.
    const plan = await planEdits(img, [{ op: 'add', name: 'x', granularity: 512 }])
    const o = planOverrun(plan, dev.size)
    expect(o).not.toBeNull()
    const used = await usedEnd(img)
    expect(dev.size - used).toBe(CS)
    const msg = capacityRefusal(o!, dev.size, used, '/dev/loop9')
    expect(msg).toContain(`needs ${humanAndExact(planEnd(plan) - dev.size)} past the end of the device /dev/loop9, whose size is ${humanAndExact(dev.size)}:`)
    expect(msg).toContain(`need ${humanAndExact(planEnd(plan) - used)} after the last cluster in use (at 0x${used.toString(16)}), where 64 KiB (65,536 bytes) are free.`)
    expect(capacityRefusal({ end: used + CS, past: CS }, used, used, 'd')).toContain('where 0 bytes are free.')
  })
})

describe('commitPlan beforeFirstWrite', () => {
  it('runs once, before the first write; when it throws nothing is written', async () => {
    const raw = new Uint8Array(readFileSync(FIXTURE))
    const dev = new MemoryDevice(raw)
    const plan = await planEdits(await openImage(dev), [{ op: 'add', name: 'x' }])
    const seen: number[] = []
    await commitPlan(dev, plan, { beforeFirstWrite: async () => { seen.push(dev.writes) } })
    expect(seen).toEqual([0])
    expect(dev.writes).toBeGreaterThan(0)

    const dev2 = new MemoryDevice(raw)
    const plan2 = await planEdits(await openImage(dev2), [{ op: 'add', name: 'x' }])
    await expect(commitPlan(dev2, plan2, { beforeFirstWrite: async () => { throw new Error('held') } })).rejects.toThrow('held')
    expect(dev2.writes).toBe(0)
    expect(dev2.flushes).toBe(0)
    expect(dev2.bytes()).toEqual(raw)
  })
})
