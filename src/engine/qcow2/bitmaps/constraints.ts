/**
 * QEMU's limits and predicates for bitmaps (docs/format.md §3.3-§3.5, §4.3; BITMAP check_dir_entry,
 * check_table_entry, qcow2_co_can_store_new_dirty_bitmap). Shared by reader and editor.
 */
import {
  BME_FLAG_EXTRA_DATA_COMPATIBLE, BME_FLAG_IN_USE, BME_MAX_GRANULARITY_BITS, BME_MAX_NAME_SIZE, BME_MAX_PHYS_SIZE, BME_MAX_TABLE_SIZE,
  BME_MIN_GRANULARITY_BITS, BME_RESERVED_FLAGS, BME_TABLE_ENTRY_FLAG_ALL_ONES, BME_TABLE_ENTRY_OFFSET_MASK,
  BME_TABLE_ENTRY_RESERVED_MASK, BT_DIRTY_TRACKING_BITMAP, DIR_ENTRY_HEADER_SIZE, DirEntryField as D,
} from '../constants.js'

/** Number of bits of a bitmap over a disk of `diskLength` bytes (docs/format.md §4.3). */
export function bitmapBits(diskLength: number, granularityBits: number): number {
  return Math.ceil(diskLength / 2 ** granularityBits)
}

/** The table size QEMU requires exactly (docs/format.md §4.3). */
export function expectedTableSize(diskLength: number, granularityBits: number, clusterSize: number): number {
  const words = Math.ceil(bitmapBits(diskLength, granularityBits) / 64)
  return Math.ceil((words * 8) / clusterSize)
}

/** A violated rule: the field's name, its position inside the entry, what is wrong. */
export interface Violation {
  readonly field: string
  /** byte position inside the directory entry */
  readonly pos: number
  readonly problem: string
  readonly value?: number | bigint
}

export interface DirEntryFields {
  tableOffset: bigint
  tableSize: number
  flags: number
  type: number
  granularityBits: number
  nameSize: number
}

/** QEMU's check_dir_entry, rule by rule (docs/format.md §3.4 step 4). */
export function checkDirEntry(e: DirEntryFields, clusterSize: number, diskLength: number): Violation[] {
  const v: Violation[] = []
  if (e.tableSize === 0) v.push({ field: 'bitmap_table_size', pos: D.bitmapTableSize, problem: 'is zero', value: 0 })
  if (e.tableSize > BME_MAX_TABLE_SIZE) v.push({ field: 'bitmap_table_size', pos: D.bitmapTableSize, problem: `exceeds ${BME_MAX_TABLE_SIZE}`, value: e.tableSize })
  if (e.tableOffset === 0n) v.push({ field: 'bitmap_table_offset', pos: D.bitmapTableOffset, problem: 'is zero', value: 0 })
  else if (e.tableOffset % BigInt(clusterSize) !== 0n) v.push({ field: 'bitmap_table_offset', pos: D.bitmapTableOffset, problem: 'is not cluster aligned', value: e.tableOffset })
  if (e.granularityBits > BME_MAX_GRANULARITY_BITS || e.granularityBits < BME_MIN_GRANULARITY_BITS) {
    v.push({ field: 'granularity_bits', pos: D.granularityBits, problem: `is outside QEMU's ${BME_MIN_GRANULARITY_BITS}..${BME_MAX_GRANULARITY_BITS}`, value: e.granularityBits })
  }
  if ((e.flags & BME_RESERVED_FLAGS) >>> 0 !== 0) {
    const bit2 = (e.flags & BME_FLAG_EXTRA_DATA_COMPATIBLE) !== 0
    v.push({ field: 'flags', pos: D.flags, problem: `has reserved bits set${bit2 ? ', extra_data_compatible (bit 2) among them,' : ''} (QEMU accepts only in_use and auto)`, value: e.flags })
  }
  if (e.nameSize > BME_MAX_NAME_SIZE) v.push({ field: 'name_size', pos: D.nameSize, problem: `exceeds ${BME_MAX_NAME_SIZE}`, value: e.nameSize })
  if (e.type !== BT_DIRTY_TRACKING_BITMAP) v.push({ field: 'type', pos: D.type, problem: 'is not 1 (dirty tracking bitmap)', value: e.type })
  if (e.tableSize * clusterSize > BME_MAX_PHYS_SIZE) {
    v.push({ field: 'bitmap_table_size', pos: D.bitmapTableSize, problem: `times the cluster size exceeds QEMU's ${BME_MAX_PHYS_SIZE} bytes`, value: e.tableSize })
  }
  if ((e.flags & BME_FLAG_IN_USE) === 0 && e.granularityBits <= 63 && e.granularityBits >= 0) {
    // disk_length > (table_size * cs * 8) << granularity_bits
    const covered = e.tableSize * clusterSize * 8 * 2 ** e.granularityBits
    if (diskLength > covered) v.push({ field: 'bitmap_table_size', pos: D.bitmapTableSize, problem: 'is too small for the disk', value: e.tableSize })
  }
  return v
}

/** Why a table entry is invalid, or undefined (BITMAP check_table_entry). */
export function checkTableEntry(entry: bigint, clusterSize: number): string | undefined {
  if ((entry & BME_TABLE_ENTRY_RESERVED_MASK) !== 0n) return 'has reserved bits set'
  const off = entry & BME_TABLE_ENTRY_OFFSET_MASK
  if (off !== 0n) {
    if (entry & BME_TABLE_ENTRY_FLAG_ALL_ONES) return 'has both an offset and the all-ones bit'
    if (off % BigInt(clusterSize) !== 0n) return 'offset is not cluster aligned'
  }
  return undefined
}

/** Default granularity of qemu-img bitmap --add: cluster size clamped to 4 KiB..64 KiB. */
export function defaultGranularity(clusterSize: number): number {
  return Math.min(65536, Math.max(4096, clusterSize))
}

/** Why a name cannot be stored, or undefined (docs/format.md §3.5). */
export function checkNewName(nameBytes: Uint8Array): string | undefined {
  if (nameBytes.length === 0) return 'Bitmap name cannot be empty'
  if (nameBytes.length > BME_MAX_NAME_SIZE) return `Name length exceeds maximum (${BME_MAX_NAME_SIZE} characters)`
  if (nameBytes.includes(0)) return 'Bitmap name cannot contain a NUL byte'
  return undefined
}

/** Size of one directory entry on disk, padded to 8. */
export function dirEntrySize(extraDataSize: number, nameSize: number): number {
  return Math.ceil((DIR_ENTRY_HEADER_SIZE + extraDataSize + nameSize) / 8) * 8
}
