/**
 * A BlockDevice wrapper that records every read the engine asks for (count, bytes, largest,
 * requests past the end of the file) and can enforce a deadline, for tests that bound what
 * the engine does on hostile input.
 */
import type { BlockDevice } from '../engine/index.js'

export class DeadlineExceeded extends Error {
  override readonly name = 'DeadlineExceeded'
}

export class RecordingDevice implements BlockDevice {
  reads = 0
  bytesRead = 0
  maxRead = 0
  /** reads that asked for bytes past the end of the file (or a negative/non-integer range) */
  readonly badReads: Array<{ offset: number; length: number }> = []
  /** ms since epoch after which every read throws DeadlineExceeded */
  deadline = Infinity

  constructor(readonly inner: BlockDevice) {}

  get size(): number {
    return this.inner.size
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    if (Date.now() > this.deadline) throw new DeadlineExceeded(`read at 0x${offset.toString(16)} after the deadline`)
    this.reads++
    this.bytesRead += Math.max(0, length)
    this.maxRead = Math.max(this.maxRead, length)
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.inner.size) {
      this.badReads.push({ offset, length })
    }
    return this.inner.read(offset, length)
  }

  reset(): void {
    this.reads = 0
    this.bytesRead = 0
    this.maxRead = 0
    this.badReads.length = 0
  }
}

/** An AbortSignal-like object that reports aborted once the deadline passes. */
export function deadlineSignal(deadline: number): { readonly aborted: boolean } {
  return { get aborted() { return Date.now() > deadline } }
}
