/**
 * The rules of a server that can rewrite disk images (Jupyter's model): a random token per
 * start, compared in constant time; a Host header that names this server or a localhost name
 * (DNS rebinding); a WebSocket Origin that is this server's own. Pure functions, tested one by one.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'

/** 256 random bits, URL-safe (base64url, 43 characters). */
export function newToken(): string {
  return randomBytes(32).toString('base64url')
}

/** Constant-time comparison (both sides hashed first, so lengths leak nothing either). */
export function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false
  const a = createHash('sha256').update(expected).digest()
  const b = createHash('sha256').update(given).digest()
  return timingSafeEqual(a, b)
}

/** The host name of a Host header (`name`, `name:port`, `[v6]:port`), lower-cased; undefined when malformed. */
export function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined
  const h = header.trim().toLowerCase()
  const m = /^\[([0-9a-f:.]+)\](?::(\d{1,5}))?$/.exec(h) ?? /^([a-z0-9.-]+)(?::(\d{1,5}))?$/.exec(h)
  return m ? m[1] : undefined
}

const LOCAL_NAMES = new Set(['localhost', '127.0.0.1', '::1'])

/** The wildcard addresses: any interface. */
export function isWildcard(listenHost: string): boolean {
  return listenHost === '0.0.0.0' || listenHost === '::' || listenHost === ''
}

/**
 * May a request with this Host header be served? Yes for a localhost name or the address the
 * server listens on; when it listens on every interface, for any IP literal (never a DNS name:
 * that is what a rebinding attack sends).
 */
export function hostAllowed(header: string | undefined, listenHost: string): boolean {
  const name = hostName(header)
  if (name === undefined) return false
  if (LOCAL_NAMES.has(name)) return true
  const listen = listenHost.toLowerCase().replace(/^\[|\]$/g, '')
  if (name === listen) return true
  return isWildcard(listen) && isIP(name) !== 0
}

/**
 * May a WebSocket with this Origin connect? Only the page this server served: `http://` plus
 * the request's own Host. Non-browser clients send no Origin; they still need the token.
 */
export function originAllowed(origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return true
  if (!host) return false
  return origin.toLowerCase() === `http://${host.toLowerCase()}`
}

/** The headers every response carries (the app's own CSP is also in index.html). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; " +
    "font-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
}
