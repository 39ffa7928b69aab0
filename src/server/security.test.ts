/**
 * The rules of security.ts one by one, each with inputs that try to break it: tokens of the
 * wrong length or one character off, Host headers a DNS-rebinding page sends, Origins of other
 * pages (other ports, other schemes, `null`).
 */
import { describe, expect, it } from 'vitest'
import { SECURITY_HEADERS, hostAllowed, hostName, isWildcard, newToken, originAllowed, tokenMatches } from './security.js'

describe('newToken', () => {
  it('carries at least 128 random bits, URL-safe, and differs every time', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const t = newToken()
      expect(t).toMatch(/^[A-Za-z0-9_-]+$/)
      expect(Buffer.from(t, 'base64url').length * 8).toBeGreaterThanOrEqual(128)
      seen.add(t)
    }
    expect(seen.size).toBe(200)
    // Every base64url digit position varies: no fixed prefix or padding eats the entropy.
    const tokens = [...seen]
    for (let pos = 0; pos < 42; pos++) expect(new Set(tokens.map((t) => t[pos])).size, `position ${pos}`).toBeGreaterThan(8)
  })
})

describe('tokenMatches', () => {
  const t = newToken()
  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['one character changed', t.slice(0, -1) + (t.endsWith('A') ? 'B' : 'A')],
    ['a prefix', t.slice(0, 16)],
    ['longer', t + 'x'],
    ['other case', t.toUpperCase() === t ? t.toLowerCase() : t.toUpperCase()],
    ['with the prefix of the subprotocol', `qbm-token.${t}`],
  ])('refuses a token that is %s', (_what, given) => {
    expect(tokenMatches(t, given)).toBe(false)
  })
  it('accepts the very token', () => {
    expect(tokenMatches(t, `${t}`)).toBe(true)
  })
})

describe('hostName', () => {
  it.each([
    ['127.0.0.1:8421', '127.0.0.1'],
    ['LOCALHOST', 'localhost'],
    ['[::1]:8421', '::1'],
    ['example.org', 'example.org'],
    ['', undefined],
    ['evil.example:80:90', undefined],
    ['user@127.0.0.1', undefined],
    ['127.0.0.1:8421/path', undefined],
    ['[::1', undefined],
    ['127.0.0.1 :8421', undefined],
  ])('%j -> %j', (header, name) => {
    expect(hostName(header)).toBe(name)
  })
})

describe('hostAllowed (DNS rebinding)', () => {
  it.each([
    // [Host header, listen address, allowed]
    ['127.0.0.1:8421', '127.0.0.1', true],
    ['localhost:8421', '127.0.0.1', true],
    ['[::1]:8421', '127.0.0.1', true],
    ['evil.example:8421', '127.0.0.1', false],
    ['evil.example', '127.0.0.1', false],
    ['localhost.evil.example:8421', '127.0.0.1', false],
    ['127.0.0.1.nip.io:8421', '127.0.0.1', false],
    ['10.0.0.5:8421', '127.0.0.1', false],
    [undefined, '127.0.0.1', false],
    ['10.0.0.5:8421', '10.0.0.5', true],
    ['10.0.0.6:8421', '10.0.0.5', false],
    // On every interface: any IP literal (the address the user typed), never a DNS name.
    ['192.168.1.20:8421', '0.0.0.0', true],
    ['[fe80::1]:8421', '::', true],
    ['myhost.lan:8421', '0.0.0.0', false],
    ['evil.example:8421', '::', false],
  ])('Host %j on %s: %s', (header, listen, ok) => {
    expect(hostAllowed(header, listen)).toBe(ok)
  })
  it('knows the wildcard addresses', () => {
    expect(['0.0.0.0', '::', ''].every(isWildcard)).toBe(true)
    expect(['127.0.0.1', '::1', '10.0.0.1'].some(isWildcard)).toBe(false)
  })
})

describe('originAllowed', () => {
  it.each([
    ['http://127.0.0.1:8421', '127.0.0.1:8421', true],
    ['http://LOCALHOST:8421', 'localhost:8421', true],
    [undefined, '127.0.0.1:8421', true], // not a browser: the token still decides
    ['http://127.0.0.1:9999', '127.0.0.1:8421', false],
    ['https://127.0.0.1:8421', '127.0.0.1:8421', false],
    ['http://localhost:8421', '127.0.0.1:8421', false],
    ['http://evil.example', '127.0.0.1:8421', false],
    ['null', '127.0.0.1:8421', false],
    ['file://', '127.0.0.1:8421', false],
    ['http://127.0.0.1:8421', undefined, false],
    ['http://127.0.0.1:8421/', '127.0.0.1:8421', false],
  ])('Origin %j with Host %j: %s', (origin, host, ok) => {
    expect(originAllowed(origin, host)).toBe(ok)
  })
})

describe('SECURITY_HEADERS', () => {
  it('keep scripts, connections and frames to this origin', () => {
    const csp = SECURITY_HEADERS['Content-Security-Policy']!
    const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k!, v]))
    expect(directives.get('default-src')).toEqual(["'self'"])
    expect(directives.get('script-src')).toEqual(["'self'"])
    expect(directives.get('connect-src')).toEqual(["'self'"])
    expect(directives.get('object-src')).toEqual(["'none'"])
    expect(directives.get('frame-ancestors')).toEqual(["'none'"])
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/)
    expect(SECURITY_HEADERS['X-Content-Type-Options']).toBe('nosniff')
  })
})
