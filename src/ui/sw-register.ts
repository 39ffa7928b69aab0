/**
 * Service worker registration (production builds only) and the update flow: a new version is
 * offered, never forced; the page reloads only after the user agrees.
 */
import { useSyncExternalStore } from 'react'

let apply: (() => void) | null = null
const listeners = new Set<() => void>()

function offer(w: ServiceWorker): void {
  apply = () => {
    accepted = true
    w.postMessage({ type: 'skip-waiting' })
  }
  for (const l of listeners) l()
}

let accepted = false

export function registerServiceWorker(): void {
  if (!('serviceWorker' in navigator)) return
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    // The first install also changes the controller (clients.claim): reload only on request.
    if (accepted) location.reload()
  })
  navigator.serviceWorker.register(new URL('sw.js', document.baseURI), { scope: './' }).then((reg) => {
    if (reg.waiting && navigator.serviceWorker.controller) offer(reg.waiting)
    reg.addEventListener('updatefound', () => {
      const w = reg.installing
      w?.addEventListener('statechange', () => {
        if (w.state === 'installed' && navigator.serviceWorker.controller) offer(w)
      })
    })
  }).catch(() => undefined)
}

/** The pending update's "apply" function, or null when there is none. */
export function useUpdate(): (() => void) | null {
  return useSyncExternalStore(
    (cb) => { listeners.add(cb); return () => listeners.delete(cb) },
    () => apply,
    () => null,
  )
}
