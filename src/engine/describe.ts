/**
 * Plain-data summaries of an image and its bitmaps: what `qbm info --output=json` prints and
 * what the worker sends to the UI.
 */
import type { Bitmap, BitmapStatus, Image } from './image.js'
import { BitmapReader } from './qcow2/bitmaps/data.js'
import { bitmapSha256 } from './analysis/digest.js'
import type { AbortSignalLike, Finding } from './errors.js'
import { throwIfAborted } from './errors.js'

export interface BitmapSummary {
  index: number
  name: string
  granularity: number
  /** qemu-img's words: "in-use", "auto" */
  flags: string[]
  flagsRaw: number
  type: number
  enabled: boolean
  status: BitmapStatus
  /** why QEMU refuses it (display form) */
  problems: string[]
  warnings: string[]
  /** the same problems and warnings with structure, field and offset (always set by describeImage) */
  findings?: Finding[]
  tableOffset: number
  tableSize: number
  expectedTableSize: number
  entryOffset: number
  /** dirty bytes of the stored data (stale for in-use bitmaps); null when unreadable */
  dirtyBytes: number | null
  /** dirty extents (maximal runs) */
  extentCount: number | null
  /** bytes of bitmap data that reading it costs */
  dataBytes: number
  sha256?: string
}

export interface ImageSummary {
  fileSize: number
  virtualSize: number
  diskLength: number
  clusterSize: number
  version: number
  refcountBits: number
  compressionType: string
  features: { incompatible: string[]; compatible: string[]; autoclear: string[] }
  backingFile?: string
  backingFormat?: string
  dataFile?: string
  bitmapsExtension?: { nbBitmaps: number; directoryOffset: number; directorySize: number; trusted: boolean }
  bitmapsError?: { message: string; structure: string; field: string; offset: number }
  warnings: string[]
  /** why QEMU's normal open refuses the image (display form) */
  qemuRefuses: string[]
  /** image-level refusals and warnings with structure, field and offset (always set by describeImage) */
  findings?: Finding[]
  bitmaps: BitmapSummary[]
}

export function bitmapFlags(b: Bitmap): string[] {
  const f: string[] = []
  if (b.inUse) f.push('in-use')
  if (b.auto) f.push('auto')
  return f
}

export interface DescribeOptions {
  /** scan bitmap data for dirty counts (default true) */
  counts?: boolean
  sha256?: boolean
  signal?: AbortSignalLike
  readers?: Map<number, BitmapReader>
}

export function readerFor(img: Image, b: Bitmap, readers?: Map<number, BitmapReader>): BitmapReader {
  let r = readers?.get(b.index)
  if (!r) {
    r = new BitmapReader(img.device, b, img.header.diskLength, img.header.clusterSize)
    readers?.set(b.index, r)
  }
  return r
}

/** Whether the data of this bitmap can be read at all. */
export function readable(b: Bitmap): boolean {
  // QEMU's limit (2^32 bits, docs/format.md §3.3) also bounds the reader's memory.
  return b.table.length > 0 && b.granularityBits >= 9 && b.granularityBits <= 63 && b.nbits > 0 && b.nbits <= 2 ** 32
}

export async function describeImage(img: Image, opts: DescribeOptions = {}): Promise<ImageSummary> {
  const h = img.header
  const bitmaps: BitmapSummary[] = []
  for (const b of img.bitmaps) {
    throwIfAborted(opts.signal)
    let dirtyBytes: number | null = null
    let extentCount: number | null = null
    let sha256: string | undefined
    let dataBytes = 0
    if (readable(b)) {
      const r = readerFor(img, b, opts.readers)
      dataBytes = r.dataBytesToRead
      if (opts.counts !== false) {
        await r.scan(opts.signal ? { signal: opts.signal } : {})
        dirtyBytes = r.dirtyBytes
        extentCount = r.runCount
      }
      if (opts.sha256) sha256 = await bitmapSha256(r, opts.signal ? { signal: opts.signal } : {})
    }
    bitmaps.push({
      index: b.index,
      name: b.name,
      granularity: b.granularity,
      flags: bitmapFlags(b),
      flagsRaw: b.flags,
      type: b.type,
      enabled: b.auto,
      status: b.status,
      problems: b.problems,
      warnings: b.warnings,
      findings: b.findings,
      tableOffset: b.tableOffset,
      tableSize: b.tableSize,
      expectedTableSize: b.expectedTableSize,
      entryOffset: b.entry.offset,
      dirtyBytes,
      extentCount,
      dataBytes,
      ...(sha256 !== undefined ? { sha256 } : {}),
    })
  }
  const ext = img.bitmapsExtension
  return {
    fileSize: img.fileSize,
    virtualSize: h.size,
    diskLength: h.diskLength,
    clusterSize: h.clusterSize,
    version: h.version,
    refcountBits: h.refcountBits,
    compressionType: h.compressionType === 1 ? 'zstd' : 'zlib',
    features: img.features,
    ...(img.backingFile !== undefined ? { backingFile: img.backingFile } : {}),
    ...(img.backingFormat !== undefined ? { backingFormat: img.backingFormat } : {}),
    ...(img.dataFile !== undefined ? { dataFile: img.dataFile } : {}),
    ...(ext ? { bitmapsExtension: { nbBitmaps: ext.nbBitmaps, directoryOffset: ext.bitmapDirectoryOffset, directorySize: ext.bitmapDirectorySize, trusted: img.bitmapsTrusted } } : {}),
    ...(img.bitmapsError ? { bitmapsError: { message: img.bitmapsError.message, structure: img.bitmapsError.structure, field: img.bitmapsError.field, offset: img.bitmapsError.offset } } : {}),
    warnings: img.warnings,
    qemuRefuses: img.qemuRefuses,
    findings: img.findings,
    bitmaps,
  }
}
