/**
 * The qcow2 header (docs/format.md §1.1): decode with every check QEMU makes in qcow2_do_open that
 * matters before bitmaps can be read.
 */
import { Cursor, offsetFrom } from '../bytes.js'
import { FormatError } from '../errors.js'
import {
  AUTOCLEAR_NAMES, COMPATIBLE_NAMES, HeaderField as F, INCOMPATIBLE_NAMES, MAX_BACKING_FILE_NAME,
  MAX_CLUSTER_BITS, MIN_CLUSTER_BITS, QCOW_MAGIC, V2_HEADER_LENGTH, V3_MIN_HEADER_LENGTH, featureNames,
} from './constants.js'

export interface Header {
  readonly version: 2 | 3
  readonly backingFileOffset: number
  readonly backingFileSize: number
  readonly clusterBits: number
  readonly clusterSize: number
  /** virtual size as stored */
  readonly size: number
  /** QEMU's disk length: floor(size/512)*512 */
  readonly diskLength: number
  readonly cryptMethod: number
  readonly l1Size: number
  /** FAR above 2^53 (QEMU reads zeros there); exact value in `raw` */
  readonly l1TableOffset: number
  /** FAR above 2^53 (QEMU reads zeros there); exact value in `raw` */
  readonly refcountTableOffset: number
  readonly refcountTableClusters: number
  readonly nbSnapshots: number
  /** FAR above 2^53 (QEMU accepts any offset when nb_snapshots is 0); exact value in `raw` */
  readonly snapshotsOffset: number
  /** the 64-bit offsets as stored, for messages and QEMU's range checks (docs/format.md §0.3) */
  readonly raw: { readonly l1TableOffset: bigint; readonly refcountTableOffset: bigint; readonly snapshotsOffset: bigint }
  readonly incompatibleFeatures: bigint
  readonly compatibleFeatures: bigint
  readonly autoclearFeatures: bigint
  readonly refcountOrder: number
  readonly refcountBits: number
  readonly headerLength: number
  /** 0 zlib, 1 zstd */
  readonly compressionType: number
}

export const HEADER_STRUCT = 'qcow2 header'

/** QEMU's INT64_MAX, the end of the range its tables may occupy (qcow2_validate_table). */
export const INT64_MAX = (1n << 63n) - 1n

