/**
 * Random bitmap images for brute-force tests: random geometry (cluster size, granularity,
 * disk length not a multiple of the granularity, header size not a multiple of 512), random
 * bit patterns (sparse, runs, dense, full, boundary bits), all-ones / all-zeroes / empty-data
 * table entries, garbage tail bits past nbits, and in_use bitmaps with short tables.
 */
import type { Rng } from './prng.js'
import { type BuildBitmap, type BuildOptions, type EntryKind, requiredTableSize } from './qcow2-builder.js'

export interface RandomCase {
  options: BuildOptions
  /** human-readable summary for failure messages */
  label: string
}

export interface RandomCaseOptions {
  /** allow in_use bitmaps with a short table (QEMU will not load those) */
  allowInUse?: boolean
  /** allow garbage bits past nbits */
  allowTailBits?: boolean
  /** largest nbits (default 200000) */
  maxBits?: number
  /** bitmaps per image (default 1..3) */
  maxBitmaps?: number
}

const PATTERNS = ['empty', 'full', 'sparse', 'runs', 'dense', 'boundaries', 'mixed'] as const

function setBit(d: Uint8Array, k: number): void {
  d[k >> 3] = d[k >> 3]! | (1 << (k & 7))
}

export function randomBits(rng: Rng, nbits: number, bitsPerCluster: number, into: Uint8Array): string {
  const pattern = rng.pick(PATTERNS)
  switch (pattern) {
    case 'empty': break
    case 'full': for (let k = 0; k < nbits; k++) setBit(into, k); break
    case 'sparse': {
      const p = rng.pick([0.0005, 0.005, 0.05])
      for (let k = 0; k < nbits; k++) if (rng.float() < p) setBit(into, k)
      break
    }
    case 'dense': for (let k = 0; k < nbits; k++) if (rng.float() < 0.9) setBit(into, k); break
    case 'runs': {
      let k = rng.int(100)
      while (k < nbits) {
        const len = 1 + rng.int(rng.pick([3, 40, 700, 9000]))
        for (let j = k; j < Math.min(nbits, k + len); j++) setBit(into, j)
        k += len + 1 + rng.int(rng.pick([2, 60, 5000]))
      }
      break
    }
    case 'boundaries': {
      const marks = [0, nbits - 1]
      for (let b = 4096; b < nbits; b += 4096) marks.push(b - 1, b)
      for (let c = bitsPerCluster; c < nbits; c += bitsPerCluster) marks.push(c - 1, c, c + 31, c + 32)
      for (let w = 32; w < Math.min(nbits, 512); w += 32) if (rng.bool(0.3)) marks.push(w - 1, w)
      for (const m of marks) if (m >= 0 && m < nbits && rng.bool(0.8)) setBit(into, m)
      break
    }
    case 'mixed': {
      for (let k = 0; k < nbits; k++) {
        const region = Math.floor(k / 1000) % 4
        if (region === 1 || (region === 3 && rng.bool(0.3))) setBit(into, k)
      }
      break
    }
  }
  return pattern
}

export function randomCase(rng: Rng, o: RandomCaseOptions = {}): RandomCase {
  const clusterBits = rng.pick([9, 9, 10, 12, 12, 13, 16, 16, 21])
  const cs = 2 ** clusterBits
  const maxBits = o.maxBits ?? 200_000
  const nbitsClass = rng.int(3)
  const nbits = nbitsClass === 0 ? rng.range(1, 70) : nbitsClass === 1 ? rng.range(70, 9000) : rng.range(9000, maxBits)
  // Bound the disk so the L1 table stays small (it is all zeros, but QEMU needs it present).
  const maxDisk = clusterBits <= 10 ? 2 ** 31 : 2 ** 36
  const maxGb = Math.max(9, Math.min(31, Math.floor(Math.log2(maxDisk / nbits))))
  const nb = 1 + rng.int(o.maxBitmaps ?? 3)
  // One disk for the image; each bitmap picks a granularity that fits it.
  const gb0 = rng.range(9, Math.min(maxGb, 20 + (nbits < 100 ? 11 : 0)))
  const g0 = 2 ** gb0
  const diskLength = g0 === 512 ? nbits * 512 : (nbits - 1) * g0 + 512 * rng.range(1, g0 / 512)
  const size = diskLength + (rng.bool(0.2) ? rng.range(1, 511) : 0)
  const bitmaps: BuildBitmap[] = []
  const labels: string[] = []
  for (let i = 0; i < nb; i++) {
    const gb = i === 0 ? gb0 : rng.range(9, Math.min(31, Math.max(9, Math.floor(Math.log2(diskLength * 8 / Math.max(1, rng.range(1, 64)))))))
    const g = 2 ** gb
    const n = Math.ceil(diskLength / g)
    if (n > 2 ** 22) { continue }
    let tableSize = requiredTableSize(diskLength, gb, cs)
    let flags = rng.bool(0.7) ? 2 : 0
    const notes: string[] = []
    if (o.allowInUse && tableSize > 1 && rng.bool(0.15)) {
      tableSize = rng.range(1, tableSize - 1)
      flags |= 1
      notes.push(`in_use short table ${tableSize}`)
    } else if (o.allowInUse && rng.bool(0.1)) {
      flags |= 1
      notes.push('in_use')
    }
    const data = new Uint8Array(tableSize * cs)
    const pattern = randomBits(rng, Math.min(n, tableSize * cs * 8), cs * 8, data)
    const entryKinds: Record<number, EntryKind> = {}
    for (let e = 0; e < tableSize; e++) {
      const r = rng.float()
      if (r < 0.12) entryKinds[e] = 'ones'
      else if (r < 0.18) entryKinds[e] = 'zeroes'
      else if (r < 0.24) entryKinds[e] = 'data'
    }
    if (Object.keys(entryKinds).length) notes.push(`kinds ${JSON.stringify(entryKinds)}`)
    if (o.allowTailBits && rng.bool(0.4) && n < tableSize * cs * 8) {
      const tail = tableSize * cs * 8 - n
      const count = 1 + rng.int(8)
      for (let t = 0; t < count; t++) setBit(data, n + rng.int(Math.min(tail, rng.bool() ? 64 : tail)))
      if (rng.bool(0.3)) setBit(data, n)
      notes.push('tail bits')
    }
    bitmaps.push({ name: `b${i}`, granularityBits: gb, flags, data, entryKinds, tableSize })
    labels.push(`b${i}: g=2^${gb} nbits=${n} table=${tableSize} flags=${flags} ${pattern}${notes.length ? ' ' + notes.join(', ') : ''}`)
  }
  return {
    options: { clusterBits, size, bitmaps },
    label: `cs=2^${clusterBits} size=${size} L=${diskLength}; ${labels.join('; ')}`,
  }
}
