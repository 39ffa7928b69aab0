/**
 * The recent files part of the app store: the file handles opened lately (kept by ../recent.ts
 * in IndexedDB), reopened with the read permission asked again inside the user's click.
 */
import type { RecentEntry, RecentFiles } from '../recent.js'
import type { StoreContext } from './context.js'

/** The recent files field of the app state. */
export interface RecentState {
  recent: RecentEntry[]
}

/** The recent files actions. */
export interface RecentActions {
  openRecent(entry: RecentEntry, requestRead: (h: FileSystemFileHandle) => Promise<boolean>): Promise<void>
  loadRecent(): Promise<void>
  forgetRecent(id: string): Promise<void>
}

/** No recent file (until loadRecent). */
export const initialRecent = (): RecentState => ({ recent: [] })

/** The recent files actions, and `remember` for a handle just opened. */
export function createRecent(ctx: StoreContext, files: RecentFiles | undefined): { actions: RecentActions; remember: (h: FileSystemFileHandle) => void } {
  const { get, set } = ctx
  return {
    remember(handle) {
      files?.add(handle).then((recent) => set({ recent }), () => undefined)
    },
    actions: {
      async openRecent(entry, requestRead) {
        let ok = false
        try {
          ok = await requestRead(entry.handle)
        } catch {
          ok = false
        }
        if (!ok) {
          set({ error: { context: `Opening ${entry.name}`, info: { code: 'NotAllowedError', message: `Permission to read '${entry.name}' was not granted. Open it again with "Open image…" or by dropping it.` } } })
          return
        }
        await get().open({ kind: 'handle', handle: entry.handle }, 'recent')
      },

      async loadRecent() {
        if (!files) return
        set({ recent: await files.list() })
      },

      async forgetRecent(id) {
        if (!files) return
        set({ recent: await files.remove(id) })
      },
    },
  }
}
