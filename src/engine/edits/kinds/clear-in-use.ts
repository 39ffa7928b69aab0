/**
 * Clear in_use (qbm's own, for a bitmap a crash left in use: docs/format.md §8 "recover"). QEMU
 * refuses such a bitmap; qemu-img bitmap can only remove it. The mode says what its bits become.
 */
import { ConstraintError } from '../../errors.js'
import { BME_FLAG_IN_USE } from '../../qcow2/constants.js'
import type { EditKind } from './kind.js'

/** `keep` the stored bits (unsafe for backups), mark every bit `dirty` (safe), or `empty` it. */
export type ClearInUseMode = 'keep' | 'dirty' | 'empty'

/** Clear the in_use flag of a bitmap. */
export interface ClearInUseEdit {
  op: 'clear-in-use'
  name: string
  mode: ClearInUseMode
}

const WHAT: Record<ClearInUseMode, string> = {
  keep: 'keep its stored bits (writes made while it was in use are NOT in them: an incremental backup from it may miss data)',
  dirty: 'mark every bit dirty (the next incremental backup from it copies the whole disk)',
  empty: 'clear every bit (the next incremental backup from it copies nothing until new writes)',
}

/** The clear-in-use edit kind. */
export const clearInUse: EditKind<ClearInUseEdit> = {
  op: 'clear-in-use',
  describe: (e) => `Clear in_use on '${e.name}' and ${WHAT[e.mode]}.`,
  async apply(e, m) {
    const b = m.find(e.name, 'clear-in-use')
    if (!(b.flags & BME_FLAG_IN_USE)) throw new ConstraintError(`Operation clear-in-use on bitmap ${e.name} failed: the bitmap is not in use`, 'bitmap-not-in-use')
    if (e.mode === 'keep') {
      const bad = await m.storedBitsProblem(b)
      if (bad) throw new ConstraintError(`Operation clear-in-use on bitmap ${e.name} failed: its stored bits cannot be kept: ${bad}; mark every bit dirty or clear them instead`, 'stored-bits-unusable')
      m.warn(`'${e.name}' keeps the bits stored at its last clean save: writes made while it was in use are not in it, so an incremental backup from it may miss data (marking every bit dirty is the safe choice)`)
    }
    b.flags &= ~BME_FLAG_IN_USE
    if (e.mode === 'dirty') b.data = { kind: 'ones' }
    else if (e.mode === 'empty') b.data = { kind: 'zero' }
    else await m.keepStoredBits(b)
    return undefined
  },
}
