/**
 * The container half of QEMU's qcow2_do_open (docs/format.md §1.1-§1.6, §6.1): the checks that
 * make QEMU refuse an image for reasons other than its bitmaps, on a header and extensions qbm has
 * already decoded. The bitmaps half is qcow2/bitmaps/load.ts. Header fields that make the image
 * unreadable for qbm too (magic, version, cluster_bits, header_length, ...) are FormatErrors of
 * header.ts and never get here.
 *
 * QEMU opens images in two modes (docs/format.md §6.1): the normal open (qemu-img info, qemu-nbd,
 * a VM) and the check open (qemu-img check), which skips the snapshot table and the test for an
 * empty refcount table. Refusals only the normal open makes are marked `normalOnly`.
 */
import { offsetFrom } from '../bytes.js'
import { type Finding, plainFinding } from '../errors.js'
import {
  Autoclear, ExtensionRecordField, ExtensionType, HeaderField, Incompatible, KNOWN_INCOMPATIBLE, MAX_L1_BYTES,
  MAX_REFTABLE_BYTES, MAX_SNAPSHOTS, hasBit,
} from './constants.js'
import { type HeaderExtension, decodeFeatureNameTable, extensionAreaEnd, findExtension } from './extensions.js'
import { type Header, INT64_MAX } from './header.js'
import { l2EntrySize } from './mapping.js'

/** The full disk encryption header area (extension 0x0537be77), referenced by the check. */
export interface CryptoHeaderArea {
  readonly offset: number
  readonly length: number
}

/** What the container half of the open decided. */
export interface ContainerOpen {
  /** why QEMU refuses the image (each a refusal finding) */
  readonly refusals: Finding[]
  readonly crypto?: CryptoHeaderArea
  /** incompatible bit 4: 16-byte L2 entries */
  readonly extendedL2: boolean
  /** incompatible bit 2: guest data lives in another file */
  readonly externalData: boolean
}

/** Bytes of one snapshot table entry's fixed part (QEMU QCowSnapshotHeader). */
export const SNAPSHOT_HEADER_SIZE = 40

/**
 * QEMU's qcow2_validate_table for the snapshot table, which the normal open and the check both
 * run, also when nb_snapshots is 0 (verified with QEMU 7.2: an unaligned snapshots_offset, or one
 * with bit 63 set, fails with no snapshots at all; bit 62 is accepted). Undefined when valid.
 */
export function snapshotTableProblem(h: Header): { problem: 'too large' | 'offset invalid'; errno: 'EFBIG' | 'EINVAL' } | undefined {
  if (h.nbSnapshots > MAX_SNAPSHOTS) return { problem: 'too large', errno: 'EFBIG' }
  const raw = h.raw.snapshotsOffset
  if (raw % BigInt(h.clusterSize) !== 0n || raw > INT64_MAX - BigInt(h.nbSnapshots) * BigInt(SNAPSHOT_HEADER_SIZE)) {
    return { problem: 'offset invalid', errno: 'EINVAL' }
  }
  return undefined
}

/** QEMU's size_to_l1: L1 entries needed for `size` bytes. */
export function sizeToL1(size: number, clusterBits: number, extendedL2: boolean): number {
  const l2Bits = clusterBits - Math.log2(l2EntrySize(extendedL2))
  return Math.ceil(size / 2 ** (clusterBits + l2Bits))
}

