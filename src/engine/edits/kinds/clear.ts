/** `qemu-img bitmap --clear`: every bit 0 (docs/format.md §8). */
import type { EditKind } from './kind.js'

/** Clear every bit of a bitmap. */
export interface ClearEdit {
  op: 'clear'
  name: string
}

/** The clear edit kind. */
export const clear: EditKind<ClearEdit> = {
  op: 'clear',
  describe: (e) => `Clear every dirty bit of '${e.name}'.`,
  async apply(e, m) {
    const b = m.find(e.name, 'clear')
    m.refuseInUse(b, 'clear')
    b.data = { kind: 'zero' }
    return undefined
  },
}
