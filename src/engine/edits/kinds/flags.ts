/** `qemu-img bitmap --enable` / `--disable`: set or clear the auto flag (docs/format.md §4.3). */
import { BME_FLAG_AUTO } from '../../qcow2/constants.js'
import type { EditKind } from './kind.js'

/** Set the auto flag: QEMU records writes into the bitmap. */
export interface EnableEdit {
  op: 'enable'
  name: string
}

/** Clear the auto flag: QEMU keeps the bitmap but stops recording writes. */
export interface DisableEdit {
  op: 'disable'
  name: string
}

/** The enable edit kind. */
export const enable: EditKind<EnableEdit> = {
  op: 'enable',
  describe: (e) => `Enable '${e.name}' (set the auto flag): QEMU records writes into it when the image is next used.`,
  async apply(e, m) {
    const b = m.find(e.name, 'enable')
    m.refuseInUse(b, 'enable')
    b.flags |= BME_FLAG_AUTO
    return undefined
  },
}

/** The disable edit kind. */
export const disable: EditKind<DisableEdit> = {
  op: 'disable',
  describe: (e) => `Disable '${e.name}' (clear the auto flag): QEMU keeps it but stops recording writes.`,
  async apply(e, m) {
    const b = m.find(e.name, 'disable')
    m.refuseInUse(b, 'disable')
    b.flags &= ~BME_FLAG_AUTO
    return undefined
  },
}
