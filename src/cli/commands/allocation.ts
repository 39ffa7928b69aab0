/**
 * `qbm map IMAGE --allocation [--output=human|json]` (qemu-img map's fields) and
 * `qbm estimate IMAGE BITMAP [--output=human|json]`: how much of the dirty data an incremental
 * backup really has to copy; for an in-use bitmap, that the next backup is full and its size. `qbm chain IMAGE`: the backing chain and each layer's bitmaps.
 */
import { dirname, isAbsolute, join } from 'node:path'
import { AllocationMap, type AllocRun, type Image, allExtents, humanAndExact, splitByAllocation } from '../../engine/index.js'
import { type Parsed, outputFormat } from '../args.js'
import { out } from '../io.js'
import { CliError, openPath, requireBitmap, requireReader } from './common.js'
import type { NodeFileDevice } from '../../io/node-file.js'

/** Open an image and its backing chain (relative names resolve against the image's folder). */
export async function openChain(path: string, maxDepth = 16): Promise<{ layers: Array<{ path: string; img: Image }>; close: () => void }> {
  const layers: Array<{ path: string; img: Image; dev: NodeFileDevice }> = []
  let p: string | undefined = path
  while (p) {
    if (layers.length >= maxDepth) throw new CliError(`backing chain longer than ${maxDepth} images`)
    if (layers.some((l) => l.path === p)) throw new CliError(`backing chain loops back to ${p}`)
    const { dev, img } = await openPath(p)
    layers.push({ path: p, img, dev })
    const bf: string | undefined = img.backingFile
    p = bf === undefined ? undefined : isAbsolute(bf) ? bf : join(dirname(p), bf)
  }
  return { layers, close: () => { for (const l of layers) l.dev.close() } }
}

export async function allocationMapOf(layers: Array<{ img: Image }>): Promise<AllocationMap> {
  let m: AllocationMap | undefined
  for (let i = layers.length - 1; i >= 0; i--) m = await AllocationMap.open(layers[i]!.img, m)
  return m!
}

function runJson(r: AllocRun): string {
  return `{ "start": ${r.start}, "length": ${r.length}, "depth": ${r.depth}, "present": ${r.present}, "zero": ${r.zero}, "data": ${r.data}${r.compressed ? ', "compressed": true' : ''}${r.offset !== undefined ? `, "offset": ${r.offset}` : ''}}`
}

export async function cmdAllocation(p: Parsed, path: string): Promise<number> {
  const fmt = outputFormat(p)
  const chain = await openChain(path)
  try {
    const m = await allocationMapOf(chain.layers)
    if (fmt === 'json') out('[')
    let first = true
    for await (const r of m.runs()) {
      if (fmt === 'json') { out(`${first ? '' : ',\n'}${runJson(r)}`); first = false }
      else out(`${String(r.start).padStart(16)} ${String(r.length).padStart(16)}  depth ${r.depth}  ${r.data ? (r.compressed ? 'data (compressed)' : 'data') : r.present ? 'zero' : 'unallocated'}${r.offset !== undefined ? `  @0x${r.offset.toString(16)}` : ''}\n`)
    }
    if (fmt === 'json') out(']\n')
    return 0
  } finally {
    chain.close()
  }
}

/** Bytes of allocated data through the chain: what qemu-img map reports as data, what a full backup copies. */
export async function allocatedDataBytes(m: AllocationMap): Promise<number> {
  let n = 0
  for await (const r of m.runs()) if (r.data) n += r.length
  return n
}

export async function cmdEstimate(p: Parsed, path: string, name: string): Promise<number> {
  const fmt = outputFormat(p)
  const chain = await openChain(path)
  try {
    const img = chain.layers[0]!.img
    const b = requireBitmap(img, name)
    const r = requireReader(img, b)
    const m = await allocationMapOf(chain.layers)
    const s = await splitByAllocation(m, allExtents(r))
    if (b.status === 'in-use') {
      // A backup tool refuses an in-use bitmap (QEMU will not export it): the next backup from
      // this checkpoint is a full one, and it copies the disk's allocated data.
      const full = await allocatedDataBytes(m)
      if (fmt === 'json') {
        out(JSON.stringify({
          bitmap: name, inUse: true, nextBackup: 'full', fullBytes: full,
          storedBits: { dirtyBytes: s.dirty, dataBytes: s.data, zeroBytes: s.zero, unallocatedBytes: s.unallocated },
        }) + '\n')
      } else {
        out(`bitmap ${name}: in use (in_use is set): a backup tool cannot use it; the next backup from this checkpoint is a full one\n`)
        out(`  full backup copies:      ${humanAndExact(full)}  (the disk's allocated data, as qemu-img map reports it)\n`)
        out(`  stored bits (stale):     ${humanAndExact(s.dirty)} dirty at its last clean save; writes since then are missing\n`)
      }
      return 0
    }
    if (fmt === 'json') out(JSON.stringify({ bitmap: name, dirtyBytes: s.dirty, dataBytes: s.data, zeroBytes: s.zero, unallocatedBytes: s.unallocated }) + '\n')
    else {
      out(`bitmap ${name}: ${humanAndExact(s.dirty)} dirty\n`)
      out(`  allocated data:          ${humanAndExact(s.data)}  (what a zero-aware backup copies)\n`)
      out(`  allocated but zero:      ${humanAndExact(s.zero)}\n`)
      out(`  unallocated (reads 0):   ${humanAndExact(s.unallocated)}\n`)
    }
    return 0
  } finally {
    chain.close()
  }
}

export async function cmdChain(p: Parsed, path: string): Promise<number> {
  const fmt = outputFormat(p)
  const chain = await openChain(path)
  try {
    const layers = chain.layers.map((l, depth) => ({
      depth, path: l.path, virtualSize: l.img.header.size,
      backingFile: l.img.backingFile ?? null,
      bitmaps: l.img.bitmaps.map((b) => ({ name: b.name, status: b.status, granularity: b.granularity, enabled: b.auto })),
    }))
    if (fmt === 'json') out(JSON.stringify(layers, null, 2) + '\n')
    else for (const l of layers) {
      out(`${'  '.repeat(l.depth)}[${l.depth}] ${l.path} (${humanAndExact(l.virtualSize)})\n`)
      for (const b of l.bitmaps) out(`${'  '.repeat(l.depth)}      bitmap ${b.name}: ${b.status}, ${b.enabled ? 'enabled' : 'disabled'}, granularity ${b.granularity}\n`)
    }
    return 0
  } finally {
    chain.close()
  }
}
