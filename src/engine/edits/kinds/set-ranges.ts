/**
 * Set ranges (qbm's own: qemu-img has no edit like it): set the bits of every granule meeting a
 * set of byte ranges, in addition to the bits already set. The ranges (a comparison's result,
 * e.g. A ∖ B) are named by the id the caller's PlanOptions.sources knows them by.
 */
import { humanBytes } from '../../analysis/units.js'
import { ConstraintError } from '../../errors.js'
import { setBitRange } from '../bits.js'
import type { EditKind } from './kind.js'

/** Set in bitmap `name` the granules of the byte ranges `resultId`; `what` names them ('a ∖ b'). */
export interface SetRangesEdit {
  op: 'set-ranges'
  name: string
  resultId: number
  what: string
}

/** The set-ranges edit kind. */
export const setRanges: EditKind<SetRangesEdit> = {
  op: 'set-ranges',
  describe: (e) => `Set in '${e.name}' every granule dirty in ${e.what} (qbm's own edit: qemu-img has none like it).`,
  async apply(e, m) {
    const t = m.find(e.name, 'set-ranges')
    m.refuseInUse(t, 'set-ranges')
    const ranges = await m.ranges(e.resultId, 'set-ranges', e.name)
    if (ranges.length % 2 !== 0) throw new ConstraintError(`Operation set-ranges on bitmap ${e.name} failed: the ranges come in pairs`, 'invalid-edit')
    const bytes = await m.bits(t)
    const g = 2 ** t.granularityBits
    let n = 0
    for (let i = 0; i < ranges.length; i += 2) {
      const a = Math.max(0, ranges[i]!)
      const b = Math.min(m.diskLength, ranges[i + 1]!)
      if (!(b > a)) continue
      setBitRange(bytes, Math.floor(a / g), Math.ceil(b / g))
      n += b - a
    }
    t.data = { kind: 'mem', bytes }
    return `${humanBytes(n)} in ${ranges.length / 2} range${ranges.length === 2 ? '' : 's'}.`
  },
}
