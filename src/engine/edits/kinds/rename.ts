/**
 * Rename a bitmap (qbm's own: qemu-img bitmap has no rename; QEMU's QMP has none either). The
 * bitmap keeps its table and data; only its directory entry is written anew (docs/format.md §8).
 */
import type { EditKind } from './kind.js'

/** Give a bitmap a new name. */
export interface RenameEdit {
  op: 'rename'
  name: string
  newName: string
}

/** The rename edit kind. */
export const rename: EditKind<RenameEdit> = {
  op: 'rename',
  describe: (e) => `Rename '${e.name}' to '${e.newName}'.`,
  async apply(e, m) {
    const b = m.find(e.name, 'rename')
    m.rename(b, e.newName, m.checkName(e.newName, 'rename', e.name), 'rename')
    return undefined
  },
}
