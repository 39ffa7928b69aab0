/**
 * The built app (dist/), served read-only: GET and HEAD of files inside the app directory only,
 * no listing, no path outside it (`..`, encoded or not, and symlinks out of it are refused).
 */
import { createReadStream, realpathSync, statSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join, sep } from 'node:path'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
  '.qcow2': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
}

/** The file under `root` a URL path names, or undefined when it names nothing servable. */
export function resolveAppPath(root: string, urlPath: string): string | undefined {
  let p: string
  try {
    p = decodeURIComponent(urlPath.split('?')[0]!.split('#')[0]!)
  } catch {
    return undefined
  }
  if (p.includes('\0') || p.split('/').some((part) => part === '..')) return undefined
  if (p === '/' || p === '') p = '/index.html'
  const full = join(root, p)
  let real: string
  try {
    real = realpathSync(full)
  } catch {
    return undefined
  }
  const rootReal = realpathSync(root)
  if (real !== rootReal && !real.startsWith(rootReal + sep)) return undefined
  try {
    if (!statSync(real).isFile()) return undefined
  } catch {
    return undefined
  }
  return real
}

/** Serve `req` from `root`; `headers` go on every response. */
export function serveStatic(root: string, req: IncomingMessage, res: ServerResponse, headers: Readonly<Record<string, string>>): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { ...headers, Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n')
    return
  }
  const file = resolveAppPath(root, req.url ?? '/')
  if (!file) {
    res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n')
    return
  }
  const size = statSync(file).size
  res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': String(size) })
  if (req.method === 'HEAD') { res.end(); return }
  createReadStream(file).pipe(res)
}
