/**
 * `qbm map IMAGE BITMAP [--output=human|json] [--all]`: dirty extents, merged, in guest bytes,
 * as nbdinfo --map=qemu:dirty-bitmap:NAME prints them.
 */
import { allExtents } from '../../engine/index.js'
import { type Parsed, has, outputFormat } from '../args.js'
import { out } from '../io.js'
import { openPath, requireBitmap, requireReader } from './common.js'

export async function cmdMap(p: Parsed, path: string, name: string): Promise<number> {
  const fmt = outputFormat(p)
  const all = has(p, 'all')
  const { dev, img } = await openPath(path)
  try {
    const r = requireReader(img, requireBitmap(img, name))
    if (fmt === 'json') {
      out('[')
      let first = true
      let prev = 0
      for await (const e of allExtents(r)) {
        if (all && e.offset > prev) { out(`${first ? '' : ','}\n{"offset":${prev},"length":${e.offset - prev},"dirty":false}`); first = false }
        out(`${first ? '' : ','}\n{"offset":${e.offset},"length":${e.length}${all ? ',"dirty":true' : ''}}`)
        first = false
        prev = e.offset + e.length
      }
      if (all && prev < r.diskLength) out(`${first ? '' : ','}\n{"offset":${prev},"length":${r.diskLength - prev},"dirty":false}`)
      out(first ? ']\n' : '\n]\n')
    } else {
      const w = String(r.diskLength).length
      let prev = 0
      const line = (o: number, l: number, d: boolean): void =>
        out(`${String(o).padStart(w)}  ${String(l).padStart(w)}    ${d ? '1  dirty' : '0  clean'}\n`)
      for await (const e of allExtents(r)) {
        if (all && e.offset > prev) line(prev, e.offset - prev, false)
        line(e.offset, e.length, true)
        prev = e.offset + e.length
      }
      if (all && prev < r.diskLength) line(prev, r.diskLength - prev, false)
    }
    return 0
  } finally {
    dev.close()
  }
}
