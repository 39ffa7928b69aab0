/**
 * The bitmaps header extension (spec §2): 24 bytes, checked in QEMU's order
 * (qcow2_read_extensions).
 */
import { Cursor } from '../../bytes.js'
import { FormatError } from '../../errors.js'
import { BITMAPS_EXT_LENGTH, QCOW2_MAX_BITMAPS, QCOW2_MAX_BITMAP_DIRECTORY_SIZE } from '../constants.js'
import type { HeaderExtension } from '../extensions.js'

export interface BitmapsExtension {
  readonly nbBitmaps: number
  readonly reserved32: number
  readonly bitmapDirectorySize: number
  readonly bitmapDirectoryOffset: number
  /** absolute offset of the extension's data */
  readonly offset: number
}

export const BITMAPS_EXT_STRUCT = 'bitmaps extension'

/** Decode and validate; `clusterSize` for the alignment check. */
export function decodeBitmapsExtension(e: HeaderExtension, clusterSize: number): BitmapsExtension {
  const dataOffset = e.offset + 8
  if (e.length !== BITMAPS_EXT_LENGTH) {
    throw new FormatError(BITMAPS_EXT_STRUCT, 'length', e.offset + 4, 'is not 24 (bitmaps_ext: Invalid extension length)', e.length)
  }
  const c = new Cursor(e.data, dataOffset, BITMAPS_EXT_STRUCT)
  const nbBitmaps = c.u32(0)
  const reserved32 = c.u32(4)
  if (reserved32 !== 0) throw c.error(4, 'reserved32', 'is not zero', reserved32)
  if (nbBitmaps > QCOW2_MAX_BITMAPS) throw c.error(0, 'nb_bitmaps', `exceeds QEMU's maximum of ${QCOW2_MAX_BITMAPS}`, nbBitmaps)
  if (nbBitmaps === 0) throw c.error(0, 'nb_bitmaps', 'is zero (found bitmaps extension with zero bitmaps)', 0)
  const offRaw = c.u64(16)
  if (offRaw % BigInt(clusterSize) !== 0n) throw c.error(16, 'bitmap_directory_offset', 'is not cluster aligned', offRaw)
  const bitmapDirectoryOffset = c.u64n(16, 'bitmap_directory_offset')
  const sizeRaw = c.u64(8)
  if (sizeRaw > BigInt(QCOW2_MAX_BITMAP_DIRECTORY_SIZE)) {
    throw c.error(8, 'bitmap_directory_size', `exceeds the maximum supported size (${QCOW2_MAX_BITMAP_DIRECTORY_SIZE})`, sizeRaw)
  }
  const bitmapDirectorySize = Number(sizeRaw)
  if (bitmapDirectorySize === 0) throw c.error(8, 'bitmap_directory_size', 'is zero', 0)
  if (bitmapDirectoryOffset === 0) throw c.error(16, 'bitmap_directory_offset', 'is 0 (the directory would overlap the header)', 0)
  return { nbBitmaps, reserved32, bitmapDirectorySize, bitmapDirectoryOffset, offset: dataOffset }
}

export function encodeBitmapsExtensionData(ext: Pick<BitmapsExtension, 'nbBitmaps' | 'bitmapDirectorySize' | 'bitmapDirectoryOffset'>): Uint8Array {
  const out = new Uint8Array(BITMAPS_EXT_LENGTH)
  const v = new DataView(out.buffer)
  v.setUint32(0, ext.nbBitmaps)
  v.setUint32(4, 0)
  v.setBigUint64(8, BigInt(ext.bitmapDirectorySize))
  v.setBigUint64(16, BigInt(ext.bitmapDirectoryOffset))
  return out
}