/** Decode the header from the start of cluster 0 (at least 104 bytes, or what the file has). */
export function decodeHeader(buf: Uint8Array, fileSize: number): Header {
  const c = new Cursor(buf, 0, HEADER_STRUCT)
  if (buf.length < V2_HEADER_LENGTH) {
    throw new FormatError(HEADER_STRUCT, 'magic', 0, `cannot be read: the file is too small to be a qcow2 image (${fileSize} bytes)`)
  }
  const magic = c.u32(F.magic)
  if (magic !== QCOW_MAGIC) throw c.error(F.magic, 'magic', 'is not QFI\\xfb: not a qcow2 image', '0x' + magic.toString(16))
  const version = c.u32(F.version)
  if (version !== 2 && version !== 3) throw c.error(F.version, 'version', 'is not 2 or 3 (unsupported qcow2 version)', version)
  const clusterBits = c.u32(F.clusterBits)
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw c.error(F.clusterBits, 'cluster_bits', `is outside QEMU's ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}`, clusterBits)
  }
  const clusterSize = 2 ** clusterBits
  let headerLength = V2_HEADER_LENGTH
  let incompatibleFeatures = 0n, compatibleFeatures = 0n, autoclearFeatures = 0n
  let refcountOrder = 4
  let compressionType = 0
  if (version === 3) {
    if (buf.length < V3_MIN_HEADER_LENGTH) throw c.error(F.headerLength, 'header_length', 'runs past the end of the file')
    incompatibleFeatures = c.u64(F.incompatibleFeatures)
    compatibleFeatures = c.u64(F.compatibleFeatures)
    autoclearFeatures = c.u64(F.autoclearFeatures)
    refcountOrder = c.u32(F.refcountOrder)
    headerLength = c.u32(F.headerLength)
    if (headerLength < V3_MIN_HEADER_LENGTH) throw c.error(F.headerLength, 'header_length', 'is below 104 (qcow2 header too short)', headerLength)
    if (headerLength > clusterSize) throw c.error(F.headerLength, 'header_length', 'exceeds the cluster size', headerLength)
    if (headerLength % 8 !== 0) throw c.error(F.headerLength, 'header_length', 'is not a multiple of 8', headerLength)
    if (headerLength > buf.length) throw c.error(F.headerLength, 'header_length', 'runs past the end of the file', headerLength)
    if (refcountOrder > 6) throw c.error(F.refcountOrder, 'refcount_order', 'is above 6', refcountOrder)
    if (headerLength > F.compressionType) compressionType = c.u8(F.compressionType)
    if (((incompatibleFeatures >> 3n) & 1n) === 1n && compressionType === 0) {
      throw c.error(F.compressionType, 'compression_type', 'is zlib although the compression-type feature bit is set', compressionType)
    }
    if (compressionType > 1) throw c.error(F.compressionType, 'compression_type', 'is unknown', compressionType)
  }
  const backingFileOffset = c.u64n(F.backingFileOffset, 'backing_file_offset')
  const backingFileSize = c.u32(F.backingFileSize)
  if (backingFileOffset !== 0) {
    if (backingFileSize > MAX_BACKING_FILE_NAME) throw c.error(F.backingFileSize, 'backing_file_size', 'exceeds 1023', backingFileSize)
    if (backingFileOffset + backingFileSize > clusterSize) throw c.error(F.backingFileOffset, 'backing_file_offset', 'puts the backing file name outside cluster 0', backingFileOffset)
  }
  const size = c.u64n(F.size, 'size')
  const raw = { l1TableOffset: c.u64(F.l1TableOffset), refcountTableOffset: c.u64(F.refcountTableOffset), snapshotsOffset: c.u64(F.snapshotsOffset) }
  const refcountTableClusters = c.u32(F.refcountTableClusters)
  const l1Size = c.u32(F.l1Size)
  // QEMU's qcow2_validate_table: the table must start at a cluster boundary and end below 2^63.
  const cs = BigInt(clusterSize)
  if (raw.refcountTableOffset % cs !== 0n || raw.refcountTableOffset > INT64_MAX - BigInt(refcountTableClusters) * cs) {
    throw c.error(F.refcountTableOffset, 'refcount_table_offset', raw.refcountTableOffset % cs !== 0n ? 'is not cluster aligned' : 'puts the table past 2^63 (Reference count table offset invalid)', raw.refcountTableOffset)
  }
  if (raw.l1TableOffset % cs !== 0n || raw.l1TableOffset > INT64_MAX - BigInt(l1Size) * 8n) {
    throw c.error(F.l1TableOffset, 'l1_table_offset', raw.l1TableOffset % cs !== 0n ? 'is not cluster aligned' : 'puts the table past 2^63 (Active L1 table offset invalid)', raw.l1TableOffset)
  }
  return {
    version,
    backingFileOffset,
    backingFileSize: backingFileOffset === 0 ? 0 : backingFileSize,
    clusterBits,
    clusterSize,
    size,
    diskLength: Math.floor(size / 512) * 512,
    cryptMethod: c.u32(F.cryptMethod),
    l1Size,
    l1TableOffset: offsetFrom(raw.l1TableOffset),
    refcountTableOffset: offsetFrom(raw.refcountTableOffset),
    refcountTableClusters,
    nbSnapshots: c.u32(F.nbSnapshots),
    snapshotsOffset: offsetFrom(raw.snapshotsOffset),
    raw,
    incompatibleFeatures,
    compatibleFeatures,
    autoclearFeatures,
    refcountOrder,
    refcountBits: 2 ** refcountOrder,
    headerLength,
    compressionType,
  }
}

export function headerFeatureNames(h: Header): { incompatible: string[]; compatible: string[]; autoclear: string[] } {
  return {
    incompatible: featureNames(h.incompatibleFeatures, INCOMPATIBLE_NAMES),
    compatible: featureNames(h.compatibleFeatures, COMPATIBLE_NAMES),
    autoclear: featureNames(h.autoclearFeatures, AUTOCLEAR_NAMES),
  }
}
