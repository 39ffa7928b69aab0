/**
 * The internal snapshot table (qcow2.txt "Snapshot table"), read the way qemu-img check reads
 * it (QEMU block/qcow2-snapshot.c qcow2_check_read_snapshot_table and qcow2_do_read_snapshots
 * without repair). In check mode QEMU does not read the table at open, so a broken table makes
 * the check itself fail (exit 1), not the open.
 *
 * Each entry: u64 l1_table_offset, u32 l1_size, u16 id_str_size, u16 name_size, u32 date_sec,
 * u32 date_nsec, u64 vm_clock_nsec, u32 vm_state_size, u32 extra_data_size, then extra data,
 * id, name; the next entry starts at the next multiple of 8.
 */
import type { BlockDevice } from '../device.js'
import { offsetFromWords, u64Of } from '../bytes.js'
import { MAX_L1_BYTES, MAX_SNAPSHOTS } from '../qcow2/constants.js'
import type { Header } from '../qcow2/header.js'
import { SNAPSHOT_HEADER_SIZE, snapshotTableProblem } from '../qcow2/open.js'
import { readPadded } from '../padded.js'

/** Byte offsets inside a snapshot table entry (QEMU QCowSnapshotHeader). */
export const SnapshotField = {
  l1TableOffset: 0,
  l1Size: 8,
  idStrSize: 12,
  nameSize: 14,
  dateSec: 16,
  dateNsec: 20,
  vmClockNsec: 24,
  vmStateSize: 32,
  extraDataSize: 36,
} as const

/** QEMU's QCOW_MAX_SNAPSHOT_EXTRA_DATA */
export const MAX_SNAPSHOT_EXTRA_DATA = 1024
/** QEMU's QCOW_MAX_SNAPSHOTS_SIZE */
export const MAX_SNAPSHOTS_SIZE = 1024 * MAX_SNAPSHOTS
/** Largest entry: header, extra data, a 64 KiB id and a 64 KiB name. */
const MAX_ENTRY = SNAPSHOT_HEADER_SIZE + MAX_SNAPSHOT_EXTRA_DATA + 2 * 0xffff

/** One snapshot as the refcount check uses it. */
export interface Snapshot {
  readonly index: number
  /** absolute offset of the entry */
  readonly offset: number
  /** l1_table_offset; FAR above 2^53 (docs/format.md §0.3) */
  readonly l1TableOffset: number
  /** l1_table_offset exactly */
  readonly l1TableOffsetRaw: bigint
  /** l1_table_offset is a multiple of the cluster size */
  readonly l1Aligned: boolean
  readonly l1Size: number
  readonly extraDataSize: number
  readonly id: string
  readonly name: string
}

/** The table, or why QEMU's check stops at it (the message qemu-img check prints, and errno). */
export type SnapshotTable =
  | { readonly ok: true; readonly snapshots: Snapshot[]; readonly offset: number; readonly size: number }
  | { readonly ok: false; readonly error: string; readonly errno: 'EFBIG' | 'EINVAL' }

const latin1 = new TextDecoder('latin1')

function cString(b: Uint8Array): string {
  const nul = b.indexOf(0)
  return latin1.decode(nul >= 0 ? b.subarray(0, nul) : b)
}

/** Read nb_snapshots entries at snapshots_offset, bounded by QEMU's 65536 entries and 64 MiB. */
export async function readSnapshotTable(dev: BlockDevice, h: Header): Promise<SnapshotTable> {
  const cs = h.clusterSize
  const bad = snapshotTableProblem(h)
  if (bad) return { ok: false, error: `ERROR snapshot table ${bad.problem}`, errno: bad.errno }
  if (h.nbSnapshots === 0) return { ok: true, snapshots: [], offset: h.snapshotsOffset, size: 0 }

  // The whole table lies within 64 MiB plus one entry of its start: read that (or up to the
  // end of the file) once, zero-padded like every QEMU read.
  const span = Math.min(MAX_SNAPSHOTS_SIZE + MAX_ENTRY + 8, Math.max(0, dev.size - h.snapshotsOffset))
  const buf = await readPadded(dev, h.snapshotsOffset, span)
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const at = (pos: number, len: number): Uint8Array => {
    if (pos + len <= buf.length) return buf.subarray(pos, pos + len)
    const out = new Uint8Array(len)
    if (pos < buf.length) out.set(buf.subarray(pos))
    return out
  }
  const u32 = (pos: number): number => (pos + 4 <= buf.length ? view.getUint32(pos) : new DataView(at(pos, 4).buffer).getUint32(0))

  const snapshots: Snapshot[] = []
  let pos = 0
  let tableLength = 0
  for (let i = 0; i < h.nbSnapshots; i++) {
    tableLength = Math.ceil(tableLength / 8) * 8
    pos = Math.ceil(pos / 8) * 8
    const hi = u32(pos + SnapshotField.l1TableOffset)
    const lo = u32(pos + SnapshotField.l1TableOffset + 4)
    const l1Size = u32(pos + SnapshotField.l1Size)
    // id_str_size and name_size: two u16 in one word
    const sizes = u32(pos + SnapshotField.idStrSize)
    const idSize = sizes >>> 16
    const nameSize = sizes & 0xffff
    const extraDataSize = u32(pos + SnapshotField.extraDataSize)
    if (extraDataSize > MAX_SNAPSHOT_EXTRA_DATA) {
      return { ok: false, error: `ERROR failed to read the snapshot table: Too much extra metadata in snapshot table entry ${i}`, errno: 'EFBIG' }
    }
    const entryOffset = h.snapshotsOffset + pos
    pos += SNAPSHOT_HEADER_SIZE + extraDataSize
    const id = cString(at(pos, idSize))
    pos += idSize
    const name = cString(at(pos, nameSize))
    pos += nameSize
    tableLength += SNAPSHOT_HEADER_SIZE + extraDataSize + idSize + nameSize
    if (tableLength > MAX_SNAPSHOTS_SIZE) {
      return { ok: false, error: 'ERROR failed to read the snapshot table: Snapshot table is too big', errno: 'EFBIG' }
    }
    snapshots.push({
      index: i,
      offset: entryOffset,
      l1TableOffset: offsetFromWords(hi, lo),
      l1TableOffsetRaw: u64Of(hi, lo),
      l1Aligned: lo % cs === 0,
      l1Size,
      extraDataSize,
      id,
      name,
    })
  }
  return { ok: true, snapshots, offset: h.snapshotsOffset, size: pos }
}

/** QEMU's limit on an L1 table, in entries. */
export const MAX_L1_ENTRIES = MAX_L1_BYTES / 8
