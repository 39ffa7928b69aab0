/**
 * BlockDevice over a file in the Origin Private File System, through a sync access handle
 * (dedicated workers only). Unlike user files, OPFS gives true in-place reads, writes and
 * flush in milliseconds (browser-platform.md): a workspace copy for edits, and a way for tests
 * to hand the app a handle without a picker.
 */
import { DeviceError, type WritableBlockDevice } from '../engine/index.js'

/** The part of FileSystemSyncAccessHandle we use (declared here: the DOM lib lacks it). */
interface SyncAccessHandle {
  read(buffer: Uint8Array, options?: { at?: number }): number
  write(buffer: Uint8Array, options?: { at?: number }): number
  flush(): void
  getSize(): number
  truncate(size: number): void
  close(): void
}

export class OpfsDevice implements WritableBlockDevice {
  private constructor(private readonly sah: SyncAccessHandle, readonly name: string) {}

  /** Open a sync access handle on `handle` (an OPFS file; throws InvalidStateError otherwise). */
  static async open(handle: FileSystemFileHandle): Promise<OpfsDevice> {
    const h = handle as FileSystemFileHandle & { createSyncAccessHandle?: () => Promise<SyncAccessHandle> }
    if (typeof h.createSyncAccessHandle !== 'function') {
      throw new DeviceError('sync access handles exist only in dedicated workers on OPFS files')
    }
    return new OpfsDevice(await h.createSyncAccessHandle(), handle.name)
  }

  /** The OPFS file at `path` (slash-separated, from the OPFS root), created if asked. */
  static async handleAt(path: string, create = false): Promise<FileSystemFileHandle> {
    const parts = path.split('/').filter(Boolean)
    const fileName = parts.pop()
    if (!fileName) throw new DeviceError(`bad OPFS path '${path}'`)
    let dir = await navigator.storage.getDirectory()
    for (const p of parts) dir = await dir.getDirectoryHandle(p, { create })
    return dir.getFileHandle(fileName, { create })
  }

  get size(): number {
    return this.sah.getSize()
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new DeviceError(`short read: ${length} bytes at 0x${offset.toString(16)} pass the end of the file (${this.size} bytes)`, offset)
    }
    const buf = new Uint8Array(length)
    const n = this.sah.read(buf, { at: offset })
    if (n !== length) throw new DeviceError(`short read: got ${n} of ${length} bytes at 0x${offset.toString(16)}`, offset)
    return buf
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const n = this.sah.write(data, { at: offset })
    if (n !== data.length) throw new DeviceError(`short write: ${n} of ${data.length} bytes at 0x${offset.toString(16)}`, offset)
  }

  async flush(): Promise<void> {
    this.sah.flush()
  }

  close(): void {
    this.sah.close()
  }
}
