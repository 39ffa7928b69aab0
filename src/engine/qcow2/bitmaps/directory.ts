/**
 * The bitmap directory (docs/format.md §3): the only code that knows the entry layout. Decoding follows
 * QEMU's bitmap_list_load walk; an encoder writes entries the way QEMU's bitmap_list_store does
 * (name_size = name length, no extra data, zero padding).
 */
import { isCleanUtf8 } from '../../names.js'
import { Cursor, Writer, offsetFrom } from '../../bytes.js'
import { FormatError } from '../../errors.js'
import {
  BME_FLAG_AUTO, BME_FLAG_IN_USE, BT_DIRTY_TRACKING_BITMAP, BitmapsExtField, DIR_ENTRY_HEADER_SIZE, DirEntryField as D,
} from '../constants.js'
import { type Violation, checkDirEntry, dirEntrySize } from './constraints.js'

/** One directory entry as stored, plus where it is. */
export interface DirEntry {
  readonly index: number
  /** absolute offset of the entry */
  readonly offset: number
  /** size on disk, padded */
  readonly size: number
  /** FAR above 2^53 (QEMU reads zeros there; docs/format.md §0.3) */
  readonly tableOffset: number
  /** bitmap_table_offset as stored */
  readonly tableOffsetRaw: bigint
  readonly tableSize: number
  readonly flags: number
  readonly type: number
  readonly granularityBits: number
  readonly nameSize: number
  readonly extraDataSize: number
  readonly extraData: Uint8Array
  readonly nameBytes: Uint8Array
  /** the entry's raw bytes, for byte-exact rewrites */
  readonly raw: Uint8Array
  /** rule violations that make QEMU refuse this entry (and with it the image) */
  readonly violations: readonly Violation[]
  /** oddities QEMU accepts */
  readonly warnings: readonly Violation[]
}

export interface Directory {
  readonly entries: DirEntry[]
  /** a structural problem that makes QEMU refuse the directory; entries hold what was readable */
  readonly error?: FormatError
}

/** The structure name errors use for entry `index`. */
export function dirEntryStructure(index: number): string {
  return `bitmap directory entry ${index}`
}

/**
 * Walk `buf` (the directory bytes at absolute `offset`) as QEMU does. Never throws for a bad
 * entry: the caller gets every entry it could read and the first structural error.
 */
export function decodeDirectory(
  buf: Uint8Array, offset: number, nbBitmaps: number, clusterSize: number, diskLength: number,
  /** where the bitmaps extension's data starts, so count and size errors can point at its fields */
  extOffset?: number,
): Directory {
  const nbAt = extOffset === undefined ? offset : extOffset + BitmapsExtField.nbBitmaps
  const sizeAt = extOffset === undefined ? offset : extOffset + BitmapsExtField.bitmapDirectorySize
  const c = new Cursor(buf, offset, 'bitmap directory')
  const entries: DirEntry[] = []
  const size = buf.length
  let pos = 0
  while (pos < size) {
    const index = entries.length
    const structure = dirEntryStructure(index)
    if (pos + DIR_ENTRY_HEADER_SIZE > size) {
      return { entries, error: new FormatError('bitmaps extension', 'bitmap_directory_size', sizeAt, `ends inside the header of entry ${index} at 0x${(offset + pos).toString(16)} (Broken bitmap directory)`, size) }
    }
    const extraDataSize = c.u32(pos + D.extraDataSize)
    const nameSize = c.u16(pos + D.nameSize)
    const esize = dirEntrySize(extraDataSize, nameSize)
    if (pos + esize > size) {
      return { entries, error: new FormatError('bitmaps extension', 'bitmap_directory_size', sizeAt, `ends inside ${structure} at 0x${(offset + pos).toString(16)}, whose name_size ${nameSize} makes it ${esize} bytes (Broken bitmap directory)`, size) }
    }
    if (index >= nbBitmaps) {
      return { entries, error: new FormatError('bitmaps extension', 'nb_bitmaps', nbAt, `is ${nbBitmaps} but the directory holds more entries (More bitmaps found than specified in header extension)`, nbBitmaps) }
    }
    const tableOffsetRaw = c.u64(pos + D.bitmapTableOffset)
    const fields = {
      tableOffset: tableOffsetRaw,
      tableSize: c.u32(pos + D.bitmapTableSize),
      flags: c.u32(pos + D.flags),
      type: c.u8(pos + D.type),
      granularityBits: c.u8(pos + D.granularityBits),
      nameSize,
    }
    const violations: Violation[] = []
    if (extraDataSize !== 0) violations.push({ field: 'extra_data_size', pos: D.extraDataSize, problem: 'is not zero (Bitmap extra data is not supported by QEMU)', value: extraDataSize })
    violations.push(...checkDirEntry(fields, clusterSize, diskLength))
    const nameStart = pos + DIR_ENTRY_HEADER_SIZE + extraDataSize
    const nameBytes = buf.slice(nameStart, nameStart + nameSize)
    const warnings: Violation[] = []
    for (let p = nameStart + nameSize; p < pos + esize; p++) {
      if (buf[p] !== 0) { warnings.push({ field: 'padding', pos: p - pos, problem: 'after the name is not zero (QEMU accepts it)', value: buf[p]! }); break }
    }
    const namePos = nameStart - pos
    if (nameSize === 0) warnings.push({ field: 'name_size', pos: D.nameSize, problem: 'is 0: the name is empty (QEMU accepts it; qemu-img cannot address it)', value: 0 })
    if (nameBytes.includes(0)) warnings.push({ field: 'name', pos: namePos, problem: 'contains a NUL byte (QEMU cuts the name there)' })
    else if (!isCleanUtf8(nameBytes)) warnings.push({ field: 'name', pos: namePos, problem: 'is not valid UTF-8: shown with \\xNN escapes; qemu-img shows U+FFFD for those bytes and QMP commands cannot address the bitmap' })
    entries.push({
      index,
      offset: offset + pos,
      size: esize,
      tableOffsetRaw,
      tableOffset: offsetFrom(tableOffsetRaw),
      tableSize: fields.tableSize,
      flags: fields.flags,
      type: fields.type,
      granularityBits: fields.granularityBits,
      nameSize,
      extraDataSize,
      extraData: buf.slice(pos + DIR_ENTRY_HEADER_SIZE, nameStart),
      nameBytes,
      raw: buf.slice(pos, pos + esize),
      violations,
      warnings,
    })
    pos += esize
  }
  if (entries.length < nbBitmaps) {
    return { entries, error: new FormatError('bitmaps extension', 'nb_bitmaps', nbAt, `is ${nbBitmaps} but the directory holds only ${entries.length} (Less bitmaps found than specified in header extension)`, nbBitmaps) }
  }
  return { entries }
}

