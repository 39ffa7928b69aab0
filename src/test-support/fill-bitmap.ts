/**
 * Bench-only writer (bench/write-bitmap.ts re-exports it; it lives here because it uses the
 * engine's internals, as test fixtures do): fills one freshly added (empty) bitmap with
 * generated data through qbm's own engine, the way an edit would (docs/format.md §5.5
 * allocator, §6.3 order): data clusters first in big coalesced writes (generated chunk by
 * chunk, never the whole bitmap in memory), then the new table, directory and refcount blocks,
 * flush, the new cluster 0, flush, the frees.
 *
 * QEMU's qemu-io cannot dirty 2^32 bits quickly; this is how image D gets its data.
 */
import { NodeFileDevice } from '../io/node-file.js'
import { openImage, findBitmap, commitPlan, type Plan, type PlannedWrite } from '../engine/index.js'
import { Allocator } from '../engine/edits/allocator.js'
import { buildCluster0, type HeaderChange } from '../engine/edits/header.js'
import { encodeTable } from '../engine/qcow2/bitmaps/table.js'
import { encodeDirEntry, encodeDirectory } from '../engine/qcow2/bitmaps/directory.js'
import { loadRefcounts } from '../engine/qcow2/refcount.js'

/** Bytes generated and written per write. */
const CHUNK = 8 * 1024 * 1024

/** What writing D's bitmap did. */
export interface FillResult {
  dataOffset: number
  dataBytes: number
  clusters: number
  tableOffset: number
  directoryOffset: number
}

/**
 * Give bitmap `name` of the image at `path` data clusters for every table entry, the bytes
 * coming from `fill(byteOffsetInBitmap, buf)`. Bits past nbits are zeroed (docs/format.md §4.5).
 */
export async function fillBitmap(path: string, name: string, fill: (bitmapByteOffset: number, buf: Uint8Array) => void): Promise<FillResult> {
  const dev = NodeFileDevice.open(path, 'rw')
  try {
    const img = await openImage(dev)
    const h = img.header
    const cs = h.clusterSize
    const b = findBitmap(img, name)
    if (!b || b.status !== 'ok') throw new Error(`bitmap '${name}' is missing or not ok in ${path}`)
    if (b.table.some((e) => e !== 0)) throw new Error(`bitmap '${name}' already has data; the bench fills only new, empty bitmaps`)
    const tsize = b.expectedTableSize
    const nbits = b.nbits
    const nbytesMeaningful = Math.ceil(nbits / 8)

    const alloc = new Allocator(h, await loadRefcounts(dev, h), img.fileSize)
    const dataOffset = alloc.alloc(tsize)
    const table = new Float64Array(tsize)
    for (let i = 0; i < tsize; i++) table[i] = dataOffset + i * cs
    const tbytes = encodeTable(table, cs)
    const tableOffset = alloc.alloc(tbytes.length / cs)
    const entries = img.bitmaps.map((x) => x === b
      ? encodeDirEntry({ tableOffset, tableSize: tsize, flags: b.flags, granularityBits: b.granularityBits, nameBytes: b.nameBytes })
      : x.entry.raw)
    const dir = encodeDirectory(entries)
    const dirPadded = new Uint8Array(Math.ceil(dir.length / cs) * cs)
    dirPadded.set(dir)
    const directoryOffset = alloc.alloc(dirPadded.length / cs)

    const writes: PlannedWrite[] = [
      { offset: tableOffset, data: tbytes, what: 'bitmap table' },
      { offset: directoryOffset, data: dirPadded, what: 'bitmap directory' },
    ]
    // Refcount writes of phase 1, as edits/plan.ts lays them out.
    const phase1 = alloc.takeDirty()
    const newSlots = new Set(alloc.newSlots())
    for (const slot of phase1) if (newSlots.has(slot)) writes.push({ offset: alloc.reftable[slot]!, data: alloc.encodeBlock(slot), what: `new refcount block ${slot}` })
    if (alloc.reftableMoved) {
      writes.push({ offset: alloc.reftableOffset, data: alloc.encodeReftable(), what: 'new refcount table' })
    } else {
      for (const slot of [...newSlots].sort((x, y) => x - y)) {
        const e = new Uint8Array(8)
        new DataView(e.buffer).setBigUint64(0, BigInt(alloc.reftable[slot]!))
        writes.push({ offset: h.refcountTableOffset + slot * 8, data: e, what: `refcount table entry ${slot}` })
      }
    }
    for (const slot of phase1) if (!newSlots.has(slot)) writes.push({ offset: alloc.reftable[slot]!, data: alloc.encodeBlock(slot), what: `refcount block ${slot}` })

    const change: HeaderChange = { bitmaps: { nbBitmaps: entries.length, bitmapDirectorySize: dir.length, bitmapDirectoryOffset: directoryOffset } }
    if (alloc.reftableMoved) change.reftable = { offset: alloc.reftableOffset, clusters: alloc.reftableClusters }
    const header = buildCluster0(img, change)

    // Phase 3: the old (all-zero) table and the old directory.
    const freeClusters = (off: number, bytes: number): void => {
      for (let c = Math.floor(off / cs); c <= Math.floor((off + bytes - 1) / cs); c++) alloc.free(c * cs, cs)
    }
    freeClusters(b.tableOffset, b.tableSize * 8)
    const ext = img.bitmapsExtension!
    freeClusters(ext.bitmapDirectoryOffset, ext.bitmapDirectorySize)
    const frees = alloc.takeDirty().map((slot) => ({ offset: alloc.reftable[slot]!, data: alloc.encodeBlock(slot), what: `refcount block ${slot} (frees)` }))

    // Data first, generated and written a chunk at a time.
    const total = tsize * cs
    const buf = new Uint8Array(Math.min(CHUNK, total))
    for (let done = 0; done < total; done += buf.length) {
      const n = Math.min(buf.length, total - done)
      const chunk = buf.subarray(0, n)
      fill(done, chunk)
      const lastByte = nbytesMeaningful - 1
      if (done + n - 1 >= lastByte) {
        // zero every bit at or past nbits
        const rel = lastByte - done
        if (rel < 0) chunk.fill(0)
        else {
          if (nbits & 7) chunk[rel] = chunk[rel]! & ((1 << (nbits & 7)) - 1)
          chunk.fill(0, rel + 1)
        }
      }
      await dev.write(dataOffset + done, chunk)
    }
    const plan: Plan = {
      summary: [`fill bitmap '${name}' with ${tsize} data clusters`],
      writes, header: { offset: 0, data: header, what: 'header (cluster 0)' }, frees,
      allocatedClusters: alloc.allocated.size, freedClusters: 0, result: [], warnings: [],
    }
    await commitPlan(dev, plan)
    return { dataOffset, dataBytes: total, clusters: tsize, tableOffset, directoryOffset }
  } finally {
    dev.close()
  }
}
