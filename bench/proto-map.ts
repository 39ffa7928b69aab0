/**
 * A prototype of the fix suggested for `qbm map --output=json` (bench/README.md): the same
 * bytes as `qbm map IMAGE BITMAP --output=json`, but one await per bitmap cluster instead of
 * several per extent (a synchronous run finder over the cluster's words) and numbers written
 * straight into a reused byte buffer instead of strings concatenated and re-encoded. The bench
 * times it beside the real command and checks the output is byte-identical, so the gain is
 * measured, not guessed.
 *
 *   proto-map.mjs IMAGE BITMAP
 */
import { writeSync } from 'node:fs'
import { NodeFileDevice } from '../src/io/node-file.js'
import { BitmapReader, findBitmap, openImage } from '../src/engine/index.js'
import { ENTRY_ONES, ENTRY_ZEROES } from '../src/engine/qcow2/bitmaps/table.js'

const OUT = 1 << 20
const buf = new Uint8Array(OUT + 64)
let pos = 0
const digits = new Uint8Array(20)

function flush(): void {
  let off = 0
  while (off < pos) off += writeSync(1, buf, off, pos - off)
  pos = 0
}

function ascii(s: string): void {
  for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i)
}

/** Decimal digits of a non-negative safe integer. */
function num(n: number): void {
  let k = 0
  do { const q = Math.floor(n / 10); digits[k++] = 48 + (n - q * 10); n = q } while (n > 0)
  while (k > 0) buf[pos++] = digits[--k]!
}

let first = true
function extent(offset: number, length: number): void {
  if (!first) buf[pos++] = 44 // ,
  first = false
  ascii('\n{"offset":')
  num(offset)
  ascii(',"length":')
  num(length)
  buf[pos++] = 125 // }
  if (pos >= OUT) flush()
}

async function main(): Promise<void> {
  const [path, name] = process.argv.slice(2)
  const dev = NodeFileDevice.open(path!)
  try {
    const img = await openImage(dev)
    const b = findBitmap(img, name!)
    if (!b) throw new Error(`Dirty bitmap '${name}' not found`)
    const r = new BitmapReader(dev, b, img.header.diskLength, img.header.clusterSize)
    const g = r.granularity
    const L = r.diskLength
    const emit = (s: number, e: number): void => extent(s * g, Math.min(e * g, L) - s * g)
    ascii('[')
    let inRun = false
    let runStart = 0
    for (let ci = 0; ci < r.clusters; ci++) {
      const base = ci * r.bitsPerCluster
      const d = await r.cluster(ci)
      if (d === ENTRY_ZEROES) { if (inRun) { emit(runStart, base); inRun = false } continue }
      if (d === ENTRY_ONES) { if (!inRun) { inRun = true; runStart = base } continue }
      const words = new Uint32Array(d.buffer, d.byteOffset, d.length >>> 2)
      const nw = Math.ceil(Math.min(r.bitsPerCluster, r.nbits - base) / 32)
      let carry = inRun ? 1 : 0
      for (let w = 0; w < nw; w++) {
        const x = words[w]! | 0
        // bits where the value changes from the previous bit: run starts and run ends
        let t = x ^ ((x << 1) | carry)
        carry = x >>> 31
        while (t !== 0) {
          const z = 31 - Math.clz32(t & -t)
          t &= t - 1
          if (inRun) { emit(runStart, base + w * 32 + z); inRun = false } else { inRun = true; runStart = base + w * 32 + z }
        }
      }
    }
    if (inRun) emit(runStart, r.nbits)
    ascii(first ? ']\n' : '\n]\n')
    flush()
  } finally {
    dev.close()
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`proto-map: ${(e as Error).message}\n`)
  process.exit(1)
})