/** Fields of a directory entry to encode. Extra data is never written (docs/format.md §3.6). */
export interface NewDirEntry {
  tableOffset: number
  tableSize: number
  flags: number
  granularityBits: number
  nameBytes: Uint8Array
}

/** Encode one entry QEMU-style: type 1, no extra data, zero padding. */
export function encodeDirEntry(e: NewDirEntry): Uint8Array {
  const out = new Uint8Array(dirEntrySize(0, e.nameBytes.length))
  const w = new Writer(out)
  w.u64(D.bitmapTableOffset, e.tableOffset)
  w.u32(D.bitmapTableSize, e.tableSize)
  w.u32(D.flags, e.flags >>> 0)
  w.u8(D.type, BT_DIRTY_TRACKING_BITMAP)
  w.u8(D.granularityBits, e.granularityBits)
  w.u16(D.nameSize, e.nameBytes.length)
  w.u32(D.extraDataSize, 0)
  w.set(DIR_ENTRY_HEADER_SIZE, e.nameBytes)
  return out
}

/** Concatenate encoded entries into a directory image. */
export function encodeDirectory(entries: readonly Uint8Array[]): Uint8Array {
  const total = entries.reduce((s, e) => s + e.length, 0)
  const out = new Uint8Array(total)
  let p = 0
  for (const e of entries) { out.set(e, p); p += e.length }
  return out
}

/** Copy of a stored entry with new fields patched in (table, flags); the name kept byte-exact. */
export function patchDirEntry(raw: Uint8Array, patch: { tableOffset?: number; tableSize?: number; flags?: number }): Uint8Array {
  const out = raw.slice()
  const w = new Writer(out)
  if (patch.tableOffset !== undefined) w.u64(D.bitmapTableOffset, patch.tableOffset)
  if (patch.tableSize !== undefined) w.u32(D.bitmapTableSize, patch.tableSize)
  if (patch.flags !== undefined) w.u32(D.flags, patch.flags >>> 0)
  return out
}

/** in_use flag (docs/format.md §3.2). */
export function isInUse(flags: number): boolean {
  return (flags & BME_FLAG_IN_USE) !== 0
}
/** auto flag: the bitmap is enabled (docs/format.md §3.2). */
export function isAuto(flags: number): boolean {
  return (flags & BME_FLAG_AUTO) !== 0
}
