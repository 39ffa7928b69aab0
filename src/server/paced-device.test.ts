/**
 * The paced device: a loop of reads lets timers and I/O run at least every few YIELD_MS
 * (the raw Node device holds the event loop for the whole loop), reads the same bytes, and
 * refuses to read once closed.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { DeviceError } from '../engine/index.js'
import { NodeFileDevice } from '../io/node-file.js'
import { tempDir } from '../test-support/tools.js'
import { PacedDevice, YIELD_MS } from './paced-device.js'

const tmp = tempDir('qbm-paced-')
afterAll(() => tmp.cleanup())
const file = join(tmp.path, 'f.bin')
const bytes = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff)
writeFileSync(file, bytes)

/** Read 4 KiB pieces for `ms` milliseconds; count how often a 1 ms interval timer fired meanwhile. */
async function readFor(dev: { readInto(o: number, t: Uint8Array): Promise<void> }, ms: number): Promise<{ ticks: number; longestGapMs: number }> {
  let ticks = 0
  let last = performance.now()
  let longest = 0
  const timer = setInterval(() => { ticks++; const n = performance.now(); longest = Math.max(longest, n - last); last = n }, 1)
  const buf = new Uint8Array(4096)
  const t0 = performance.now()
  let o = 0
  while (performance.now() - t0 < ms) {
    await dev.readInto(o, buf)
    o = (o + 4096) % bytes.length
  }
  clearInterval(timer)
  return { ticks, longestGapMs: Math.max(longest, performance.now() - last) }
}

describe('PacedDevice', () => {
  it('lets timers run during a long loop of reads; the raw device does not', async () => {
    const raw = NodeFileDevice.open(file)
    const paced = new PacedDevice(NodeFileDevice.open(file))
    try {
      const r = await readFor(raw, 200)
      const p = await readFor(paced, 200)
      expect(r.ticks, 'the raw device blocks the event loop for the whole loop').toBe(0)
      expect(p.ticks).toBeGreaterThanOrEqual(5)
      // YIELD_MS between turns, plus scheduling noise on a shared machine
      expect(p.longestGapMs).toBeLessThan(YIELD_MS * 10)
    } finally {
      raw.close()
      paced.close()
    }
  })

  it('with 32 jobs reading at once, the event loop still waits about YIELD_MS, not YIELD_MS per job', async () => {
    const devs = Array.from({ length: 32 }, () => new PacedDevice(NodeFileDevice.open(file)))
    try {
      let last = performance.now()
      let longest = 0
      const timer = setInterval(() => { const n = performance.now(); longest = Math.max(longest, n - last); last = n }, 1)
      await Promise.all(devs.map((d) => readFor(d, 300)))
      clearInterval(timer)
      expect(longest).toBeLessThan(YIELD_MS * 32 / 2)
    } finally {
      for (const d of devs) d.close()
    }
  })

  it('reads what the file holds', async () => {
    const d = new PacedDevice(NodeFileDevice.open(file))
    expect(d.size).toBe(bytes.length)
    expect(d.growable).toBe(true)
    expect(await d.read(12345, 100)).toEqual(bytes.subarray(12345, 12445))
    const t = new Uint8Array(77)
    await d.readInto(999_000, t)
    expect(t).toEqual(bytes.subarray(999_000, 999_077))
    d.close()
  })

  it('refuses every read after close (no read through a closed, perhaps reused, descriptor)', async () => {
    const d = new PacedDevice(NodeFileDevice.open(file))
    d.close()
    await expect(d.read(0, 10)).rejects.toThrow(DeviceError)
    await expect(d.readInto(0, new Uint8Array(10))).rejects.toThrow(/was closed/)
  })
})
