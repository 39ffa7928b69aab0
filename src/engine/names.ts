/** Bitmap names are bytes (docs/format.md §3.5): decode for display with invalid UTF-8 escaped. */

const strict = new TextDecoder('utf-8', { fatal: true })
const enc = new TextEncoder()

/** Decode bytes as UTF-8; bytes that are not valid UTF-8 (and NUL) appear as \xNN. */
export function displayName(bytes: Uint8Array): string {
  try {
    const s = strict.decode(bytes)
    if (!s.includes('\0')) return s
  } catch {
    // fall through to the byte-wise path
  }
  let out = ''
  let i = 0
  while (i < bytes.length) {
    const n = utf8SeqLen(bytes, i)
    if (n > 0 && bytes[i] !== 0) {
      out += strict.decode(bytes.subarray(i, i + n))
      i += n
    } else {
      out += '\\x' + bytes[i]!.toString(16).padStart(2, '0')
      i++
    }
  }
  return out
}

/** True when the bytes are valid UTF-8 without NUL. */
export function isCleanUtf8(bytes: Uint8Array): boolean {
  try {
    return !strict.decode(bytes).includes('\0')
  } catch {
    return false
  }
}

/** The bytes a name is stored as: UTF-8. */
export function encodeName(name: string): Uint8Array {
  return enc.encode(name)
}

function utf8SeqLen(b: Uint8Array, i: number): number {
  const c = b[i]!
  let n: number
  if (c < 0x80) return 1
  else if (c >= 0xc2 && c <= 0xdf) n = 2
  else if (c >= 0xe0 && c <= 0xef) n = 3
  else if (c >= 0xf0 && c <= 0xf4) n = 4
  else return 0
  if (i + n > b.length) return 0
  try {
    strict.decode(b.subarray(i, i + n))
    return n
  } catch {
    return 0
  }
}

/** A string key with byte-wise equality (one char per byte), for hash lookups of names. */
export function nameKeyOf(a: Uint8Array): string {
  let s = ''
  for (let i = 0; i < a.length; i += 8192) s += String.fromCharCode(...a.subarray(i, i + 8192))
  return s
}
