/**
 * BlockDevice over a Node file descriptor: synchronous positioned I/O (readSync/writeSync with
 * a position, fsyncSync on flush) so writes reach the file in program order from one thread.
 *
 * Block devices (a loop device, an LVM logical volume, a partition) are read and written the
 * same way, but fstat reports their size as 0: the size comes from sysfs instead, and they
 * cannot grow (`growable` is false).
 */
import * as fs from 'node:fs'
import { DeviceError, type WritableBlockDevice } from '../engine/index.js'

/**
 * Major and minor numbers of a dev_t as Node's stat returns it (glibc's encoding, gnu_dev_major
 * and gnu_dev_minor): major in bits 8-19 and 32-43, minor in bits 0-7 and 20-31.
 */
export function majorMinor(dev: number | bigint): { major: number; minor: number } {
  const d = BigInt(dev)
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn)
  return { major: Number(major), minor: Number(minor) }
}

/**
 * Size in bytes of the block device `rdev` (its stat's rdev), from
 * /sys/dev/block/MAJ:MIN/size, which counts 512-byte sectors whatever the logical block size
 * (Linux include/linux/blkdev.h, SECTOR_SHIFT). Undefined where sysfs does not say (not Linux).
 */
export function blockDeviceSize(rdev: number | bigint): number | undefined {
  const { major, minor } = majorMinor(rdev)
  let text: string
  try {
    text = fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8')
  } catch {
    return undefined
  }
  const sectors = Number(text.trim())
  return Number.isSafeInteger(sectors * 512) && sectors >= 0 ? sectors * 512 : undefined
}

/**
 * Size of an open block device without sysfs: the end found by reading single bytes, doubling
 * then bisecting (about 2·log2(size) reads). A read at or past the end returns 0 bytes.
 */
export function probeEnd(fd: number): number {
  const one = new Uint8Array(1)
  const has = (pos: number): boolean => fs.readSync(fd, one, 0, 1, pos) === 1
  if (!has(0)) return 0
  let lo = 0 // has(lo)
  let hi = 512
  while (has(hi - 1)) { lo = hi - 1; hi *= 2; if (hi > Number.MAX_SAFE_INTEGER / 2) break }
  // has(lo), !has(hi - 1): the end is in (lo, hi - 1]
  let a = lo + 1
  let b = hi - 1
  while (a < b) {
    const mid = Math.floor((a + b) / 2)
    if (has(mid)) a = mid + 1
    else b = mid
  }
  return a
}

/** BlockDevice over one open file or block device. */
export class NodeFileDevice implements WritableBlockDevice {
  private closed = false
  private cachedSize: number
  /** false for a block device: it cannot grow past its size */
  readonly growable: boolean
  private constructor(readonly fd: number, readonly path: string, readonly writable: boolean) {
    const st = fs.fstatSync(fd, { bigint: true })
    if (st.isBlockDevice()) {
      this.growable = false
      this.cachedSize = blockDeviceSize(st.rdev) ?? probeEnd(fd)
    } else {
      this.growable = true
      this.cachedSize = Number(st.size)
    }
  }
  /**
   * Wrap a descriptor the caller opened and vetted (the host catalog opens with O_NOFOLLOW and
   * checks device and inode); close() closes it, also when this throws.
   */
  static fromFd(fd: number, path: string, writable: boolean): NodeFileDevice {
    try {
      return new NodeFileDevice(fd, path, writable)
    } catch (e) {
      fs.closeSync(fd)
      throw e
    }
  }
  /** Open `path` read-only or read-write (never created, never truncated). */
  static open(path: string, mode: 'r' | 'rw' = 'r'): NodeFileDevice {
    const fd = fs.openSync(path, mode === 'rw' ? 'r+' : 'r')
    try {
      return new NodeFileDevice(fd, path, mode === 'rw')
    } catch (e) {
      fs.closeSync(fd)
      throw e
    }
  }
  get size(): number {
    return this.cachedSize
  }
  /** True when the open file is a block device. */
  get isBlockDevice(): boolean {
    return !this.growable
  }
  /** fstat of the open descriptor (bigint: exact dev, ino and nanosecond times). */
  stat(): fs.BigIntStats {
    return fs.fstatSync(this.fd, { bigint: true })
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
      throw new DeviceError(`short read: ${length} bytes at 0x${offset.toString(16)} pass the end of the ${this.growable ? 'file' : 'device'} (${this.cachedSize} bytes)`, offset)
    }
    let done = 0
    while (done < length) {
      const n = fs.readSync(this.fd, target, done, length - done, offset + done)
      if (n === 0) throw new DeviceError(`short read at 0x${(offset + done).toString(16)}: the ${this.growable ? 'file' : 'device'} shrank`, offset + done)
      done += n
    }
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (!this.writable) throw new DeviceError('the image was opened read-only')
    if (!this.growable && offset + data.length > this.cachedSize) {
      // The edit path refuses such a plan before its first write (edits/capacity.ts); this is the backstop.
      throw new DeviceError(`write of ${data.length} bytes at 0x${offset.toString(16)} passes the end of the device (${this.cachedSize} bytes)`, offset)
    }
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
