/**
 * qcow2 vocabulary: magic, field offsets, extension ids, feature bits and QEMU's limits,
 * named after QEMU's docs/interop/qcow2.txt (docs/format.md §1-§3, §5).
 */

export const QCOW_MAGIC = 0x514649fb

/** Byte offsets of header fields (docs/format.md §1.1). */
export const HeaderField = {
  magic: 0,
  version: 4,
  backingFileOffset: 8,
  backingFileSize: 16,
  clusterBits: 20,
  size: 24,
  cryptMethod: 32,
  l1Size: 36,
  l1TableOffset: 40,
  refcountTableOffset: 48,
  refcountTableClusters: 56,
  nbSnapshots: 60,
  snapshotsOffset: 64,
  incompatibleFeatures: 72,
  compatibleFeatures: 80,
  autoclearFeatures: 88,
  refcountOrder: 96,
  headerLength: 100,
  compressionType: 104,
} as const

export const V2_HEADER_LENGTH = 72
export const V3_MIN_HEADER_LENGTH = 104
export const MIN_CLUSTER_BITS = 9
export const MAX_CLUSTER_BITS = 21
export const MAX_BACKING_FILE_NAME = 1023
/** QEMU's QCOW_MAX_REFTABLE_SIZE */
export const MAX_REFTABLE_BYTES = 8 * 1024 * 1024
/** QEMU's QCOW_MAX_L1_SIZE */
export const MAX_L1_BYTES = 32 * 1024 * 1024
export const MAX_SNAPSHOTS = 65536

/** Byte offsets inside a header extension record: type, length, then the data padded to 8 (docs/format.md §1.3). */
export const ExtensionRecordField = {
  type: 0,
  length: 4,
  data: 8,
} as const
/** Size of a header extension record before its data. */
export const EXT_RECORD_HEADER_SIZE = 8

/** Header extension types (docs/format.md §1.3). */
export const ExtensionType = {
  end: 0x00000000,
  backingFormat: 0xe2792aca,
  featureNameTable: 0x6803f857,
  bitmaps: 0x23852875,
  fullDiskEncryption: 0x0537be77,
  externalDataFile: 0x44415441,
} as const

/** An extension type in words, with its number: "0x23852875 (bitmaps)". */
export function extensionTypeName(type: number): string {
  const hex = '0x' + type.toString(16).padStart(8, '0')
  switch (type) {
    case ExtensionType.end: return `${hex} (end)`
    case ExtensionType.backingFormat: return `${hex} (backing format)`
    case ExtensionType.featureNameTable: return `${hex} (feature name table)`
    case ExtensionType.bitmaps: return `${hex} (bitmaps)`
    case ExtensionType.fullDiskEncryption: return `${hex} (full disk encryption header pointer)`
    case ExtensionType.externalDataFile: return `${hex} (external data file)`
    default: return `${hex} (unknown to QEMU)`
  }
}

/** Feature bits (docs/format.md §1.2). */
export const Incompatible = {
  dirty: 0n,
  corrupt: 1n,
  externalDataFile: 2n,
  compressionType: 3n,
  extendedL2: 4n,
} as const
export const KNOWN_INCOMPATIBLE = 0x1fn
export const Autoclear = { bitmaps: 0n, rawExternalData: 1n } as const
export const KNOWN_AUTOCLEAR = 0x3n

export const INCOMPATIBLE_NAMES = ['dirty', 'corrupt', 'external-data-file', 'compression-type', 'extended-l2']
export const COMPATIBLE_NAMES = ['lazy-refcounts']
export const AUTOCLEAR_NAMES = ['bitmaps', 'raw-external-data']

/** Names of the set bits of a feature field; unknown bits appear as 'bit N'. */
export function featureNames(bits: bigint, names: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < 64; i++) {
    if ((bits >> BigInt(i)) & 1n) out.push(names[i] ?? `bit ${i}`)
  }
  return out
}

export function hasBit(bits: bigint, bit: bigint): boolean {
  return ((bits >> bit) & 1n) === 1n
}

// ---- bitmaps (docs/format.md §2-§4; QEMU block/qcow2-bitmap.c) ----

/** Byte offsets inside the bitmaps extension's data (docs/format.md §2.1). */
export const BitmapsExtField = {
  nbBitmaps: 0,
  reserved32: 4,
  bitmapDirectorySize: 8,
  bitmapDirectoryOffset: 16,
} as const
/** The bitmaps extension's data length: exactly 24 bytes. */
export const BITMAPS_EXT_LENGTH = 24

/** Byte offsets inside a bitmap directory entry; extra data, then the name, follow the fixed part (docs/format.md §3.1). */
export const DirEntryField = {
  bitmapTableOffset: 0,
  bitmapTableSize: 8,
  flags: 12,
  type: 16,
  granularityBits: 17,
  nameSize: 18,
  extraDataSize: 20,
} as const
/** Fixed part of a directory entry, before extra data and name. */
export const DIR_ENTRY_HEADER_SIZE = 24

export const QCOW2_MAX_BITMAPS = 65535
export const QCOW2_MAX_BITMAP_DIRECTORY_SIZE = 1024 * QCOW2_MAX_BITMAPS
export const BME_MAX_TABLE_SIZE = 0x8000000
export const BME_MAX_PHYS_SIZE = 0x20000000
export const BME_MAX_GRANULARITY_BITS = 31
export const BME_MIN_GRANULARITY_BITS = 9
export const BME_MAX_NAME_SIZE = 1023
export const BME_TABLE_ENTRY_SIZE = 8
export const BME_RESERVED_FLAGS = 0xfffffffc
export const BME_FLAG_IN_USE = 1
export const BME_FLAG_AUTO = 2
export const BME_FLAG_EXTRA_DATA_COMPATIBLE = 4
export const BME_TABLE_ENTRY_RESERVED_MASK = 0xff000000000001fen
export const BME_TABLE_ENTRY_OFFSET_MASK = 0x00fffffffffffe00n
export const BME_TABLE_ENTRY_FLAG_ALL_ONES = 1n
export const BT_DIRTY_TRACKING_BITMAP = 1

/** Refcount table entries (docs/format.md §5.1). */
export const REFT_RESERVED_MASK = 0x1ffn
export const REFT_OFFSET_MASK = 0xfffffffffffffe00n

/** L1 and L2 table entries (qcow2.txt "Cluster mapping"); decoded by ./mapping.ts. */
export const L1E_OFFSET_MASK = 0x00fffffffffffe00n
/** bits 0-8 and 56-62 of an L1 entry */
export const L1E_RESERVED_MASK = 0x7f000000000001ffn
export const L2E_OFFSET_MASK = 0x00fffffffffffe00n
/** bits 1-8 and 56-61 of a standard (not compressed) L2 entry */
export const L2E_RESERVED_MASK = 0x3f000000000001fen
/** bit 63: the cluster's refcount is exactly 1 (it may be written in place) */
export const QCOW_OFLAG_COPIED = 1n << 63n
/** bit 62: a compressed cluster descriptor */
export const QCOW_OFLAG_COMPRESSED = 1n << 62n
/** bit 0 of a standard L2 entry: the cluster reads as zeros */
export const QCOW_OFLAG_ZERO = 1n
/** Subclusters of an extended L2 entry (its second 64 bits: allocation bits 0-31, zero bits 32-63). */
export const EXTL2_SUBCLUSTERS = 32
