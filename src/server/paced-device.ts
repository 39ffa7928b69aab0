/**
 * Reads that let the server's event loop run. The Node file device reads synchronously, so a
 * long job (a scan of a 512 MiB bitmap, a check) would otherwise hold the event loop from its
 * first read to its last: a cancel, a closed socket, another connection's calls and SIGTERM
 * all waited until it ended, and a dropped connection could not cancel anything. A paced
 * device gives the event loop a turn (setImmediate: after pending I/O) before a read once a
 * job has held it for YIELD_MS, and refuses every read after close(), so a job whose session
 * went away never reads through a closed (and perhaps reused) descriptor.
 */
import { type BlockDevice, DeviceError } from '../engine/index.js'
import type { NodeFileDevice } from '../io/node-file.js'

/** Longest stretch of reads before the event loop gets a turn. */
export const YIELD_MS = 10

/** When the event loop last had a turn (polled I/O). */
let lastTurn = performance.now()
/** The next turn, shared by every read waiting for one. */
let nextTurn: Promise<void> | undefined

/**
 * Give the event loop a turn when reads have held it for YIELD_MS since its last one. Every
 * device and job shares one clock and one turn: with many jobs in flight they all wait for the
 * same setImmediate, and the budget starts when it fires, so the event loop waits about
 * YIELD_MS (plus one read per job), not YIELD_MS per job.
 */
export async function pace(): Promise<void> {
  if (performance.now() - lastTurn < YIELD_MS) return
  nextTurn ??= new Promise<void>((resolve) => setImmediate(() => {
    lastTurn = performance.now()
    nextTurn = undefined
    resolve()
  }))
  await nextTurn
}

/** A read-only BlockDevice over a NodeFileDevice that paces its reads; close() closes the file. */
export class PacedDevice implements BlockDevice {
  private closed = false
  constructor(private readonly inner: NodeFileDevice) {}

  get size(): number {
    return this.inner.size
  }

  get growable(): boolean {
    return this.inner.growable
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    await this.turn()
    return this.inner.readSync(offset, length)
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    await this.turn()
    this.inner.readIntoSync(offset, target)
  }

  close(): void {
    this.closed = true
    this.inner.close()
  }

  private async turn(): Promise<void> {
    await pace()
    if (this.closed) throw new DeviceError(`${this.inner.path} was closed (its session ended)`)
  }
}
