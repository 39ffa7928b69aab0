/**
 * Builds small, fully refcounted qcow2 v3 images with persistent bitmaps whose stored bits the
 * test chooses exactly (QEMU only produces bits through guest writes). The layout is QEMU's
 * (docs/format.md §1-§5): header + bitmaps extension in cluster 0, reftable, refblocks (16-bit), an
 * all-zero L1, then per bitmap its data clusters and table, then the directory. Images from
 * this builder are checked against QEMU itself (qemu-img check, qemu-nbd, QMP sha256) in
 * src/engine/qcow2/bitmaps/data.test.ts, so the reference model built on top of them is
 * anchored to the oracle.
 */

/** How one table entry is stored. */
export type EntryKind = 'auto' | 'zeroes' | 'ones' | 'data'

export interface BuildBitmap {
  /** name as text (UTF-8) or raw bytes */
  name: string | Uint8Array
  granularityBits: number
  /** directory flags (default 2 = auto) */
  flags?: number
  /**
   * Stored bitmap bytes (§4.4 byte order), cluster k of the table holding bytes
   * [k*cs, (k+1)*cs). Shorter data reads as zeros; longer data may set tail bits.
   */
  data?: Uint8Array
  /** per table entry: 'auto' (default: data cluster iff non-zero), 'zeroes', 'ones', 'data' */
  entryKinds?: Record<number, EntryKind>
  /** table_size to store (default: what QEMU requires for the disk) */
  tableSize?: number
}

export interface BuildOptions {
  clusterBits: number
  /** virtual size field of the header (any value; QEMU uses floor(size/512)*512) */
  size: number
  bitmaps: BuildBitmap[]
  /** autoclear bit 0 (default: set iff there are bitmaps) */
  autoclear?: boolean
}

export interface BuiltBitmap {
  entryOffset: number
  nameOffset: number
  tableOffset: number
  tableSize: number
  /** the stored table entries (0, 1 or data offsets) */
  entries: number[]
  /** tableSize*cs bytes: what each entry means (all-ones entries as 0xFF, zero entries as 0) */
  logical: Uint8Array
}

export interface Built {
  bytes: Uint8Array
  clusterSize: number
  diskLength: number
  extensionOffset: number
  directoryOffset: number
  directorySize: number
  reftableOffset: number
  reftableClusters: number
  refblockOffsets: number[]
  l1Offset: number
  l1Size: number
  bitmaps: BuiltBitmap[]
}

const enc = new TextEncoder()

/** Table entries QEMU requires for a disk of diskLength bytes (docs/format.md §4.3). */
export function requiredTableSize(diskLength: number, granularityBits: number, clusterSize: number): number {
  const nbits = Math.ceil(diskLength / 2 ** granularityBits)
  return Math.ceil((Math.ceil(nbits / 64) * 8) / clusterSize)
}

