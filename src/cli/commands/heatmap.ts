/** `qbm heatmap IMAGE BITMAP [--cells N] [--start OFF] [--length LEN] [--output=json]`. */
import { cellBoundaries, heatmap, humanBytes, parseSize } from '../../engine/index.js'
import { type Parsed, UsageError, one, outputFormat } from '../args.js'
import { out } from '../io.js'
import { openPath, requireBitmap, requireReader } from './common.js'

export async function cmdHeatmap(p: Parsed, path: string, name: string): Promise<number> {
  const fmt = outputFormat(p)
  const cells = Number(one(p, 'cells') ?? '64')
  if (!Number.isInteger(cells) || cells < 1 || cells > 1 << 20) throw new UsageError(`--cells must be an integer 1..1048576`)
  const { dev, img } = await openPath(path)
  try {
    const r = requireReader(img, requireBitmap(img, name))
    const start = one(p, 'start') !== undefined ? parseSize(one(p, 'start')!) : 0
    const length = one(p, 'length') !== undefined ? parseSize(one(p, 'length')!) : r.diskLength - start
    if (start < 0 || start >= r.diskLength) throw new UsageError(`--start must be below the disk length (${r.diskLength})`)
    if (!(length > 0)) throw new UsageError('--length must be more than 0')
    const end = Math.min(r.diskLength, start + length)
    const counts = await heatmap(r, start, end, cells)
    const xs = cellBoundaries(start, end, cells)
    if (fmt === 'json') {
      const rows = Array.from(counts, (d, i) => ({ offset: xs[i]!, length: xs[i + 1]! - xs[i]!, dirty: d }))
      out(JSON.stringify({ start, end, cells, granularity: r.granularity, counts: rows }) + '\n')
    } else {
      const shades = ' ░▒▓█'
      for (let i = 0; i < cells; i++) {
        const len = xs[i + 1]! - xs[i]!
        const frac = len > 0 ? counts[i]! / len : 0
        const shade = frac === 0 ? shades[0] : shades[Math.min(4, 1 + Math.floor(frac * 3.999))]
        out(`${String(xs[i]).padStart(16)} ${humanBytes(len).padStart(10)} ${shade} ${counts[i]} dirty (${(frac * 100).toFixed(1)}%)\n`)
      }
    }
    return 0
  } finally {
    dev.close()
  }
}
