/**
 * The extent list as a file (CSV or JSON), built from a stream of extents in UTF-8 chunks: the
 * bytes the page downloads, whichever transport carries them.
 */
import { type AbortSignalLike, type Extent, AbortError, ConstraintError } from '../engine/index.js'

export interface ExportHeader {
  name: string
  granularity: number
  diskLength: number
  from: number
  to: number
}

/** The most extents one export holds (~180 MB of JSON): past it, export the view instead. */
export const MAX_EXPORT_EXTENTS = 4_000_000

/** Encode `extents` (already clipped to [from, to)) as CSV or JSON. */
export async function exportBytes(format: 'csv' | 'json', h: ExportHeader, extents: AsyncIterable<Extent>, signal?: AbortSignalLike, maxExtents = MAX_EXPORT_EXTENTS): Promise<Uint8Array> {
  const enc = new TextEncoder()
  const chunks: Uint8Array[] = []
  let text = format === 'csv'
    ? 'offset,length,end\n'
    : `{\n  "bitmap": ${JSON.stringify(h.name)},\n  "granularity": ${h.granularity},\n  "diskLength": ${h.diskLength},\n  "from": ${h.from},\n  "to": ${h.to},\n  "extents": [`
  let n = 0
  for await (const x of extents) {
    if (n >= maxExtents) throw new ConstraintError(`more than ${maxExtents.toLocaleString('en-US')} extents to export: zoom in and export the view, or use qbm map`)
    if (format === 'csv') text += `${x.offset},${x.length},${x.offset + x.length}\n`
    else text += `${n > 0 ? ',' : ''}\n    {"offset": ${x.offset}, "length": ${x.length}}`
    n++
    if (text.length > 1 << 20) {
      if (signal?.aborted) throw new AbortError()
      chunks.push(enc.encode(text))
      text = ''
    }
  }
  if (format === 'json') text += `${n > 0 ? '\n  ' : ''}]\n}\n`
  chunks.push(enc.encode(text))
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0))
  let at = 0
  for (const c of chunks) { out.set(c, at); at += c.length }
  return out
}
