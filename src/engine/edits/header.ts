/**
 * Regenerating cluster 0 the way QEMU's qcow2_update_header does (docs/format.md §1.4): header fields
 * and unknown header fields kept byte-exact, extensions kept verbatim (the bitmaps one
 * replaced, added or dropped), end record, backing file name right after it, zeros to the end.
 */
import { ConstraintError } from '../errors.js'
import { Autoclear, ExtensionType, HeaderField as F, KNOWN_AUTOCLEAR } from '../qcow2/constants.js'
import type { Image } from '../image.js'
import { encodeBitmapsExtensionData } from '../qcow2/bitmaps/extension.js'

export interface HeaderChange {
  /** new bitmaps extension, or null to drop it; undefined keeps the current one */
  bitmaps?: { nbBitmaps: number; bitmapDirectorySize: number; bitmapDirectoryOffset: number } | null
  /** moved refcount table */
  reftable?: { offset: number; clusters: number }
  /** force autoclear bit 0 (default: set iff a bitmaps extension is written) */
  autoclearBitmaps?: boolean
}

/** Build the new cluster 0 (exactly one cluster). Throws ConstraintError when it would not fit. */
export function buildCluster0(img: Image, ch: HeaderChange): Uint8Array {
  const h = img.header
  const cs = h.clusterSize
  // v2 has no autoclear field and cannot store bitmaps: the only v2 rewrite is dropping a
  // bitmaps extension (docs/format.md §9), header fields and other extensions kept as they are.
  if (h.version !== 3 && !(h.version === 2 && ch.bitmaps === null)) throw new ConstraintError('qbm writes only qcow2 v3 images (v2 cannot store bitmaps)', 'image-not-editable')
  const out = new Uint8Array(cs)
  out.set(img.cluster0.subarray(0, h.headerLength), 0)
  const v = new DataView(out.buffer)
  let pos = h.headerLength
  let wroteBitmaps = false
  const exts = img.extensions.slice()
  const put = (type: number, data: Uint8Array): void => {
    const padded = Math.ceil(data.length / 8) * 8
    if (pos + 8 + padded + 8 > cs) throw new ConstraintError(`the header extensions would not fit in cluster 0 (${cs} bytes)`, 'limit-exceeded', 'header_length')
    v.setUint32(pos, type)
    v.setUint32(pos + 4, data.length)
    out.set(data, pos + 8)
    pos += 8 + padded
  }
  const newBitmaps = ch.bitmaps === undefined
    ? img.bitmapsExtension ? exts.findLast((e) => e.type === ExtensionType.bitmaps)!.data : undefined
    : ch.bitmaps === null ? undefined : encodeBitmapsExtensionData(ch.bitmaps)
  for (const e of exts) {
    if (e.type === ExtensionType.bitmaps) {
      if (newBitmaps && !wroteBitmaps) { put(e.type, newBitmaps); wroteBitmaps = true }
      continue
    }
    put(e.type, e.data)
  }
  if (newBitmaps && !wroteBitmaps) { put(ExtensionType.bitmaps, newBitmaps); wroteBitmaps = true }
  // end record
  v.setUint32(pos, 0); v.setUint32(pos + 4, 0)
  pos += 8
  if (h.backingFileOffset !== 0 && h.backingFileSize > 0) {
    const name = img.cluster0.subarray(h.backingFileOffset, h.backingFileOffset + h.backingFileSize)
    if (pos + name.length > cs) throw new ConstraintError(`the backing file name would not fit in cluster 0 (${cs} bytes)`, 'limit-exceeded', 'backing_file_offset')
    out.set(name, pos)
    v.setBigUint64(F.backingFileOffset, BigInt(pos))
    v.setUint32(F.backingFileSize, name.length)
  }
  if (h.version === 2) return out
  // autoclear: unknown bits cleared, bit 1 kept, bit 0 iff the extension is written
  let ac = h.autoclearFeatures & KNOWN_AUTOCLEAR
  const bit0 = ch.autoclearBitmaps ?? wroteBitmaps
  ac = bit0 ? ac | (1n << Autoclear.bitmaps) : ac & ~(1n << Autoclear.bitmaps)
  v.setBigUint64(F.autoclearFeatures, ac)
  if (ch.reftable) {
    v.setBigUint64(F.refcountTableOffset, BigInt(ch.reftable.offset))
    v.setUint32(F.refcountTableClusters, ch.reftable.clusters)
  }
  return out
}
