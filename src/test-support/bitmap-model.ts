/**
 * A deliberately naive reference model of a persistent dirty bitmap (docs/format.md §4.3-§4.5, §7),
 * computed bit by bit from the logical stored bytes, for brute-force comparison with the
 * engine's BitmapReader, extents, heatmap and digest. No cleverness: if this and the engine
 * disagree, the model is easy to read and check by hand.
 */
import { createHash } from 'node:crypto'

export interface ModelExtent {
  offset: number
  length: number
}

export class BitmapModel {
  /** bit k of the bitmap (after masking bits >= nbits and bits past the table) */
  readonly bits: Uint8Array
  readonly nbits: number
  readonly granularity: number

  /**
   * @param logical stored bytes as the table means them (all-ones entries as 0xFF); bits past
   *   its end read as zero (a short in_use table)
   */
  constructor(readonly logical: Uint8Array, readonly diskLength: number, granularityBits: number) {
    this.granularity = 2 ** granularityBits
    this.nbits = Math.ceil(diskLength / this.granularity)
    this.bits = new Uint8Array(this.nbits)
    for (let k = 0; k < this.nbits; k++) {
      const byte = k >> 3
      this.bits[k] = byte < logical.length ? (logical[byte]! >> (k & 7)) & 1 : 0
    }
  }

  /** Guest byte range of bit k: [k*g, min((k+1)*g, L)). */
  granule(k: number): [number, number] {
    return [k * this.granularity, Math.min((k + 1) * this.granularity, this.diskLength)]
  }

  get setBits(): number {
    let n = 0
    for (let k = 0; k < this.nbits; k++) n += this.bits[k]!
    return n
  }

  /** Maximal runs of set bits as [startBit, endBit). */
  runs(): Array<[number, number]> {
    const out: Array<[number, number]> = []
    let start = -1
    for (let k = 0; k <= this.nbits; k++) {
      const b = k < this.nbits ? this.bits[k]! : 0
      if (b && start < 0) start = k
      if (!b && start >= 0) { out.push([start, k]); start = -1 }
    }
    return out
  }

  extents(): ModelExtent[] {
    return this.runs().map(([s, e]) => {
      const offset = this.granule(s)[0]
      return { offset, length: this.granule(e - 1)[1] - offset }
    })
  }

  dirtyBytes(): number {
    let n = 0
    for (let k = 0; k < this.nbits; k++) if (this.bits[k]) { const [a, b] = this.granule(k); n += b - a }
    return n
  }

  /** Every dirty and clean run covering the whole disk, as `map --all` prints them. */
  allRuns(): Array<ModelExtent & { dirty: boolean }> {
    const out: Array<ModelExtent & { dirty: boolean }> = []
    for (let k = 0; k < this.nbits; k++) {
      const [a, b] = this.granule(k)
      const dirty = this.bits[k] === 1
      const last = out[out.length - 1]
      if (last && last.dirty === dirty) last.length += b - a
      else out.push({ offset: a, length: b - a, dirty })
    }
    return out
  }

  /** Dirty extents intersecting [from, to), clipped to it. */
  extentsInRange(from: number, to: number): ModelExtent[] {
    const out: ModelExtent[] = []
    for (const x of this.extents()) {
      const a = Math.max(x.offset, from)
      const b = Math.min(x.offset + x.length, to, this.diskLength)
      if (b > a) out.push({ offset: a, length: b - a })
    }
    return out
  }

  /**
   * Dirty bytes per cell, cell i = [start + floor(i*len/N), start + floor((i+1)*len/N)),
   * summing granule overlaps bit by bit.
   */
  heatmap(start: number, end: number, cells: number): number[] {
    const len = BigInt(end - start)
    const out: number[] = []
    for (let i = 0; i < cells; i++) {
      const a = start + Number((BigInt(i) * len) / BigInt(cells))
      const b = start + Number((BigInt(i + 1) * len) / BigInt(cells))
      let n = 0
      const k0 = Math.floor(a / this.granularity)
      for (let k = k0; k < this.nbits && k * this.granularity < b; k++) {
        if (!this.bits[k]) continue
        const [ga, gb] = this.granule(k)
        const lo = Math.max(a, ga), hi = Math.min(b, gb)
        if (hi > lo) n += hi - lo
      }
      out.push(n)
    }
    return out
  }
}

/**
 * QEMU's x-debug-block-dirty-bitmap-sha256 (docs/format.md §7) from the logical stored bytes: SHA-256 of
 * the first 8*max(1, ceil(nbits/64)) bytes, tail bits as stored, zero-padded.
 */
export function modelSha256(logical: Uint8Array, nbits: number): string {
  const h = 8 * Math.max(1, Math.ceil(nbits / 64))
  const buf = new Uint8Array(h)
  buf.set(logical.subarray(0, Math.min(h, logical.length)))
  return createHash('sha256').update(buf).digest('hex')
}
