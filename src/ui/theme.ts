/** The system colour scheme, live (prefers-color-scheme), for what CSS cannot paint: canvases. */
import { useSyncExternalStore } from 'react'
import type { Theme } from './heatmap/colors.js'

const query = (): MediaQueryList | undefined =>
  typeof window !== 'undefined' && window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : undefined

function subscribe(cb: () => void): () => void {
  const q = query()
  q?.addEventListener('change', cb)
  return () => q?.removeEventListener('change', cb)
}

export function useTheme(): Theme {
  return useSyncExternalStore(subscribe, () => (query()?.matches ? 'dark' : 'light'), () => 'light')
}

/** A CSS custom property's current value (e.g. '--text'). */
export function cssVar(name: string, fallback: string): string {
  if (typeof document === 'undefined') return fallback
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback
}
