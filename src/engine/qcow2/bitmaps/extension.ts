/**
 * The bitmaps header extension (docs/format.md §2): 24 bytes, checked in QEMU's order
 * (qcow2_read_extensions).
 */
import { Cursor, offsetFrom } from '../../bytes.js'
import { FormatError } from '../../errors.js'
import {
  BITMAPS_EXT_LENGTH, BitmapsExtField as X, EXT_RECORD_HEADER_SIZE, ExtensionRecordField, QCOW2_MAX_BITMAPS,
  QCOW2_MAX_BITMAP_DIRECTORY_SIZE,
} from '../constants.js'
import type { HeaderExtension } from '../extensions.js'

/** The decoded extension (docs/format.md §2.1). */
export interface BitmapsExtension {
  readonly nbBitmaps: number
  readonly reserved32: number
  readonly bitmapDirectorySize: number
  /** FAR above 2^53 (QEMU reads zeros there; docs/format.md §0.3); exact value in `bitmapDirectoryOffsetRaw` */
  readonly bitmapDirectoryOffset: number
  readonly bitmapDirectoryOffsetRaw: bigint
  /** absolute offset of the extension's data */
  readonly offset: number
}

export const BITMAPS_EXT_STRUCT = 'bitmaps extension'

/**
 * Decode and validate as qcow2_read_extensions does (`clusterSize` for the alignment check),
 * then the two checks of bitmap_list_load (size 0) and qbm's own (offset 0: the directory
 * would overlap the header, which QEMU leaves to its constraint checks of the garbage it reads).
 */
export function decodeBitmapsExtension(e: HeaderExtension, clusterSize: number): BitmapsExtension {
  const dataOffset = e.offset + EXT_RECORD_HEADER_SIZE
  if (e.length !== BITMAPS_EXT_LENGTH) {
    throw new FormatError(BITMAPS_EXT_STRUCT, 'length', e.offset + ExtensionRecordField.length, 'is not 24 (bitmaps_ext: Invalid extension length)', e.length)
  }
  const c = new Cursor(e.data, dataOffset, BITMAPS_EXT_STRUCT)
  const nbBitmaps = c.u32(X.nbBitmaps)
  const reserved32 = c.u32(X.reserved32)
  if (reserved32 !== 0) throw c.error(X.reserved32, 'reserved32', 'is not zero', reserved32)
  if (nbBitmaps > QCOW2_MAX_BITMAPS) throw c.error(X.nbBitmaps, 'nb_bitmaps', `exceeds QEMU's maximum of ${QCOW2_MAX_BITMAPS}`, nbBitmaps)
  if (nbBitmaps === 0) throw c.error(X.nbBitmaps, 'nb_bitmaps', 'is zero (found bitmaps extension with zero bitmaps)', 0)
  const offRaw = c.u64(X.bitmapDirectoryOffset)
  if (offRaw % BigInt(clusterSize) !== 0n) throw c.error(X.bitmapDirectoryOffset, 'bitmap_directory_offset', 'is not cluster aligned', offRaw)
  const sizeRaw = c.u64(X.bitmapDirectorySize)
  if (sizeRaw > BigInt(QCOW2_MAX_BITMAP_DIRECTORY_SIZE)) {
    throw c.error(X.bitmapDirectorySize, 'bitmap_directory_size', `exceeds the maximum supported size (${QCOW2_MAX_BITMAP_DIRECTORY_SIZE})`, sizeRaw)
  }
  const bitmapDirectorySize = Number(sizeRaw)
  if (bitmapDirectorySize === 0) throw c.error(X.bitmapDirectorySize, 'bitmap_directory_size', 'is zero (Requested bitmap directory size is zero)', 0)
  if (offRaw === 0n) throw c.error(X.bitmapDirectoryOffset, 'bitmap_directory_offset', 'is 0 (the directory would overlap the header)', 0)
  return {
    nbBitmaps, reserved32, bitmapDirectorySize,
    bitmapDirectoryOffset: offsetFrom(offRaw), bitmapDirectoryOffsetRaw: offRaw,
    offset: dataOffset,
  }
}

/** The extension's 24 data bytes (docs/format.md §2.1), reserved32 zero. */
export function encodeBitmapsExtensionData(ext: Pick<BitmapsExtension, 'nbBitmaps' | 'bitmapDirectorySize' | 'bitmapDirectoryOffset'>): Uint8Array {
  const out = new Uint8Array(BITMAPS_EXT_LENGTH)
  const v = new DataView(out.buffer)
  v.setUint32(X.nbBitmaps, ext.nbBitmaps)
  v.setUint32(X.reserved32, 0)
  v.setBigUint64(X.bitmapDirectorySize, BigInt(ext.bitmapDirectorySize))
  v.setBigUint64(X.bitmapDirectoryOffset, BigInt(ext.bitmapDirectoryOffset))
  return out
}
