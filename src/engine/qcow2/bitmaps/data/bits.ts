/**
 * Bit-array helpers for bitmap data (spec §4.5: bit k of the bitmap is bit k % 8 of byte k / 8,
 * little-endian) and the size of the reader's index block.
 */

/** Bits per index block (512 bytes; every cluster size is a multiple). */
export const BLOCK_BITS = 4096
/** Bytes per index block. */
export const BLOCK_BYTES = BLOCK_BITS / 8

/** Set bits of a 32-bit integer (SWAR). */
export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333)
  x = (x + (x >>> 4)) & 0x0f0f0f0f
  return Math.imul(x, 0x01010101) >>> 24
}

/** Set bits in [from, from+len) bits of `d`. */
export function countBits(d: Uint8Array, from: number, len: number): number {
  let n = 0
  let k = from
  const end = from + len
  while (k < end && (k & 31)) { n += (d[k >>> 3]! >>> (k & 7)) & 1; k++ }
  while (k + 32 <= end) {
    const j = k >>> 3
    n += popcount32(d[j]! | (d[j + 1]! << 8) | (d[j + 2]! << 16) | (d[j + 3]! << 24))
    k += 32
  }
  while (k < end) { n += (d[k >>> 3]! >>> (k & 7)) & 1; k++ }
  return n
}

/** Bit k of `d`. */
export function bitAt(d: Uint8Array, k: number): boolean {
  return ((d[k >>> 3]! >>> (k & 7)) & 1) === 1
}

/** Clear every bit of `data` at or past `bits`, in place (spec §4.5: tail bits do not count). */
export function maskInPlace(data: Uint8Array, bits: number): Uint8Array {
  if (bits >= data.length * 8) return data
  const fullBytes = Math.max(0, bits) >>> 3
  const rem = Math.max(0, bits) & 7
  if (rem) data[fullBytes] = data[fullBytes]! & ((1 << rem) - 1)
  data.fill(0, fullBytes + (rem ? 1 : 0))
  return data
}

/** `data` with every bit at or past `bits` cleared: a copy when anything changes. */
export function maskFrom(data: Uint8Array, bits: number): Uint8Array {
  return bits >= data.length * 8 ? data : maskInPlace(data.slice(), bits)
}

/** `d` as 32-bit little-endian words (a copy when it is not 4-byte aligned). */
export function wordsOf(d: Uint8Array): Uint32Array {
  if (d.byteOffset % 4 === 0 && d.length % 4 === 0) return new Uint32Array(d.buffer, d.byteOffset, d.length >>> 2)
  const c = new Uint8Array(Math.ceil(d.length / 4) * 4)
  c.set(d)
  return new Uint32Array(c.buffer)
}
