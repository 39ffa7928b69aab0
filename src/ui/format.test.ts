import { describe, expect, it } from 'vitest'
import { duration, exact, hex, humanBytes, percent, preciseBytes } from './format.js'

describe('format', () => {
  it('prints sizes in binary units like qemu-img', () => {
    expect(humanBytes(0)).toBe('0 B')
    expect(humanBytes(1536)).toBe('1.5 KiB')
    expect(humanBytes(65536)).toBe('64 KiB')
    expect(humanBytes(2 * 1024 ** 4)).toBe('2 TiB')
    expect(humanBytes(12_451_840)).toBe('11.9 MiB')
  })

  it('keeps neighbouring offsets apart in precise mode', () => {
    expect(preciseBytes(128 * 1024 ** 2 + 10 * 1024)).toBe('128.01 MiB')
    expect(preciseBytes(128 * 1024 ** 2)).toBe('128 MiB')
    expect(preciseBytes(100)).toBe('100 B')
  })

  it('prints exact bytes, hex offsets, percentages and durations', () => {
    expect(exact(1234567)).toBe('1,234,567')
    expect(hex(0x1f000)).toBe('0x1f000')
    expect(percent(0, 10)).toBe('0%')
    expect(percent(1, 1e6)).toBe('<0.01%')
    expect(percent(12_451_840, 268_435_456)).toBe('4.64%')
    expect(percent(5, 5)).toBe('100%')
    expect(duration(3.25)).toBe('3.3 s')
    expect(duration(125)).toBe('2 min 05 s')
  })
})
