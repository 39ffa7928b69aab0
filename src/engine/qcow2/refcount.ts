/**
 * Refcount table and refcount blocks (docs/format.md §5.1-§5.2): loading every refcount into one array
 * (by cluster index), and the packing of entries for every refcount width 1-64 bits.
 */
import { FormatError, type AbortSignalLike, throwIfAborted } from '../errors.js'
import type { BlockDevice } from '../device.js'
import { MAX_REFTABLE_BYTES, REFT_OFFSET_MASK, REFT_RESERVED_MASK } from './constants.js'
import type { Header } from './header.js'

export const REFTABLE_STRUCT = 'refcount table'
/** Bytes of one refcount table entry. */
export const REFTABLE_ENTRY_SIZE = 8

/** Refcounts of every cluster, indexed by cluster number; implicitly 0 beyond `length`. */
export interface Refcounts {
  /** reftable entries: 0 = no block, else the refblock's offset */
  readonly reftable: Float64Array
  /** refcount per cluster, for clusters covered by existing refblocks */
  readonly counts: Float64Array
  /** entries per refcount block */
  readonly entriesPerBlock: number
  readonly refcountBits: number
  /** problems found while loading (reserved bits, blocks past EOF, unaligned) */
  readonly problems: FormatError[]
}

/** Read refcount entry i of a refblock buffer. */
export function getRefcountEntry(block: Uint8Array, order: number, i: number): number {
  switch (order) {
    case 0: return (block[i >>> 3]! >>> (i & 7)) & 1
    case 1: return (block[i >>> 2]! >>> (2 * (i & 3))) & 3
    case 2: return (block[i >>> 1]! >>> (4 * (i & 1))) & 15
    case 3: return block[i]!
    case 4: return (block[2 * i]! << 8) | block[2 * i + 1]!
    case 5: return ((block[4 * i]! << 24) | (block[4 * i + 1]! << 16) | (block[4 * i + 2]! << 8) | block[4 * i + 3]!) >>> 0
    case 6: {
      let v = 0
      for (let k = 0; k < 8; k++) v = v * 256 + block[8 * i + k]!
      return v
    }
    default: throw new RangeError(`refcount_order ${order}`)
  }
}

/** Write refcount entry i of a refblock buffer (value must fit the width). */
export function setRefcountEntry(block: Uint8Array, order: number, i: number, v: number): void {
  switch (order) {
    case 0: { const m = 1 << (i & 7); block[i >>> 3] = v ? block[i >>> 3]! | m : block[i >>> 3]! & ~m; return }
    case 1: { const s = 2 * (i & 3); block[i >>> 2] = (block[i >>> 2]! & ~(3 << s)) | ((v & 3) << s); return }
    case 2: { const s = 4 * (i & 1); block[i >>> 1] = (block[i >>> 1]! & ~(15 << s)) | ((v & 15) << s); return }
    case 3: block[i] = v; return
    case 4: block[2 * i] = v >>> 8; block[2 * i + 1] = v & 0xff; return
    case 5: block[4 * i] = v >>> 24; block[4 * i + 1] = (v >>> 16) & 0xff; block[4 * i + 2] = (v >>> 8) & 0xff; block[4 * i + 3] = v & 0xff; return
    case 6: {
      let x = v
      for (let k = 7; k >= 0; k--) { block[8 * i + k] = x % 256; x = Math.floor(x / 256) }
      return
    }
    default: throw new RangeError(`refcount_order ${order}`)
  }
}

/**
 * Decode every entry of a refblock buffer into `out` (from index 0; `out.length` entries): the
 * values getRefcountEntry gives, one loop per width instead of a switch per entry.
 */
export function decodeRefcountBlock(block: Uint8Array, order: number, out: Float64Array): void {
  const n = out.length
  switch (order) {
    case 0: for (let i = 0; i < n; i++) out[i] = (block[i >>> 3]! >>> (i & 7)) & 1; return
    case 1: for (let i = 0; i < n; i++) out[i] = (block[i >>> 2]! >>> (2 * (i & 3))) & 3; return
    case 2: for (let i = 0; i < n; i++) out[i] = (block[i >>> 1]! >>> (4 * (i & 1))) & 15; return
    case 3: for (let i = 0; i < n; i++) out[i] = block[i]!; return
    case 4: for (let i = 0; i < n; i++) out[i] = (block[2 * i]! << 8) | block[2 * i + 1]!; return
    case 5:
      for (let i = 0; i < n; i++) out[i] = ((block[4 * i]! << 24) | (block[4 * i + 1]! << 16) | (block[4 * i + 2]! << 8) | block[4 * i + 3]!) >>> 0
      return
    default: for (let i = 0; i < n; i++) out[i] = getRefcountEntry(block, order, i)
  }
}

/** Largest refcount an entry of 2^order bits holds (as a number: 2^53 - 1 for 64-bit entries). */
export function maxRefcount(order: number): number {
  return order === 6 ? Number.MAX_SAFE_INTEGER : 2 ** (2 ** order) - 1
}

/**
 * Refcount structures another pass has already read and decoded (the check an edit starts with,
 * check/stored.ts), so that an edit reads and decodes each refcount block once.
 */
