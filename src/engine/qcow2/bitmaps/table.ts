/**
 * Bitmap tables (spec §4.2): table_size big-endian u64 entries. Decoded to a Float64Array
 * where 0 = all zeroes, 1 = all ones, any other value = the data cluster's offset.
 */
import { FormatError } from '../../errors.js'
import type { BlockDevice } from '../../device.js'
import { BME_TABLE_ENTRY_OFFSET_MASK } from '../constants.js'
import { checkTableEntry } from './constraints.js'

export const ENTRY_ZEROES = 0
export const ENTRY_ONES = 1

export interface TableProblem {
  readonly index: number
  readonly offset: number
  readonly problem: string
  readonly value: bigint
}

export interface DecodedTable {
  readonly entries: Float64Array
  readonly problems: TableProblem[]
  /** Entries QEMU accepts but `qemu-img check` reports (data cluster past the end of the file: reads as zeros). */
  readonly warnings: TableProblem[]
}

/** Decode table bytes read at absolute `offset`; invalid entries decode as all-zeroes and are reported. */
export function decodeTable(buf: Uint8Array, offset: number, clusterSize: number, fileSize: number): DecodedTable {
  const n = buf.length >>> 3
  const entries = new Float64Array(n)
  const problems: TableProblem[] = []
  const warnings: TableProblem[] = []
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  for (let i = 0; i < n; i++) {
    const hi = view.getUint32(i * 8)
    const lo = view.getUint32(i * 8 + 4)
    if (hi === 0 && lo <= 1) { entries[i] = lo; continue }
    // Fast path: aligned offset without reserved bits.
    const e = (BigInt(hi) << 32n) | BigInt(lo)
    const bad = checkTableEntry(e, clusterSize)
    if (bad) {
      if (problems.length < 1000) problems.push({ index: i, offset: offset + i * 8, problem: bad, value: e })
      continue
    }
    const off = Number(e & BME_TABLE_ENTRY_OFFSET_MASK)
    if (off >= fileSize && warnings.length < 1000) {
      // QEMU loads such a bitmap (the read past the end returns zeros); only check complains.
      warnings.push({ index: i, offset: offset + i * 8, problem: `points past the end of the file (0x${fileSize.toString(16)}); QEMU reads it as zeros`, value: e })
    }
    entries[i] = off
  }
  return { entries, problems, warnings }
}

export function tableProblemError(structure: string, p: TableProblem): FormatError {
  return new FormatError(structure, `bitmap_table_entry[${p.index}]`, p.offset, p.problem, p.value)
}

/** Read and decode a table; the caller has bounded tableSize by the file size. */
export async function readTable(dev: BlockDevice, tableOffset: number, tableSize: number, clusterSize: number): Promise<DecodedTable> {
  const buf = await dev.read(tableOffset, tableSize * 8)
  return decodeTable(buf, tableOffset, clusterSize, dev.size)
}

/** Encode table entries (0, 1 or offsets) into tableSize*8 bytes padded with zeros to whole clusters. */
export function encodeTable(entries: ArrayLike<number>, clusterSize: number): Uint8Array {
  const bytes = Math.ceil((entries.length * 8) / clusterSize) * clusterSize
  const out = new Uint8Array(bytes)
  const v = new DataView(out.buffer)
  for (let i = 0; i < entries.length; i++) v.setBigUint64(i * 8, BigInt(entries[i]!))
  return out
}
