/**
 * SHA-256 identical to QEMU's x-debug-block-dirty-bitmap-sha256 (spec §7) on 64-bit
 * little-endian hosts: the first 8*max(1, ceil(nbits/64)) bytes of the stored bitmap, with
 * all-ones entries as 0xFF and tail bits as stored. QEMU never loads an in_use bitmap, so it
 * hashes zeros for one; `stored` hashes what the file holds instead.
 */
import type { AbortSignalLike } from '../errors.js'
import { throwIfAborted } from '../errors.js'
import type { BitmapReader, Progress } from '../qcow2/bitmaps/data.js'
import { ENTRY_ONES, ENTRY_ZEROES } from '../qcow2/bitmaps/table.js'
import { Sha256 } from './sha256.js'

/** Bytes QEMU hashes for a bitmap of `nbits` bits (whole 64-bit words, at least one). */
export function digestLength(nbits: number): number {
  return 8 * Math.max(1, Math.ceil(nbits / 64))
}

/** The bitmap's SHA-256 as QEMU's x-debug-block-dirty-bitmap-sha256 computes it (hex). */
export async function bitmapSha256(
  r: BitmapReader, opts: { stored?: boolean; signal?: AbortSignalLike; onProgress?: Progress } = {},
): Promise<string> {
  const h = new Sha256()
  const total = digestLength(r.nbits)
  if (r.bitmap.inUse && !opts.stored) return h.updateZeros(total).digestHex()
  const cs = r.clusterSize
  let ones: Uint8Array | undefined
  const scratch: { buf?: Uint8Array } = {}
  for (let i = 0, done = 0; done < total; i++) {
    if ((i & 63) === 0) throwIfAborted(opts.signal)
    const n = Math.min(cs, total - done)
    const d = i < r.clusters ? await r.rawCluster(i, scratch) : ENTRY_ZEROES
    if (d === ENTRY_ZEROES) h.updateZeros(n)
    else if (d === ENTRY_ONES) h.update((ones ??= new Uint8Array(cs).fill(0xff)).subarray(0, n))
    else h.update(d.subarray(0, n))
    done += n
    opts.onProgress?.(done, total)
  }
  return h.digestHex()
}
