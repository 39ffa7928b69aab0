/** Bit-array helpers for edits: set ranges, iterate runs of an in-memory bitmap (docs/format.md §4.4 layout). */

function bitAt(buf: Uint8Array, k: number): number {
  return (buf[k >>> 3]! >>> (k & 7)) & 1
}

/** Set bits [from, to) of a little-endian bit array. */
export function setBitRange(buf: Uint8Array, from: number, to: number): void {
  let k = from
  while (k < to && (k & 7)) { buf[k >>> 3] = buf[k >>> 3]! | (1 << (k & 7)); k++ }
  const fullEnd = to - (to % 8)
  if (k < fullEnd) { buf.fill(0xff, k / 8, fullEnd / 8); k = fullEnd }
  while (k < to) { buf[k >>> 3] = buf[k >>> 3]! | (1 << (k & 7)); k++ }
}

/** Runs [start, end) of set bits among the first nbits bits. */
export function* memRuns(buf: Uint8Array, nbits: number): Generator<[number, number]> {
  let k = 0
  while (k < nbits) {
    if ((k & 7) === 0 && buf[k >>> 3] === 0) { k += 8; continue }
    if (bitAt(buf, k) === 0) { k++; continue }
    const s = k
    while (k < nbits) {
      if ((k & 7) === 0 && k + 8 <= nbits && buf[k >>> 3] === 0xff) { k += 8; continue }
      if (bitAt(buf, k) === 0) break
      k++
    }
    yield [s, Math.min(k, nbits)]
  }
}
