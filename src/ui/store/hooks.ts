/** React bindings of the app store: a context for the instance and selector hooks. */
import { createContext, createElement, useContext, useMemo, type ReactNode } from 'react'
import { useStore } from 'zustand'
import { useShallow } from 'zustand/react/shallow'
import type { AppActions, AppState, AppStore } from './app-store.js'

const StoreContext = createContext<AppStore | null>(null)

export function StoreProvider({ store, children }: { store: AppStore; children: ReactNode }): ReactNode {
  return createElement(StoreContext.Provider, { value: store }, children)
}

function useAppStoreApi(): AppStore {
  const s = useContext(StoreContext)
  if (!s) throw new Error('StoreProvider is missing')
  return s
}

/** One slice of the state; re-renders when it changes (Object.is). */
export function useApp<T>(selector: (s: AppState & AppActions) => T): T {
  return useStore(useAppStoreApi(), selector)
}

/** Several fields at once, compared shallowly. */
export function useAppShallow<T extends object>(selector: (s: AppState & AppActions) => T): T {
  return useStore(useAppStoreApi(), useShallow(selector))
}

/** The actions: stable functions, one object per store (never re-renders). */
export function useActions(): AppActions {
  const store = useAppStoreApi()
  return useMemo(() => store.getState() as AppActions, [store])
}

/** Direct access, for event handlers that need the latest state without re-rendering. */
export function useStoreApi(): AppStore {
  return useAppStoreApi()
}
