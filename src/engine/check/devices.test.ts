/**
 * The check reads L2 tables one way on devices with `readInto` (Node, memory: straight into the
 * scanner's buffer, back-to-back tables together) and another on devices without (Blob, file
 * handle: windows of up to 4 MiB spanning small holes), and does its per-entry work in
 * WebAssembly or, where that does not run, JavaScript (tables.ts), leaving what it cannot do to
 * the walk's own per-entry code ('entrywise' does every entry that way). All must find exactly
 * the same things, on every committed fixture and on a big sparse image whose L2 tables are
 * scattered between data clusters.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { BlobDevice } from '../../io/blob.js'
import { MemoryDevice } from '../../io/memory.js'
import { fixturePath, smallFixtures } from '../../test-support/fixtures.js'
import { requireTool, run, tempDir } from '../../test-support/tools.js'
import { type CheckReport, checkImage, openImage } from '../index.js'
import type { BlockDevice } from '../device.js'

async function checkOn(dev: BlockDevice, scanner?: 'js' | 'entrywise'): Promise<CheckReport | string> {
  try {
    return await checkImage(await openImage(dev), scanner ? { scanner } : {})
  } catch (e) {
    return (e as Error).message
  }
}

async function both(bytes: Uint8Array): Promise<void> {
  const mem = new MemoryDevice(bytes)
  expect(mem.readInto, 'the memory device reads into buffers').toBeTypeOf('function')
  const blob = new BlobDevice(new Blob([bytes as Uint8Array<ArrayBuffer>]))
  expect((blob as BlockDevice).readInto, 'the Blob device has no readInto').toBeUndefined()
  const expected = await checkOn(mem)
  expect(await checkOn(blob)).toEqual(expected)
  expect(await checkOn(mem, 'js'), 'the JavaScript search').toEqual(expected)
  expect(await checkOn(blob, 'js'), 'the JavaScript search, Blob windows').toEqual(expected)
  expect(await checkOn(mem, 'entrywise'), 'every entry by the walk\'s own code').toEqual(expected)
  expect(await checkOn(blob, 'entrywise'), 'every entry by the walk\'s own code, Blob windows').toEqual(expected)
}

const tmp = tempDir('qbm-check-dev-')
afterAll(() => tmp.cleanup())

describe('check: Blob windows and readInto, WebAssembly, JavaScript and entry by entry agree', () => {
  it.each(smallFixtures().filter((f) => !f.large).map((f) => [f.name, f] as const))('%s', async (_n, f) => {
    await both(new Uint8Array(readFileSync(fixturePath(f))))
  })

  it('L2 tables back to back (40 zero writes 512 MiB apart, 64 KiB clusters): windows of 16 tables', async () => {
    requireTool('qemu-io')
    const p = join(tmp.path, 'back-to-back.qcow2')
    expect(run('qemu-img', ['create', '-q', '-f', 'qcow2', p, '20G']).code).toBe(0)
    const cmds: string[] = []
    for (let i = 0; i < 40; i++) cmds.push('-c', `write -q -z ${i * 512}M 64k`, ...(i % 7 === 0 ? ['-c', `write -q ${i * 512 + 100}M 64k`] : []))
    const w = run('qemu-io', ['-f', 'qcow2', ...cmds, p])
    expect(w.code, w.stderr).toBe(0)
    await both(new Uint8Array(readFileSync(p)))
  })

  it('scattered L2 tables (64 GiB disk, 64 KiB clusters, 300 writes up to 200 MiB apart and close together)', async () => {
    requireTool('qemu-io')
    const p = join(tmp.path, 'scatter.qcow2')
    expect(run('qemu-img', ['create', '-q', '-f', 'qcow2', p, '64G']).code).toBe(0)
    const cmds: string[] = []
    for (let i = 0; i < 300; i++) cmds.push('-c', `write -q ${(i % 3 === 0 ? i * 200 : i * 7) * 1024 * 1024} 4k`)
    const w = run('qemu-io', ['-f', 'qcow2', ...cmds, p])
    expect(w.code, w.stderr).toBe(0)
    const bytes = new Uint8Array(readFileSync(p))
    await both(bytes)
    // and with one L2 entry pointing past the end of the file: the same corruption either way
    const img = await openImage(new MemoryDevice(bytes))
    const l1 = new DataView(bytes.buffer).getBigUint64(img.header.l1TableOffset) & 0x00fffffffffffe00n
    new DataView(bytes.buffer).setBigUint64(Number(l1) + 8 * 5, BigInt(bytes.length + 1024 * 1024 * 64) | (1n << 63n))
    const r = await checkOn(new MemoryDevice(bytes))
    expect(typeof r === 'string' ? r : r.corruptions).toBeGreaterThan(0)
    await both(bytes)
  })
})