export interface RefcountSource {
  /** the refcount table as the header describes it, zeros past the end of the file */
  readonly tableBytes: Uint8Array
  /**
   * The bytes of the refcount block at refcount-table slot `slot` (cluster size, zeros past the
   * end of the file; not to be modified), read from `offset`; undefined when that is not the
   * block the source holds there.
   */
  blockBytes(slot: number, offset: number): Promise<Uint8Array | undefined>
}

/**
 * Load the refcount table and every refcount block. Bounded by QEMU's 8 MiB reftable limit and
 * the file size. `source`: the same structures as the check read them (each is read from the
 * device only where the source does not hold it).
 */
export async function loadRefcounts(dev: BlockDevice, h: Header, signal?: AbortSignalLike, source?: RefcountSource): Promise<Refcounts> {
  const cs = h.clusterSize
  const problems: FormatError[] = []
  const rtBytes = h.refcountTableClusters * cs
  if (rtBytes > MAX_REFTABLE_BYTES) {
    throw new FormatError('qcow2 header', 'refcount_table_clusters', 56, `makes the refcount table larger than QEMU's 8 MiB`, h.refcountTableClusters)
  }
  if (h.refcountTableOffset === 0 || h.refcountTableOffset + rtBytes > dev.size + cs - 1 || rtBytes === 0) {
    throw new FormatError('qcow2 header', 'refcount_table_offset', 48, 'puts the refcount table outside the file', h.refcountTableOffset)
  }
  const inFile = Math.min(rtBytes, dev.size - h.refcountTableOffset)
  const rtRaw = source && source.tableBytes.length >= inFile
    ? source.tableBytes.subarray(0, inFile)
    : await dev.read(h.refcountTableOffset, inFile)
  const n = Math.floor(rtRaw.length / REFTABLE_ENTRY_SIZE)
  const view = new DataView(rtRaw.buffer, rtRaw.byteOffset, rtRaw.byteLength)
  const reftable = new Float64Array(rtBytes / REFTABLE_ENTRY_SIZE)
  const epb = (cs * 8) / h.refcountBits
  let lastUsed = -1
  for (let i = 0; i < n; i++) {
    const e = view.getBigUint64(i * REFTABLE_ENTRY_SIZE)
    if (e === 0n) continue
    const off = e & REFT_OFFSET_MASK
    if (e & REFT_RESERVED_MASK) problems.push(new FormatError(REFTABLE_STRUCT, `entry[${i}]`, h.refcountTableOffset + i * REFTABLE_ENTRY_SIZE, 'has reserved bits set', e))
    if (off % BigInt(cs) !== 0n || off + BigInt(cs) > BigInt(dev.size) + BigInt(cs - 1) || off > BigInt(Number.MAX_SAFE_INTEGER)) {
      problems.push(new FormatError(REFTABLE_STRUCT, `entry[${i}]`, h.refcountTableOffset + i * REFTABLE_ENTRY_SIZE, 'points to an unaligned refcount block or past the end of the file', e))
      continue
    }
    reftable[i] = Number(off)
    lastUsed = i
  }
  // Memory is bounded by the file, not by the table: counts are kept for the refcount blocks
  // that cover the file (plus the cluster after it). A block further out must count nothing:
  // a hostile table could list a million of them, and a refcount for a cluster far past the end
  // of the file is not something qbm should allocate around. Each distinct block is read once.
  const fileClusters = Math.ceil(dev.size / cs)
  const keepSlots = Math.min(lastUsed + 1, Math.ceil((fileClusters + 1) / epb))
  const counts = new Float64Array(keepSlots * epb)
  const farChecked = new Set<number>()
  for (let i = 0; i <= lastUsed; i++) {
    if ((i & 63) === 0) throwIfAborted(signal)
    const off = reftable[i]!
    if (!off) continue
    const avail = Math.min(cs, dev.size - off)
    if (i >= keepSlots) {
      if (farChecked.has(off)) continue
      farChecked.add(off)
      const raw = (await source?.blockBytes(i, off))?.subarray(0, avail) ?? await dev.read(off, avail)
      if (raw.some((x) => x !== 0)) {
        problems.push(new FormatError(REFTABLE_STRUCT, `entry[${i}]`, h.refcountTableOffset + i * REFTABLE_ENTRY_SIZE, `points to a refcount block (0x${off.toString(16)}) that counts clusters past the end of the file`, BigInt(off)))
      }
      continue
    }
    const base = i * epb
    // the block as the check read it, else from the device; decoded straight into place
    let block = await source?.blockBytes(i, off)
    if (!block) {
      block = new Uint8Array(cs)
      block.set(await dev.read(off, avail))
    }
    decodeRefcountBlock(block, h.refcountOrder, counts.subarray(base, base + epb))
  }
  return { reftable, counts, entriesPerBlock: epb, refcountBits: h.refcountBits, problems }
}

/** Refcount of cluster c (0 where no block covers it). */
export function refcountOf(r: Refcounts, c: number): number {
  return c < r.counts.length ? r.counts[c]! : 0
}
