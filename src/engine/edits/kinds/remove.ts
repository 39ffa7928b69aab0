/** `qemu-img bitmap --remove`: drop a bitmap and free its clusters (docs/format.md §8). */
import type { EditKind } from './kind.js'

/** Remove a bitmap. */
export interface RemoveEdit {
  op: 'remove'
  name: string
}

/** The remove edit kind. */
export const remove: EditKind<RemoveEdit> = {
  op: 'remove',
  describe: (e) => `Remove bitmap '${e.name}' and free its clusters. Backups based on it must restart with a full backup.`,
  async apply(e, m) {
    m.delete(m.find(e.name, 'remove'))
    return undefined
  },
}
