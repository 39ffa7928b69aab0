/**
 * Big-endian reading and writing over a buffer that knows its absolute offset in the image,
 * so every decode error can say where it happened; and the engine's one rule for 64-bit
 * offsets (docs/format.md §0.3):
 *
 * Every byte offset and size in the engine is a `number`. A 64-bit field is read as a bigint (or
 * as two 32-bit words in hot loops) and turned into a number here, at the decode boundary:
 * - up to 2^53 it is exact;
 * - above 2^53, where QEMU refuses the value, the decoder throws a FormatError (`Cursor.u64n`);
 * - above 2^53, where QEMU accepts it (it can only lie past the end of the file, where QEMU's
 *   reads return zeros), it becomes `FAR`, an offset past the end of any file, and every consumer
 *   treats it as any other offset past the end. A message that prints such a value prints the
 *   raw field, which its record keeps.
 * Masked table-entry offsets (bits 9-55 of L1, L2 and bitmap table entries) are the exception
 * that needs no rule: a multiple of 512 below 2^56 is exact as a number (qcow2/mapping.ts).
 */
import { FormatError } from './errors.js'

/** 2^53 - 1 as a bigint: the largest offset a number holds exactly. */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

/** An offset past the end of any file: what a 64-bit offset above 2^53 that QEMU accepts decodes to. */
export const FAR = 2 ** 53

/** The one conversion of a 64-bit offset QEMU accepts at any size: exact up to 2^53, else FAR. */
export function offsetFrom(raw: bigint): number {
  return raw <= MAX_SAFE ? Number(raw) : FAR
}

/** offsetFrom for a value given as its big-endian words hi:lo. */
export function offsetFromWords(hi: number, lo: number): number {
  return (hi >>> 0) < 0x200000 ? (hi >>> 0) * 2 ** 32 + (lo >>> 0) : FAR
}

/** The u64 hi:lo, for messages. */
export function u64Of(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)
}

/** Reads big-endian fields of `buf`, which lies at absolute offset `base` of the image. */
export class Cursor {
  private readonly view: DataView
  constructor(
    readonly buf: Uint8Array,
    /** absolute file offset of buf[0] */
    readonly base: number,
    /** structure name used in errors */
    readonly structure: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  u8(pos: number): number {
    return this.view.getUint8(pos)
  }
  u16(pos: number): number {
    return this.view.getUint16(pos)
  }
  u32(pos: number): number {
    return this.view.getUint32(pos)
  }
  u64(pos: number): bigint {
    return this.view.getBigUint64(pos)
  }
  /** A u64 field that QEMU refuses above 2^53 (or qbm cannot represent): otherwise a FormatError. */
  u64n(pos: number, field: string): number {
    const v = this.view.getBigUint64(pos)
    if (v > MAX_SAFE) throw this.error(pos, field, 'is too large to be an offset or size', v)
    return Number(v)
  }
  /** A u64 offset QEMU accepts at any size: exact, or FAR above 2^53 (see the file comment). */
  offset(pos: number): number {
    return offsetFrom(this.view.getBigUint64(pos))
  }
  error(pos: number, field: string, problem: string, value?: bigint | number | string): FormatError {
    return new FormatError(this.structure, field, this.base + pos, problem, value)
  }
}

/** Big-endian writer into a fixed buffer. */
export class Writer {
  readonly view: DataView
  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }
  u8(pos: number, v: number): void {
    this.view.setUint8(pos, v)
  }
  u16(pos: number, v: number): void {
    this.view.setUint16(pos, v)
  }
  u32(pos: number, v: number): void {
    this.view.setUint32(pos, v)
  }
  u64(pos: number, v: bigint | number): void {
    this.view.setBigUint64(pos, BigInt(v))
  }
  set(pos: number, bytes: Uint8Array): void {
    this.buf.set(bytes, pos)
  }
}
