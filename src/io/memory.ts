/** In-memory BlockDevice: tests, and the "download edited copy" path. */
import { DeviceError, type WritableBlockDevice } from '../engine/index.js'

export class MemoryDevice implements WritableBlockDevice {
  private buf: Uint8Array
  private len: number
  writes = 0
  flushes = 0
  constructor(data: Uint8Array = new Uint8Array(0)) {
    this.buf = data.slice()
    this.len = data.length
  }
  get size(): number {
    return this.len
  }
  /** A copy of the current contents. */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.len)
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.len) {
      throw new DeviceError(`short read: ${length} bytes at 0x${offset.toString(16)} pass the end of the image (${this.len} bytes)`, offset)
    }
    return this.buf.slice(offset, offset + length)
  }
  async readInto(offset: number, target: Uint8Array): Promise<void> {
    const length = target.length
    if (offset < 0 || offset + length > this.len) {
      throw new DeviceError(`short read: ${length} bytes at 0x${offset.toString(16)} pass the end of the image (${this.len} bytes)`, offset)
    }
    target.set(this.buf.subarray(offset, offset + length))
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    const end = offset + data.length
    if (end > this.buf.length) {
      const n = new Uint8Array(Math.max(end, this.buf.length * 2))
      n.set(this.buf.subarray(0, this.len))
      this.buf = n
    }
    this.buf.set(data, offset)
    this.len = Math.max(this.len, end)
    this.writes++
  }
  async flush(): Promise<void> {
    this.flushes++
  }
}