export function buildQcow2(o: BuildOptions): Built {
  const cs = 2 ** o.clusterBits
  const diskLength = Math.floor(o.size / 512) * 512
  const l2Bits = o.clusterBits - 3
  const l1Size = Math.ceil(o.size / 2 ** (o.clusterBits + l2Bits))
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / cs))

  // Decide every bitmap's entries first, to count clusters.
  const plans = o.bitmaps.map((b) => {
    const tableSize = b.tableSize ?? requiredTableSize(diskLength, b.granularityBits, cs)
    const data = b.data ?? new Uint8Array(0)
    const kinds: Array<'zeroes' | 'ones' | 'data'> = []
    for (let i = 0; i < tableSize; i++) {
      const k = b.entryKinds?.[i] ?? 'auto'
      if (k !== 'auto') { kinds.push(k); continue }
      const slice = data.subarray(i * cs, (i + 1) * cs)
      kinds.push(slice.some((x) => x !== 0) ? 'data' : 'zeroes')
    }
    const dataClusters = kinds.filter((k) => k === 'data').length
    const tableClusters = Math.max(1, Math.ceil((tableSize * 8) / cs))
    const nameBytes = typeof b.name === 'string' ? enc.encode(b.name) : b.name
    return { b, tableSize, data, kinds, dataClusters, tableClusters, nameBytes }
  })
  const dirSize = plans.reduce((s, p) => s + Math.ceil((24 + p.nameBytes.length) / 8) * 8, 0)
  const dirClusters = dirSize > 0 ? Math.ceil(dirSize / cs) : 0
  const n0 = 1 + l1Clusters + plans.reduce((s, p) => s + p.dataClusters + p.tableClusters, 0) + dirClusters
  const epb = (cs * 8) / 16
  let r = 1, t = 1
  for (;;) {
    const total = n0 + r + t
    const needR = Math.ceil(total / epb)
    const needT = Math.ceil((needR * 8) / cs)
    if (needR <= r && needT <= t) break
    r = Math.max(r, needR)
    t = Math.max(t, needT)
  }
  const totalClusters = n0 + r + t
  const bytes = new Uint8Array(totalClusters * cs)
  const v = new DataView(bytes.buffer)
  let next = 1
  const alloc = (n: number): number => { const off = next * cs; next += n; return off }

  const reftableOffset = alloc(t)
  const refblockOffsets: number[] = []
  for (let i = 0; i < r; i++) refblockOffsets.push(alloc(1))
  const l1Offset = alloc(l1Clusters)
  const built: BuiltBitmap[] = []
  for (const p of plans) {
    const entries: number[] = []
    const logical = new Uint8Array(p.tableSize * cs)
    for (let i = 0; i < p.tableSize; i++) {
      const k = p.kinds[i]!
      const slice = p.data.subarray(i * cs, Math.min((i + 1) * cs, p.data.length))
      if (k === 'zeroes') entries.push(0)
      else if (k === 'ones') { entries.push(1); logical.fill(0xff, i * cs, (i + 1) * cs) }
      else {
        const off = alloc(1)
        bytes.set(slice, off)
        logical.set(slice, i * cs)
        entries.push(off)
      }
    }
    const tableOffset = alloc(p.tableClusters)
    entries.forEach((e, i) => v.setBigUint64(tableOffset + 8 * i, BigInt(e)))
    built.push({ entryOffset: 0, nameOffset: 0, tableOffset, tableSize: p.tableSize, entries, logical })
  }
  const directoryOffset = dirClusters > 0 ? alloc(dirClusters) : 0
  let pos = directoryOffset
  plans.forEach((p, i) => {
    const bb = built[i]!
    bb.entryOffset = pos
    v.setBigUint64(pos, BigInt(bb.tableOffset))
    v.setUint32(pos + 8, p.tableSize)
    v.setUint32(pos + 12, (p.b.flags ?? 2) >>> 0)
    v.setUint8(pos + 16, 1)
    v.setUint8(pos + 17, p.b.granularityBits)
    v.setUint16(pos + 18, p.nameBytes.length)
    v.setUint32(pos + 20, 0)
    bb.nameOffset = pos + 24
    bytes.set(p.nameBytes, pos + 24)
    pos += Math.ceil((24 + p.nameBytes.length) / 8) * 8
  })
  if (next !== totalClusters) throw new Error(`builder: allocated ${next} of ${totalClusters} clusters`)

  // Refcounts: every allocated cluster (all of them) has refcount 1.
  for (let c = 0; c < totalClusters; c++) {
    const blk = refblockOffsets[Math.floor(c / epb)]!
    v.setUint16(blk + 2 * (c % epb), 1)
  }
  refblockOffsets.forEach((off, i) => v.setBigUint64(reftableOffset + 8 * i, BigInt(off)))

  // Header (v3, 112 bytes like QEMU), then the bitmaps extension and the end record.
  v.setUint32(0, 0x514649fb)
  v.setUint32(4, 3)
  v.setUint32(20, o.clusterBits)
  v.setBigUint64(24, BigInt(o.size))
  v.setUint32(36, l1Size)
  v.setBigUint64(40, BigInt(l1Offset))
  v.setBigUint64(48, BigInt(reftableOffset))
  v.setUint32(56, t)
  const autoclear = o.autoclear ?? plans.length > 0
  v.setBigUint64(88, autoclear ? 1n : 0n)
  v.setUint32(96, 4)
  v.setUint32(100, 112)
  let extensionOffset = 0
  if (plans.length > 0) {
    extensionOffset = 112
    v.setUint32(112, 0x23852875)
    v.setUint32(116, 24)
    v.setUint32(120, plans.length)
    v.setBigUint64(128, BigInt(dirSize))
    v.setBigUint64(136, BigInt(directoryOffset))
  }
  return {
    bytes, clusterSize: cs, diskLength, extensionOffset, directoryOffset, directorySize: dirSize,
    reftableOffset, reftableClusters: t, refblockOffsets, l1Offset, l1Size, bitmaps: built,
  }
}
