/**
 * Recent files: FileSystemFileHandles kept in IndexedDB (a handle is structured-cloneable;
 * the file's bytes are not stored). After a reload even read permission is back to 'prompt',
 * so opening a recent file re-requests it on the user's click.
 */

export interface RecentEntry {
  id: string
  name: string
  openedAt: number
  handle: FileSystemFileHandle
}

/** The store's view of recent files (a fake in tests). */
export interface RecentFiles {
  list(): Promise<RecentEntry[]>
  add(handle: FileSystemFileHandle): Promise<RecentEntry[]>
  remove(id: string): Promise<RecentEntry[]>
}

const DB = 'qbm'
const STORE = 'recent'
const MAX = 8

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
}

function openDb(): Promise<IDBDatabase> {
  const r = indexedDB.open(DB, 1)
  r.onupgradeneeded = () => {
    r.result.createObjectStore(STORE, { keyPath: 'id' })
  }
  return req(r)
}

async function withStore<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => Promise<T>): Promise<T> {
  const db = await openDb()
  try {
    const tx = db.transaction(STORE, mode)
    const out = await fn(tx.objectStore(STORE))
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve()
      tx.onerror = () => reject(tx.error)
      tx.onabort = () => reject(tx.error)
    })
    return out
  } finally {
    db.close()
  }
}

async function all(): Promise<RecentEntry[]> {
  const rows = await withStore('readonly', (s) => req(s.getAll() as IDBRequest<RecentEntry[]>))
  return rows.sort((a, b) => b.openedAt - a.openedAt)
}

/** IndexedDB-backed recent files; `undefined` where IndexedDB is missing. */
export function indexedDbRecentFiles(): RecentFiles | undefined {
  if (typeof indexedDB === 'undefined') return undefined
  return {
    list: () => all().catch(() => []),
    async add(handle) {
      const existing = await all().catch(() => [] as RecentEntry[])
      const same: RecentEntry[] = []
      for (const e of existing) {
        if (await e.handle.isSameEntry(handle).catch(() => false)) same.push(e)
      }
      const entry: RecentEntry = { id: `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`, name: handle.name, openedAt: Date.now(), handle }
      const keep = existing.filter((e) => !same.includes(e)).slice(0, MAX - 1)
      const drop = existing.filter((e) => !keep.includes(e))
      await withStore('readwrite', async (s) => {
        for (const d of drop) await req(s.delete(d.id))
        await req(s.put(entry))
      })
      return [entry, ...keep]
    },
    async remove(id) {
      await withStore('readwrite', (s) => req(s.delete(id)))
      return all()
    },
  }
}
