/**
 * Copy a bitmap (qbm's own: qemu-img bitmap has no copy; QMP would need block-dirty-bitmap-add
 * then -merge): a new bitmap `newName` with the granularity, flags and bits of bitmap `name`.
 * Its table and data are written anew, never shared with the source's (a cluster has one owner).
 */
import { ConstraintError } from '../../errors.js'
import { QCOW2_MAX_BITMAPS } from '../../qcow2/constants.js'
import type { DataSource, EditKind } from './kind.js'

/** Copy bitmap `name` to a new bitmap `newName`. */
export interface CopyEdit {
  op: 'copy'
  name: string
  newName: string
}

/** The copy edit kind. */
export const copy: EditKind<CopyEdit> = {
  op: 'copy',
  describe: (e) => `Copy '${e.name}' to a new bitmap '${e.newName}' (same granularity, flags and bits; qbm's own edit).`,
  async apply(e, m) {
    const src = m.find(e.name, 'copy')
    m.refuseInUse(src, 'copy')
    if (m.count >= QCOW2_MAX_BITMAPS) throw new ConstraintError(`Operation copy on bitmap ${e.name} failed: the image already has ${QCOW2_MAX_BITMAPS} bitmaps`, 'limit-exceeded')
    const nameBytes = m.checkName(e.newName, 'copy', e.name)
    const d = src.data
    // Bits in memory are the source's own array, which later edits change in place: copy them.
    const data: DataSource = d.kind === 'zero' || d.kind === 'ones' ? { kind: d.kind }
      : { kind: 'mem', bytes: d.kind === 'mem' ? d.bytes.slice() : await m.bits(src) }
    m.insert({ name: e.newName, nameBytes, flags: src.flags, granularityBits: src.granularityBits, data, renamed: true }, 'copy')
    return undefined
  },
}
