/** `qemu-img bitmap --add [-g GRANULARITY] [--disable]`: a new, empty bitmap (docs/format.md §8). */
import { humanBytes } from '../../analysis/units.js'
import { ConstraintError } from '../../errors.js'
import { BME_FLAG_AUTO, BME_MAX_GRANULARITY_BITS, BME_MAX_PHYS_SIZE, BME_MIN_GRANULARITY_BITS, QCOW2_MAX_BITMAPS } from '../../qcow2/constants.js'
import { defaultGranularity, expectedTableSize } from '../../qcow2/bitmaps/constraints.js'
import type { EditKind } from './kind.js'

/** Add an empty bitmap; granularity undefined: qemu-img's default for the cluster size. */
export interface AddEdit {
  op: 'add'
  name: string
  granularity?: number
  /** created without the auto flag (qemu-img bitmap --add --disable) */
  disabled?: boolean
}

/** The add edit kind. */
export const add: EditKind<AddEdit> = {
  op: 'add',
  describe(e, ctx) {
    const g = e.granularity !== undefined
      ? humanBytes(e.granularity)
      : ctx?.clusterSize !== undefined ? `${humanBytes(defaultGranularity(ctx.clusterSize))}, qemu-img's default` : "qemu-img's default"
    return `Add bitmap '${e.name}' (granularity ${g}, ${e.disabled ? 'disabled' : 'enabled: QEMU records writes into it'}), empty.`
  },
  async apply(e, m) {
    const fail = (why: string, code: 'granularity-invalid' | 'disk-empty' | 'limit-exceeded', field?: string): never => {
      throw new ConstraintError(`Operation add on bitmap ${e.name} failed: ${why}`, code, field)
    }
    const g = e.granularity ?? defaultGranularity(m.clusterSize)
    const gb = Math.log2(g)
    if (!Number.isInteger(gb) || gb < BME_MIN_GRANULARITY_BITS) fail('Granularity must be power of 2 and at least 512', 'granularity-invalid', 'granularity')
    if (gb > BME_MAX_GRANULARITY_BITS) fail('Granularity is too big (maximum 2 GiB)', 'granularity-invalid', 'granularity')
    if (m.diskLength === 0) fail('the disk length is 0, so no bitmap can be stored', 'disk-empty')
    if (expectedTableSize(m.diskLength, gb, m.clusterSize) * m.clusterSize > BME_MAX_PHYS_SIZE) fail('Too much space will be occupied by the bitmap. Use larger granularity', 'granularity-invalid', 'granularity')
    if (m.count >= QCOW2_MAX_BITMAPS) fail(`the image already has ${QCOW2_MAX_BITMAPS} bitmaps`, 'limit-exceeded')
    const nameBytes = m.checkName(e.name, 'add')
    m.insert({ name: e.name, nameBytes, flags: e.disabled ? 0 : BME_FLAG_AUTO, granularityBits: gb, data: { kind: 'zero' }, renamed: true }, 'add')
    return undefined
  },
}
