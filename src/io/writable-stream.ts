/**
 * Writable device for a user's file in the browser: reads come from the File as it was when
 * the edit was planned, writes go to a FileSystemWritableFileStream opened with
 * keepExistingData. Chromium applies them to a swap copy (<name>.crswap) and renames it over
 * the original on close(), so the edit lands whole or not at all; abort() drops the swap.
 * (measured facts: ../shared/notes/browser-platform.md)
 */
import { DeviceError, type WritableBlockDevice } from '../engine/index.js'
import { BlobDevice } from './blob.js'

interface WritableStreamLike {
  write(chunk: { type: 'write'; position: number; data: BufferSource }): Promise<void>
  close(): Promise<void>
  abort(reason?: unknown): Promise<void>
}

interface FileHandleLike {
  getFile(): Promise<File>
  createWritable(opts: { keepExistingData: boolean }): Promise<WritableStreamLike>
}

export class WritableStreamDevice implements WritableBlockDevice {
  private readonly reader: BlobDevice
  private grownSize: number
  private constructor(private readonly file: File, private readonly stream: WritableStreamLike) {
    this.reader = new BlobDevice(file)
    this.grownSize = file.size
  }

  /** Open a write session. Creating it copies the whole file into the swap file (slow on big files). */
  static async open(handle: FileHandleLike): Promise<WritableStreamDevice> {
    const file = await handle.getFile()
    const stream = await handle.createWritable({ keepExistingData: true })
    return new WritableStreamDevice(file, stream)
  }

  get size(): number {
    return this.grownSize
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > this.file.size) throw new DeviceError('reading bytes written in this session is not supported', offset)
    return this.reader.read(offset, length)
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    try {
      await this.stream.write({ type: 'write', position: offset, data: data as Uint8Array<ArrayBuffer> })
    } catch (e) {
      throw new DeviceError(`writing ${data.length} bytes at 0x${offset.toString(16)} failed: ${(e as Error).message}`, offset)
    }
    this.grownSize = Math.max(this.grownSize, offset + data.length)
  }

  /** Writes reach the file only at close(); ordering inside the session does not matter. */
  async flush(): Promise<void> {}

  /** Make the edit visible: Chromium renames the swap file over the original. */
  close(): Promise<void> {
    return this.stream.close()
  }

  abort(reason?: unknown): Promise<void> {
    return this.stream.abort(reason)
  }
}
