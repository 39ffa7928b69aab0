/**
 * Read-only BlockDevice over a FileSystemFileHandle (File System Access API), for the worker.
 *
 * Reads go through a File snapshot from `handle.getFile()`, in slices, never the whole file.
 * Any change to the file on disk (including our own commit) makes that File throw
 * NotReadableError; we re-acquire it once, and if the size or lastModified moved we refuse to
 * go on, because every offset we decoded may now be wrong (browser-platform.md).
 * Writing goes through io/writable-stream.ts (a createWritable swap session).
 */
import { DeviceError, type BlockDevice } from '../engine/index.js'

interface Snapshot {
  file: File
  size: number
  lastModified: number
}

/** Read-only device over a handle, re-acquiring its File when the browser invalidates it. */
export class FileHandleDevice implements BlockDevice {
  private snap: Snapshot | undefined

  private constructor(readonly handle: FileSystemFileHandle, snap: Snapshot) {
    this.snap = snap
  }

  static async open(handle: FileSystemFileHandle): Promise<FileHandleDevice> {
    const file = await handle.getFile()
    return new FileHandleDevice(handle, { file, size: file.size, lastModified: file.lastModified })
  }

  get size(): number {
    return this.snap?.size ?? 0
  }

  get name(): string {
    return this.handle.name
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const snap = this.snap
    if (!snap) throw new DeviceError('the file was closed')
    if (offset < 0 || length < 0 || offset + length > snap.size) {
      throw new DeviceError(`short read: ${length} bytes at 0x${offset.toString(16)} pass the end of the file (${snap.size} bytes)`, offset)
    }
    try {
      return new Uint8Array(await snap.file.slice(offset, offset + length).arrayBuffer())
    } catch (e) {
      if ((e as DOMException).name !== 'NotReadableError') throw wrap(e, offset, length)
    }
    // The File went stale: take a new snapshot, but only if the file is still the same.
    const file = await this.handle.getFile()
    if (file.size !== snap.size || file.lastModified !== snap.lastModified) {
      throw new DeviceError(`'${this.handle.name}' changed on disk since it was opened (size ${snap.size} → ${file.size}); reopen it`, offset)
    }
    this.snap = { file, size: file.size, lastModified: file.lastModified }
    try {
      return new Uint8Array(await file.slice(offset, offset + length).arrayBuffer())
    } catch (e) {
      throw wrap(e, offset, length)
    }
  }

  /** The File as it was opened (what plans were made from). */
  get file(): File | undefined {
    return this.snap?.file
  }

  /** True when the file on disk is still the one we opened (same size and lastModified). */
  async unchanged(): Promise<boolean> {
    const snap = this.snap
    if (!snap) return false
    const f = await this.handle.getFile()
    return f.size === snap.size && f.lastModified === snap.lastModified
  }

  /** After a commit: forget the old snapshot and read the file as it is now. */
  async reload(): Promise<void> {
    const file = await this.handle.getFile()
    this.snap = { file, size: file.size, lastModified: file.lastModified }
  }

  close(): void {
    this.snap = undefined
  }
}

function wrap(e: unknown, offset: number, length: number, verb = 'reading'): DeviceError {
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e)
  return new DeviceError(`${verb} ${length} bytes at 0x${offset.toString(16)} failed: ${msg}`, offset)
}
