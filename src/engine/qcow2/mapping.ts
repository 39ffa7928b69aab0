/**
 * L1 and L2 table entries (docs/format.md §1.5; qcow2.txt "Cluster mapping"): the one decoder of
 * their bits, shared by the check (check/references.ts, check/check.ts) and the allocation map
 * (analysis/allocation.ts).
 *
 * An entry is read as its two big-endian 32-bit words `hi` (bits 32-63) and `lo` (bits 0-31), so
 * the walks over millions of entries never allocate a bigint. The word masks below are derived
 * from the 64-bit masks in constants.ts, which name them as QEMU does.
 */
import {
  EXTL2_SUBCLUSTERS, L1E_RESERVED_MASK, L2E_OFFSET_MASK, L2E_RESERVED_MASK, QCOW_OFLAG_COMPRESSED,
  QCOW_OFLAG_COPIED, QCOW_OFLAG_ZERO,
} from './constants.js'

const hiWord = (m: bigint): number => Number((m >> 32n) & 0xffffffffn)
const loWord = (m: bigint): number => Number(m & 0xffffffffn)

const COPIED_HI = hiWord(QCOW_OFLAG_COPIED)
const COMPRESSED_HI = hiWord(QCOW_OFLAG_COMPRESSED)
const ZERO_LO = loWord(QCOW_OFLAG_ZERO)
const OFFSET_HI = hiWord(L2E_OFFSET_MASK)
const OFFSET_LO = loWord(L2E_OFFSET_MASK)
const L1_RESERVED_HI = hiWord(L1E_RESERVED_MASK)
const L1_RESERVED_LO = loWord(L1E_RESERVED_MASK)
const L2_RESERVED_HI = hiWord(L2E_RESERVED_MASK)
const L2_RESERVED_LO = loWord(L2E_RESERVED_MASK)

/** Bytes of one L1 entry. */
export const L1_ENTRY_SIZE = 8

/** Where the subcluster bitmap of an extended L2 entry starts: zero bits (hi word), then allocation bits (lo word). */
export const L2_SUBCLUSTER_BITMAP = 8

/** Bytes of one L2 entry: 16 with extended L2 entries (incompatible bit 4), else 8. */
export function l2EntrySize(extendedL2: boolean): 8 | 16 {
  return extendedL2 ? 16 : 8
}

/**
 * Bits 9-55 of an entry (L1E_OFFSET_MASK = L2E_OFFSET_MASK): the host offset of an L2 table (L1 entry) or a data cluster (standard
 * L2 entry). Always exact as a number: a multiple of 512 below 2^56 needs at most 47 significant
 * bits, so no rounding happens even above 2^53 (docs/format.md §0.3).
 */
export function entryOffset(hi: number, lo: number): number {
  return (hi & OFFSET_HI) * 2 ** 32 + ((lo & OFFSET_LO) >>> 0)
}

/** The low word of the offset bits, for alignment tests without building the offset. */
export function offsetLowWord(lo: number): number {
  return (lo & OFFSET_LO) >>> 0
}

/** Whether the entry has an offset at all (bits 9-55 not all zero). */
export function hasOffset(hi: number, lo: number): boolean {
  return (hi & OFFSET_HI) !== 0 || (lo & OFFSET_LO) !== 0
}

/** QCOW_OFLAG_COPIED (bit 63): the cluster's refcount is exactly 1. */
export function isCopied(hi: number): boolean {
  return (hi & COPIED_HI) !== 0
}

/** QCOW_OFLAG_COMPRESSED (bit 62). */
export function isCompressed(hi: number): boolean {
  return (hi & COMPRESSED_HI) !== 0
}

/** QCOW_OFLAG_ZERO (bit 0) of a standard L2 entry; with extended L2 entries bit 0 means nothing. */
export function hasZeroFlag(lo: number): boolean {
  return (lo & ZERO_LO) !== 0
}

/** An L1 entry with reserved bits set (QEMU L1E_RESERVED_MASK). */
export function l1Reserved(hi: number, lo: number): boolean {
  return (hi & L1_RESERVED_HI) !== 0 || (lo & L1_RESERVED_LO) !== 0
}

/** A standard (not compressed) L2 entry with reserved bits set (QEMU L2E_STD_RESERVED_MASK). */
export function l2Reserved(hi: number, lo: number): boolean {
  return (hi & L2_RESERVED_HI) !== 0 || (lo & L2_RESERVED_LO) !== 0
}

/** The entry as one 64-bit value, for messages. */
export function entryU64(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)
}

/** QEMU's QCow2ClusterType of an L2 entry (qcow2.h qcow2_get_cluster_type). */
export type ClusterType = 'compressed' | 'zero-alloc' | 'zero-plain' | 'normal' | 'unallocated'

/**
 * Type of the L2 entry with words hi, lo. With extended L2 entries bit 0 is not a zero flag
 * (the subcluster bitmap says that). With an external data file, offset 0 with the COPIED flag
 * is a real cluster at offset 0 of the data file.
 */
export function clusterType(hi: number, lo: number, extendedL2: boolean, externalData: boolean): ClusterType {
  if (isCompressed(hi)) return 'compressed'
  const off = hasOffset(hi, lo)
  if (hasZeroFlag(lo) && !extendedL2) return off ? 'zero-alloc' : 'zero-plain'
  if (!off) return externalData && isCopied(hi) ? 'normal' : 'unallocated'
  return 'normal'
}

/** A compressed cluster descriptor (qcow2.txt "Compressed Clusters Descriptor"). */
export interface CompressedCluster {
  /** host offset of the compressed data (any byte offset); exact as a bigint */
  readonly offsetRaw: bigint
  /** bytes the descriptor covers: whole 512-byte sectors counted from the sector of the offset */
  readonly size: number
}

/**
 * Decode a compressed descriptor. With x = 62 - (cluster_bits - 8): bits 0..x-1 are the host
 * offset, bits x..61 the number of additional 512-byte sectors. The COPIED bit is ignored here
 * (it must never be set; the check reports it).
 */
export function compressedCluster(hi: number, lo: number, clusterBits: number): CompressedCluster {
  const e = entryU64(hi, lo) & ~QCOW_OFLAG_COPIED
  const x = BigInt(62 - (clusterBits - 8))
  const offsetRaw = e & ((1n << x) - 1n)
  const sectors = Number((e >> x) & BigInt((1 << (clusterBits - 8)) - 1)) + 1
  return { offsetRaw, size: sectors * 512 - Number(offsetRaw & 511n) }
}

/**
 * The subcluster bitmap of an extended L2 entry (its bytes 8-15) as two words: `zeroBits` (hi,
 * bits 32-63: subcluster reads as zeros) and `allocBits` (lo, bits 0-31: subcluster allocated).
 */
export function subclusterZero(zeroBits: number, s: number): boolean {
  return ((zeroBits >>> s) & 1) !== 0
}

/** Whether subcluster `s` is allocated (see subclusterZero). */
export function subclusterAllocated(allocBits: number, s: number): boolean {
  return ((allocBits >>> s) & 1) !== 0
}

/** Subclusters per cluster with extended L2 entries. */
export const SUBCLUSTERS = EXTL2_SUBCLUSTERS
