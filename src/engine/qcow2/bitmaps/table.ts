/**
 * Bitmap tables (docs/format.md §4.2): table_size big-endian u64 entries. Decoded to a Float64Array
 * where 0 = all zeroes, 1 = all ones, any other value = the data cluster's offset.
 */
import { u64Of } from '../../bytes.js'
import { FormatError } from '../../errors.js'
import type { BlockDevice } from '../../device.js'
import { BME_TABLE_ENTRY_OFFSET_MASK, BME_TABLE_ENTRY_SIZE } from '../constants.js'
import { checkTableEntry } from './constraints.js'

/** Decoded table entry: the bitmap cluster reads as all zeros. */
export const ENTRY_ZEROES = 0
/** Decoded table entry: the bitmap cluster reads as all ones. */
export const ENTRY_ONES = 1

const OFFSET_HI = Number(BME_TABLE_ENTRY_OFFSET_MASK >> 32n)
const OFFSET_LO = Number(BME_TABLE_ENTRY_OFFSET_MASK & 0xffffffffn)

/**
 * Data cluster offset of a table entry given as its big-endian words (bits 9-55). Exact as a
 * number: a multiple of 512 below 2^56 (docs/format.md §0.3).
 */
export function dataOffsetOf(hi: number, lo: number): number {
  return (hi & OFFSET_HI) * 2 ** 32 + ((lo & OFFSET_LO) >>> 0)
}

/** An entry QEMU rejects (or accepts with a complaint): where it is and why. */
export interface TableProblem {
  readonly index: number
  readonly offset: number
  readonly problem: string
  readonly value: bigint
}

/** A decoded table and what was wrong with its entries. */
export interface DecodedTable {
  readonly entries: Float64Array
  readonly problems: TableProblem[]
  /** Entries QEMU accepts but `qemu-img check` reports (data cluster past the end of the file: reads as zeros). */
  readonly warnings: TableProblem[]
}

/** Decode table bytes read at absolute `offset`; invalid entries decode as all-zeroes and are reported. */
export function decodeTable(buf: Uint8Array, offset: number, clusterSize: number, fileSize: number): DecodedTable {
  const n = Math.floor(buf.length / BME_TABLE_ENTRY_SIZE)
  const entries = new Float64Array(n)
  const problems: TableProblem[] = []
  const warnings: TableProblem[] = []
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  for (let i = 0; i < n; i++) {
    const hi = view.getUint32(i * BME_TABLE_ENTRY_SIZE)
    const lo = view.getUint32(i * BME_TABLE_ENTRY_SIZE + 4)
    // the common cases first: all zeros (0) or all ones (1)
    if (hi === 0 && lo <= 1) { entries[i] = lo; continue }
    const e = u64Of(hi, lo)
    const bad = checkTableEntry(e, clusterSize)
    if (bad) {
      if (problems.length < 1000) problems.push({ index: i, offset: offset + i * BME_TABLE_ENTRY_SIZE, problem: bad, value: e })
      continue
    }
    const off = dataOffsetOf(hi, lo)
    if (off >= fileSize && warnings.length < 1000) {
      // QEMU loads such a bitmap (the read past the end returns zeros); only check complains.
      warnings.push({ index: i, offset: offset + i * BME_TABLE_ENTRY_SIZE, problem: `points past the end of the file (0x${fileSize.toString(16)}); QEMU reads it as zeros`, value: e })
    }
    entries[i] = off
  }
  return { entries, problems, warnings }
}

/** The FormatError form of a table problem, for messages. */
export function tableProblemError(structure: string, p: TableProblem): FormatError {
  return new FormatError(structure, `bitmap_table_entry[${p.index}]`, p.offset, p.problem, p.value)
}

/** Read and decode a table; the caller has bounded tableSize by the file size. */
export async function readTable(dev: BlockDevice, tableOffset: number, tableSize: number, clusterSize: number): Promise<DecodedTable> {
  const buf = await dev.read(tableOffset, tableSize * BME_TABLE_ENTRY_SIZE)
  return decodeTable(buf, tableOffset, clusterSize, dev.size)
}

/** Encode table entries (0, 1 or offsets) into tableSize*8 bytes padded with zeros to whole clusters. */
export function encodeTable(entries: ArrayLike<number>, clusterSize: number): Uint8Array {
  const bytes = Math.ceil((entries.length * BME_TABLE_ENTRY_SIZE) / clusterSize) * clusterSize
  const out = new Uint8Array(bytes)
  const v = new DataView(out.buffer)
  for (let i = 0; i < entries.length; i++) v.setBigUint64(i * BME_TABLE_ENTRY_SIZE, BigInt(entries[i]!))
  return out
}