/** Follow qcow2_do_open over the decoded header and extensions. */
export function openContainer(h: Header, extensions: readonly HeaderExtension[], cluster0: Uint8Array): ContainerOpen {
  const cs = h.clusterSize
  const refusals: Finding[] = []
  const refuse = (message: string, field?: string, offset?: number, extra: { normalOnly?: boolean; cause?: 'bitmaps' } = {}): void => {
    refusals.push(plainFinding('refusal', message, {
      cause: extra.cause ?? 'container',
      ...(field !== undefined ? { structure: 'qcow2 header', field } : {}),
      ...(offset !== undefined ? { offset } : {}),
      ...(extra.normalOnly ? { normalOnly: true } : {}),
    }))
  }
  const extendedL2 = hasBit(h.incompatibleFeatures, Incompatible.extendedL2)
  const externalData = hasBit(h.incompatibleFeatures, Incompatible.externalDataFile)

  if (h.compressionType !== 0 && !hasBit(h.incompatibleFeatures, Incompatible.compressionType)) {
    refuse('qcow2: Compression type incompatible feature bit must be set', 'compression_type', HeaderField.compressionType)
  }
  const unknown = h.incompatibleFeatures & ~KNOWN_INCOMPATIBLE
  if (unknown) refuse(unsupportedFeatures(unknown, extensions), 'incompatible_features', HeaderField.incompatibleFeatures)
  if (extendedL2 && cs / 32 < 512) refuse(`Unsupported subcluster size: ${cs / 32}`, 'cluster_bits', HeaderField.clusterBits)
  if (h.refcountTableClusters === 0) refuse('Image does not contain a reference count table', 'refcount_table_clusters', HeaderField.refcountTableClusters, { normalOnly: true })
  if (h.refcountTableClusters > MAX_REFTABLE_BYTES / cs) refuse('Reference count table too large', 'refcount_table_clusters', HeaderField.refcountTableClusters)
  const sn = snapshotTableProblem(h)
  if (sn) refuse(`Snapshot table ${sn.problem}`, sn.problem === 'too large' ? 'nb_snapshots' : 'snapshots_offset', sn.problem === 'too large' ? HeaderField.nbSnapshots : HeaderField.snapshotsOffset, { normalOnly: true })
  if (h.l1Size > MAX_L1_BYTES / 8) refuse('Active L1 table too large', 'l1_size', HeaderField.l1Size)
  const l1Needed = sizeToL1(h.size, h.clusterBits, extendedL2)
  if (l1Needed > 0x7fffffff) refuse('Image is too big', 'size', HeaderField.size)
  else if (h.l1Size < l1Needed) refuse('L1 table is too small', 'l1_size', HeaderField.l1Size)
  if (h.cryptMethod > 2) refuse(`Unsupported encryption method ${h.cryptMethod}`, 'crypt_method', HeaderField.cryptMethod)

  const tooLarge = extensionTooLarge(h, cluster0)
  if (tooLarge) {
    // A bitmaps record with a wrong length derails the walk over the records after it; the
    // header a repair writes drops that record, so this refusal is the bitmaps' fault then.
    const bitmapsRecord = findExtension(extensions, ExtensionType.bitmaps)
    refuse(tooLarge.message, 'length', tooLarge.at + ExtensionRecordField.length, bitmapsRecord && tooLarge.at > bitmapsRecord.offset ? { cause: 'bitmaps' } : {})
  }

  let crypto: CryptoHeaderArea | undefined
  const cext = findExtension(extensions, ExtensionType.fullDiskEncryption)
  if (cext) {
    if (h.cryptMethod !== 2) refuse('CRYPTO header extension only expected with LUKS encryption method')
    else if (cext.length !== 16) refuse(`CRYPTO header extension size ${cext.length}, but expected size 16`)
    else {
      const v = new DataView(cext.data.buffer, cext.data.byteOffset, cext.data.byteLength)
      const offsetRaw = v.getBigUint64(0)
      if (offsetRaw % BigInt(cs) !== 0n) refuse(`Encryption header offset '${offsetRaw}' is not a multiple of cluster size '${cs}'`)
      else crypto = { offset: offsetFrom(offsetRaw), length: offsetFrom(v.getBigUint64(8)) }
    }
  } else if (h.cryptMethod === 2) {
    refuse('Missing CRYPTO header for crypt method 2')
  }
  if (externalData && !findExtension(extensions, ExtensionType.externalDataFile)) refuse("'data-file' is required for this image")
  if (!externalData && hasBit(h.autoclearFeatures, Autoclear.rawExternalData)) refuse('data-file-raw requires a data file')
  return { refusals, extendedL2, externalData, ...(crypto ? { crypto } : {}) }
}

/**
 * QEMU's report_unsupported_feature: the unknown incompatible bits named from the image's own
 * feature name table where it names them, the rest as a mask.
 */
function unsupportedFeatures(mask: bigint, extensions: readonly HeaderExtension[]): string {
  const names: string[] = []
  let rest = mask
  const table = findExtension(extensions, ExtensionType.featureNameTable)
  for (const f of table ? decodeFeatureNameTable(table) : []) {
    if (f.type !== 0 || f.bit > 63 || !f.name) continue
    const bit = 1n << BigInt(f.bit)
    if (rest & bit) { names.push(f.name); rest &= ~bit }
  }
  if (rest) names.push(`Unknown incompatible feature: ${rest.toString(16)}`)
  return `Unsupported qcow2 feature(s): ${names.join(', ')}`
}

/**
 * QEMU's qcow2_read_extensions checks every record's length before it looks at the type, the
 * end record included, so an end record whose length runs past the extension area makes the
 * open fail (qbm's extension decoder stops at the end record without looking).
 */
function extensionTooLarge(h: Header, c0: Uint8Array): { message: string; at: number } | undefined {
  const end = extensionAreaEnd(h)
  const u32 = (p: number): number => (p + 4 <= c0.length ? ((c0[p]! << 24) | (c0[p + 1]! << 16) | (c0[p + 2]! << 8) | c0[p + 3]!) >>> 0 : 0)
  let offset = h.headerLength
  while (offset < end) {
    const at = offset
    const type = u32(at + ExtensionRecordField.type)
    const len = u32(at + ExtensionRecordField.length)
    offset = at + ExtensionRecordField.data
    if (offset > end || len > end - offset) return { message: `Header extension too large (extension 0x${type.toString(16)} at 0x${at.toString(16)})`, at }
    if (type === ExtensionType.end) return undefined
    offset += Math.ceil(len / 8) * 8
  }
  return undefined
}
