/** STUB until branch h3-hostio lands (its API, no implementation): QEMU's image locks. */
export interface LockHolder { pid?: number; program?: string; write: boolean; lockBytes: number[] }
export interface LockTable { holderOf(st: { dev: number; ino: number }): LockHolder | null }
export function readLockTable(): LockTable {
  return { holderOf: () => null }
}
export function holderText(h: LockHolder): string {
  return `${h.program ?? 'a process'}${h.pid !== undefined ? ` (pid ${h.pid})` : ''}`
}
