/**
 * BlockDevice over a Node file descriptor: synchronous positioned I/O (readSync/writeSync with
 * a position, fsyncSync on flush) so writes reach the file in program order from one thread.
 */
import * as fs from 'node:fs'
import { DeviceError, type WritableBlockDevice } from '../engine/index.js'

export class NodeFileDevice implements WritableBlockDevice {
  private closed = false
  private cachedSize: number
  private constructor(private readonly fd: number, readonly path: string, readonly writable: boolean) {
    this.cachedSize = fs.fstatSync(fd).size
  }
  /**
   * Wrap a descriptor the caller opened and vetted (the host catalog opens with O_NOFOLLOW and
   * checks device and inode); close() closes it. `sizeBytes` for block devices, where fstat says 0.
   */
  static fromFd(fd: number, path: string, writable: boolean, sizeBytes?: number): NodeFileDevice {
    const d = new NodeFileDevice(fd, path, writable)
    if (sizeBytes !== undefined) d.cachedSize = sizeBytes
    return d
  }
  static open(path: string, mode: 'r' | 'rw' = 'r'): NodeFileDevice {
    const fd = fs.openSync(path, mode === 'rw' ? 'r+' : 'r')
    return new NodeFileDevice(fd, path, mode === 'rw')
  }
  get size(): number {
    return this.cachedSize
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.readSync(offset, length)
  }
  readSync(offset: number, length: number): Uint8Array {
    const buf = new Uint8Array(length)
    this.readIntoSync(offset, buf)
    return buf
  }
  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.readIntoSync(offset, target)
  }
  /** Fill `target` from `offset` (positioned fs.readSync straight into it; no allocation). */
  readIntoSync(offset: number, target: Uint8Array): void {
    const length = target.length
    if (offset < 0 || offset + length > this.cachedSize) {
      throw new DeviceError(`short read: ${length} bytes at 0x${offset.toString(16)} pass the end of the file (${this.cachedSize} bytes)`, offset)
    }
    let done = 0
    while (done < length) {
      const n = fs.readSync(this.fd, target, done, length - done, offset + done)
      if (n === 0) throw new DeviceError(`short read at 0x${(offset + done).toString(16)}: the file shrank`, offset + done)
      done += n
    }
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (!this.writable) throw new DeviceError('the image was opened read-only')
    let done = 0
    while (done < data.length) done += fs.writeSync(this.fd, data, done, data.length - done, offset + done)
    this.cachedSize = Math.max(this.cachedSize, offset + data.length)
  }
  async flush(): Promise<void> {
    if (this.writable) fs.fsyncSync(this.fd)
  }
  close(): void {
    if (!this.closed) { fs.closeSync(this.fd); this.closed = true }
  }
}
