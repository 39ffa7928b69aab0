/** Read-only BlockDevice over a browser Blob or File (slices, never the whole file). */
import { DeviceError, type BlockDevice } from '../engine/index.js'

export class BlobDevice implements BlockDevice {
  constructor(private readonly blob: Blob) {}
  get size(): number {
    return this.blob.size
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || offset + length > this.blob.size) {
      throw new DeviceError(`short read: ${length} bytes at 0x${offset.toString(16)} pass the end of the file (${this.blob.size} bytes)`, offset)
    }
    try {
      return new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer())
    } catch (e) {
      throw new DeviceError(`reading ${length} bytes at 0x${offset.toString(16)} failed: ${(e as Error).message} (the file may have changed on disk; reopen it)`, offset)
    }
  }
}
