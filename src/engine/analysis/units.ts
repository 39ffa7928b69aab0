/** Sizes in human units and exact bytes; size suffixes as qemu-img parses them. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB']

/**
 * e.g. 1536 -> '1.5 KiB', 12,451,840 -> '11.9 MiB': three significant digits at most, trailing
 * zeros dropped, exact multiples without decimals; '—' for a value that is not a number. The one
 * implementation: the CLI prints it, the page shows it (src/engine/shared.ts).
 */
export function humanBytes(n: number): string {
  if (!Number.isFinite(n)) return '—'
  const neg = n < 0
  let v = Math.abs(n)
  if (v < 1024) return `${neg ? '-' : ''}${v} B`
  let u = 0
  while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++ }
  const s = Number.isInteger(v) ? v.toString() : (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '')
  return `${neg ? '-' : ''}${s} ${UNITS[u]}`
}

/** e.g. '1.5 KiB (1536 bytes)' */
export function humanAndExact(n: number): string {
  return n < 1024 ? `${n} bytes` : `${humanBytes(n)} (${n.toLocaleString('en-US')} bytes)`
}

/**
 * Parse a size as qemu-img does (QEMU util/cutils.c do_strtosz): '512', '64k', '1M', '2G',
 * '1.5T' (binary units; a fraction is truncated to whole bytes and needs a suffix), 'b' for
 * bytes, '0x10' hex without suffix. Also accepts 'KiB' / 'kb' spellings.
 */
export function parseSize(s: string): number {
  const bad = (why = 'use a number with an optional k, M, G, T, P or E suffix'): Error => new Error(`invalid size '${s}' (${why})`)
  const hexm = /^\s*0x([0-9a-f]+)\s*$/i.exec(s)
  if (hexm) {
    const v = parseInt(hexm[1]!, 16)
    if (!Number.isSafeInteger(v)) throw bad('not a whole number of bytes below 2^53')
    return v
  }
  const m = /^\s*(\d+)(?:\.(\d*))?\s*(?:([kmgtpe])(?:i?b)?|b)?\s*$/i.exec(s)
  if (!m) throw bad()
  const exp = m[3] ? ' kmgtpe'.indexOf(m[3].toLowerCase()) : 0
  const mul = 1024n ** BigInt(exp)
  const digits = m[2] ?? ''
  // Exact integer arithmetic: QEMU truncates the fraction (1.3k = 1331 bytes).
  const frac = digits ? (BigInt(digits) * mul) / 10n ** BigInt(digits.length) : 0n
  if (exp === 0 && digits && BigInt(digits) !== 0n) throw bad('a fraction of a byte needs a k, M, G, T, P or E suffix')
  const v = BigInt(m[1]!) * mul + frac
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('not a whole number of bytes below 2^53')
  return Number(v)
}

/** '0x1f000' */
export function hex(n: number): string {
  return '0x' + n.toString(16)
}
