/**
 * Reads as QEMU's block layer makes them (docs/format.md §1.5, §3.4): bytes past the end of the
 * file read as zeros, and a range past QEMU's largest offset cannot be read at all. The reader
 * and the check must see exactly what QEMU sees, so their metadata reads go through here. The
 * caller bounds `length` (QEMU's limits); only the part inside the file is read.
 */
import type { BlockDevice } from './device.js'

/** `length` bytes at `offset`, zeros where the file ends. */
export async function readPadded(dev: BlockDevice, offset: number, length: number): Promise<Uint8Array> {
  if (length === 0) return new Uint8Array(0)
  const avail = Math.max(0, Math.min(length, dev.size - offset))
  if (avail === length) return dev.read(offset, length)
  const out = new Uint8Array(length)
  if (avail > 0) out.set(await dev.read(offset, avail))
  return out
}

/**
 * Like readPadded, but into `scratch.buf` (allocated once, `length` bytes) when the device can
 * read in place and the range is inside the file: a walk over thousands of tables allocates one
 * buffer. The result is valid until the next call with the same scratch.
 */
export async function readReusing(dev: BlockDevice, offset: number, length: number, scratch: { buf?: Uint8Array }): Promise<Uint8Array> {
  if (!dev.readInto || offset + length > dev.size || length === 0) return readPadded(dev, offset, length)
  const buf = scratch.buf?.length === length ? scratch.buf : (scratch.buf = new Uint8Array(length))
  await dev.readInto(offset, buf)
  return buf
}

/**
 * The part of [offset, offset+length) that lies inside the file (possibly empty): the rest
 * reads as zeros, so callers that only look for non-zero entries need not allocate it.
 */
export async function readInFile(dev: BlockDevice, offset: number, length: number): Promise<Uint8Array> {
  const avail = Math.max(0, Math.min(length, dev.size - offset))
  return avail > 0 ? dev.read(offset, avail) : new Uint8Array(0)
}

/**
 * QEMU's BDRV_MAX_LENGTH (INT64_MAX rounded down to 1 GiB): a read of a range that passes it
 * fails with EIO instead of returning zeros (block/io.c bdrv_check_request).
 */
export const BDRV_MAX_LENGTH = (1n << 63n) - (1n << 30n)

/** Whether QEMU can read `length` bytes at `offset` at all. */
export function readable(offset: bigint, length: number): boolean {
  return offset <= BDRV_MAX_LENGTH && BigInt(length) <= BDRV_MAX_LENGTH - offset
}

/** Hex the way QEMU's messages print it (PRIx64, no padding). */
export function hex(n: number | bigint): string {
  return n.toString(16)
}
