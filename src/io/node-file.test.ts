/**
 * NodeFileDevice on block devices: the size of a loop device from sysfs equals what
 * `blockdev --getsize64` reports, the device cannot grow (a write past its end is refused), and
 * its bytes are the file's. The sysfs-less fallback (probeEnd) finds the end of files of
 * awkward sizes; majorMinor decodes glibc dev_t numbers.
 */
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { DeviceError } from '../engine/index.js'
import { attachLoop } from '../test-support/host.js'
import { requireTool, run, tempDir } from '../test-support/tools.js'
import { NodeFileDevice, blockDeviceSize, majorMinor, probeEnd } from './node-file.js'

const tmp = tempDir('qbm-node-file-')
afterAll(() => tmp.cleanup())

describe('majorMinor', () => {
  it.each([
    [0x0700, 7, 0], [0xfe00, 254, 0], [0x0801, 8, 1],
    // makedev(259, 300) and makedev(4095, 1048575)
    [(259 << 8) | (300 & 0xff) | ((300 >> 8) << 20), 259, 300],
    [BigInt(0xfff) << 8n | 0xffn | (BigInt(0xfff) << 20n), 4095, 1048575],
  ])('%s = %i:%i', (dev, major, minor) => {
    expect(majorMinor(dev)).toEqual({ major, minor })
  })
})

describe('probeEnd (the size of a device without sysfs)', () => {
  it.each([0, 1, 511, 512, 513, 4096, 1048579])('finds the end of a %i-byte file', (size) => {
    const p = join(tmp.path, `probe-${size}`)
    writeFileSync(p, new Uint8Array(size))
    const fd = openSync(p, 'r')
    try {
      expect(probeEnd(fd)).toBe(size)
    } finally {
      closeSync(fd)
    }
  })
})

describe('a loop device', () => {
  it('is sized from sysfs, reads as its file, and cannot grow', async () => {
    requireTool('blockdev')
    const file = join(tmp.path, 'dev.img')
    const bytes = new Uint8Array(3 * 65536 + 512).map((_, i) => (i * 7) & 0xff)
    writeFileSync(file, bytes)
    const loop = attachLoop(file)
    try {
      const want = Number(run('blockdev', ['--getsize64', loop.dev]).stdout.trim())
      expect(want).toBe(bytes.length)
      const dev = NodeFileDevice.open(loop.dev, 'rw')
      try {
        expect(dev.size).toBe(want)
        expect(dev.growable).toBe(false)
        expect(dev.isBlockDevice).toBe(true)
        expect(blockDeviceSize(dev.stat().rdev)).toBe(want)
        expect(await dev.read(0, dev.size)).toEqual(bytes)
        await expect(dev.write(dev.size - 1, new Uint8Array(2))).rejects.toThrow(DeviceError)
        await expect(dev.read(dev.size - 1, 2)).rejects.toThrow(/pass the end of the device/)
        await dev.write(dev.size - 2, new Uint8Array([1, 2]))
        await dev.flush()
      } finally {
        dev.close()
      }
    } finally {
      loop.detach()
    }
    const after = new Uint8Array(readFileSync(file))
    expect(after.length).toBe(bytes.length)
    expect([...after.subarray(-2)]).toEqual([1, 2])
    const f = NodeFileDevice.open(file)
    try {
      expect(f.growable).toBe(true)
    } finally {
      f.close()
    }
  })
})
