/** Sizes in human units and exact bytes; size suffixes as qemu-img parses them. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB']

/** e.g. 1536 -> '1.5 KiB'; exact multiples print without decimals. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`
  let u = 0
  let v = n
  while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++ }
  const s = Number.isInteger(v) ? v.toString() : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)
  return `${s} ${UNITS[u]}`
}

/** e.g. '1.5 KiB (1536 bytes)' */
export function humanAndExact(n: number): string {
  return n < 1024 ? `${n} bytes` : `${humanBytes(n)} (${n.toLocaleString('en-US')} bytes)`
}

/** Parse '64k', '1M', '2G', '512', '1.5T' (binary units, like qemu-img). */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(?:i?b)?\s*$/i.exec(s)
  if (!m) throw new Error(`invalid size '${s}' (use a number with an optional k, M, G, T, P or E suffix)`)
  const exp = ' kmgtpe'.indexOf((m[2] || ' ').toLowerCase())
  const v = Number(m[1]) * 1024 ** exp
  if (!Number.isSafeInteger(v)) throw new Error(`invalid size '${s}': not a whole number of bytes below 2^53`)
  return v
}

export function hex(n: number): string {
  return '0x' + n.toString(16)
}
