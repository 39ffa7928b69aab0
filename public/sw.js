/*
 * qbm's service worker: keeps the app's own files (and the demo image) in a cache so qbm works
 * offline once loaded. It never touches other origins, and it never sees the user's images:
 * those are read from disk through File objects and handles, not fetched.
 *
 * `vite build` rewrites the two constants below (vite.config.ts, plugin qbm-service-worker):
 * BUILD changes with every build, so the browser notices a new version.
 */
const BUILD = 'dev'
const ASSETS = []

const CACHE = `qbm-${BUILD}`

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(['./', ...ASSETS])))
})

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const k of await caches.keys()) if (k.startsWith('qbm-') && k !== CACHE) await caches.delete(k)
    await self.clients.claim()
  })())
})

self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'skip-waiting') self.skipWaiting()
})

self.addEventListener('fetch', (event) => {
  const req = event.request
  if (req.method !== 'GET') return
  const url = new URL(req.url)
  if (url.origin !== self.location.origin) return
  if (req.mode === 'navigate') {
    // Network first for the page, so a new build shows up; the cached page when offline.
    event.respondWith(fetch(req).catch(async () => (await caches.match(req, { ignoreSearch: true, ignoreVary: true })) || (await caches.match('./', { ignoreVary: true })) || Response.error()))
    return
  }
  // Hashed assets never change: cache first. vite preview answers with `Vary: Origin`, and
  // module scripts are requested in cors mode with an Origin header, so ignore Vary.
  event.respondWith((async () => {
    const hit = await caches.match(req, { ignoreVary: true })
    if (hit) return hit
    const res = await fetch(req)
    if (res.ok && res.type === 'basic') {
      const copy = res.clone()
      caches.open(CACHE).then((c) => c.put(req, copy)).catch(() => undefined)
    }
    return res
  })())
})
