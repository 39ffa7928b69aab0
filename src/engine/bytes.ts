/**
 * Big-endian reading and writing over a buffer that knows its absolute offset in the image,
 * so every decode error can say where it happened.
 */
import { FormatError } from './errors.js'

export const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

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

  get length(): number {
    return this.buf.length
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
  /** A u64 field that must fit a JS number (below 2^53); otherwise a FormatError. */
  u64n(pos: number, field: string): number {
    const v = this.view.getBigUint64(pos)
    if (v > MAX_SAFE) throw this.error(pos, field, 'is too large to be an offset or size', v)
    return Number(v)
  }
  bytes(pos: number, len: number): Uint8Array {
    return this.buf.subarray(pos, pos + len)
  }
  /** Absolute offset of position `pos`. */
  at(pos: number): number {
    return this.base + pos
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

export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a
}

export function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b)
}

export function toHex(n: number | bigint): string {
  return '0x' + n.toString(16)
}
