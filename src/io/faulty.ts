/**
 * A WritableBlockDevice wrapper for crash-injection tests: it behaves like a power cut after
 * the k-th write (writes 0..k-1 reach the inner device; every later write and flush is dropped
 * but reports success), or like a failing disk (write k throws a DeviceError, nothing after it
 * is attempted by a well-behaved caller). Reads always go to the inner device, so what the
 * caller reads back is what "survived".
 */
import { DeviceError, type WritableBlockDevice } from '../engine/index.js'

export interface FaultyOptions {
  /** power cut: writes with index >= dropFrom (0-based) are silently dropped. Default: never. */
  dropFrom?: number
  /** error path: the write with this index (0-based) throws a DeviceError and does not land. */
  throwAt?: number
}

export class FaultyDevice implements WritableBlockDevice {
  /** write calls seen (landed, dropped or thrown) */
  writes = 0
  /** writes that reached the inner device */
  landed = 0
  /** writes dropped by the power cut */
  dropped = 0
  /** flush calls seen / passed on to the inner device */
  flushes = 0
  flushesPassed = 0
  /** offsets and lengths of every write call, in order (for diagnostics) */
  readonly log: Array<{ offset: number; length: number; fate: 'landed' | 'dropped' | 'thrown' }> = []
  private readonly dropFrom: number
  private readonly throwAt: number

  constructor(readonly inner: WritableBlockDevice, opts: FaultyOptions = {}) {
    this.dropFrom = opts.dropFrom ?? Infinity
    this.throwAt = opts.throwAt ?? Infinity
  }

  /** A device that loses power after `k` writes have landed. */
  static powerCutAfter(inner: WritableBlockDevice, k: number): FaultyDevice {
    return new FaultyDevice(inner, { dropFrom: k })
  }

  /** A device whose write number `k` (0-based) fails with an I/O error. */
  static failingAt(inner: WritableBlockDevice, k: number): FaultyDevice {
    return new FaultyDevice(inner, { throwAt: k })
  }

  /** Whether the power is already gone (every write from now on is dropped). */
  get powerLost(): boolean {
    return this.writes >= this.dropFrom
  }

  get size(): number {
    return this.inner.size
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.inner.read(offset, length)
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const i = this.writes++
    if (i === this.throwAt) {
      this.log.push({ offset, length: data.length, fate: 'thrown' })
      throw new DeviceError(`injected write error (write ${i}, ${data.length} bytes at 0x${offset.toString(16)})`, offset)
    }
    if (i >= this.dropFrom) {
      this.dropped++
      this.log.push({ offset, length: data.length, fate: 'dropped' })
      return
    }
    this.log.push({ offset, length: data.length, fate: 'landed' })
    await this.inner.write(offset, data)
    this.landed++
  }

  async flush(): Promise<void> {
    this.flushes++
    if (this.powerLost) return
    this.flushesPassed++
    await this.inner.flush()
  }
}
