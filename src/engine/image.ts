/**
 * Opening an image: header, extensions, bitmaps extension, directory and every bitmap table
 * (docs/format.md §1-§4). Reads metadata only; bitmap data is read on demand by BitmapReader.
 */
import type { BlockDevice } from './device.js'
import { FormatError, type AbortSignalLike, throwIfAborted } from './errors.js'
import {
  Autoclear, BME_MAX_PHYS_SIZE, BitmapsExtField, DIR_ENTRY_HEADER_SIZE, DirEntryField, ExtensionType, HeaderField, Incompatible,
  KNOWN_INCOMPATIBLE, MAX_CLUSTER_BITS, hasBit,
} from './qcow2/constants.js'
import { type Header, decodeHeader, headerFeatureNames } from './qcow2/header.js'
import {
  type HeaderExtension, decodeExtensions, decodeFeatureNameTable, extensionString, findExtension, duplicateExtensionTypes,
} from './qcow2/extensions.js'
import { type BitmapsExtension, decodeBitmapsExtension } from './qcow2/bitmaps/extension.js'
import { type DirEntry, decodeDirectory, dirEntryStructure, isAuto, isInUse } from './qcow2/bitmaps/directory.js'
import { bitmapBits, expectedTableSize } from './qcow2/bitmaps/constraints.js'
import { type TableProblem, readTable, tableProblemError } from './qcow2/bitmaps/table.js'
import { displayName, nameKeyOf } from './names.js'

/**
 * ok: QEMU loads it; in-use: stored data is stale (QEMU calls it inconsistent);
 * untrusted: autoclear bit 0 is clear or the image is v2, so QEMU ignores every bitmap;
 * invalid: QEMU refuses it (and with it the whole image).
 */
export type BitmapStatus = 'ok' | 'in-use' | 'untrusted' | 'invalid'

export interface Bitmap {
  readonly index: number
  /** display name: UTF-8 with invalid bytes escaped as \xNN */
  readonly name: string
  readonly nameBytes: Uint8Array
  readonly entry: DirEntry
  readonly tableOffset: number
  readonly tableSize: number
  readonly expectedTableSize: number
  readonly flags: number
  readonly inUse: boolean
  readonly auto: boolean
  readonly type: number
  readonly granularityBits: number
  readonly granularity: number
  /** bits over the disk length */
  readonly nbits: number
  readonly status: BitmapStatus
  /** why QEMU refuses it (status invalid), or other errors found in its structures */
  readonly problems: string[]
  readonly warnings: string[]
  /** decoded table (0 zeroes, 1 ones, else data offset); empty when unreadable */
  readonly table: Float64Array
}

export interface Image {
  readonly device: BlockDevice
  readonly fileSize: number
  readonly header: Header
  /** raw bytes of cluster 0 (or the whole file if smaller) */
  readonly cluster0: Uint8Array
  readonly extensions: HeaderExtension[]
  readonly features: { incompatible: string[]; compatible: string[]; autoclear: string[] }
  readonly backingFile?: string
  readonly backingFormat?: string
  readonly dataFile?: string
  readonly bitmapsExtension?: BitmapsExtension
  /** the bitmaps extension or directory is broken: QEMU cannot open the image */
  readonly bitmapsError?: FormatError
  /** autoclear bit 0 set and extension present (QEMU trusts the bitmaps) */
  readonly bitmapsTrusted: boolean
  readonly bitmaps: Bitmap[]
  /** plain-word warnings about the image */
  readonly warnings: string[]
  /** reasons QEMU would refuse to open the image at all */
  readonly qemuRefuses: string[]
}

export interface OpenOptions {
  signal?: AbortSignalLike
}

/** Open an image through its device. Throws FormatError only when the header itself is unusable. */
export async function openImage(device: BlockDevice, opts: OpenOptions = {}): Promise<Image> {
  const fileSize = device.size
  const first = await device.read(0, Math.min(fileSize, 4096))
  // Cluster 0 holds the header and its extensions; header_length may exceed 4 KiB (QEMU allows
  // up to the cluster size), so read the whole cluster when cluster_bits says it is larger.
  const clusterBits = first.length >= HeaderField.clusterBits + 4 ? new DataView(first.buffer, first.byteOffset).getUint32(HeaderField.clusterBits) : 0
  const cluster0 = clusterBits > 12 && clusterBits <= MAX_CLUSTER_BITS && fileSize > first.length
    ? await device.read(0, Math.min(fileSize, 2 ** clusterBits))
    : first
  const header = decodeHeader(cluster0, fileSize)
  const extensions = decodeExtensions(header, cluster0)
  const warnings: string[] = []
  const qemuRefuses: string[] = []
  const features = headerFeatureNames(header)

  const unknownIncompat = header.incompatibleFeatures & ~KNOWN_INCOMPATIBLE
  if (unknownIncompat) qemuRefuses.push(`unknown incompatible feature bits 0x${unknownIncompat.toString(16)} (Unsupported qcow2 feature(s))`)
  if (hasBit(header.incompatibleFeatures, Incompatible.dirty)) warnings.push('The dirty bit is set: refcounts may be stale (lazy refcounts); QEMU repairs them on its next read-write open. Editing is refused.')
  if (hasBit(header.incompatibleFeatures, Incompatible.corrupt)) warnings.push('The corrupt bit is set: QEMU refuses to open this image read-write. Editing is refused.')
  if (header.cryptMethod !== 0) warnings.push(`The image is encrypted (crypt_method ${header.cryptMethod}); bitmaps are not encrypted and can still be read.`)

  let backingFile: string | undefined
  if (header.backingFileOffset !== 0 && header.backingFileSize > 0) {
    backingFile = new TextDecoder().decode(cluster0.subarray(header.backingFileOffset, header.backingFileOffset + header.backingFileSize))
  }
  const bf = findExtension(extensions, ExtensionType.backingFormat)
  const df = findExtension(extensions, ExtensionType.externalDataFile)
  void decodeFeatureNameTable

  let bitmapsExtension: BitmapsExtension | undefined
  let bitmapsError: FormatError | undefined
  for (const t of duplicateExtensionTypes(extensions)) {
    warnings.push(`Header extension 0x${t.toString(16)} appears more than once; QEMU uses the last one (so does qbm), and an edit writes it once.`)
  }
  const ext = findExtension(extensions, ExtensionType.bitmaps)
  if (ext && autoclearBitOf(header)) {
    // QEMU validates every bitmaps record it reads, not only the one it keeps.
    for (const e of extensions) {
      if (e.type !== ExtensionType.bitmaps || e === ext) continue
      try { decodeBitmapsExtension(e, header.clusterSize) } catch (err) {
        if (!(err instanceof FormatError)) throw err
        qemuRefuses.push(err.message)
      }
    }
  }
  const autoclearBit = autoclearBitOf(header)
  let bitmapsTrusted = false
  let bitmaps: Bitmap[] = []
  if (ext) {
    try {
      bitmapsExtension = decodeBitmapsExtension(ext, header.clusterSize)
    } catch (e) {
      if (!(e instanceof FormatError)) throw e
      bitmapsError = e
    }
    bitmapsTrusted = autoclearBit
    if (!autoclearBit) {
      warnings.push(header.version === 2
        ? 'This v2 image contains bitmaps, but v2 has no autoclear bits: QEMU considers them all inconsistent and drops them on its next read-write open.'
        : 'Autoclear bit 0 (bitmaps) is clear: a program lacking bitmap support modified this file, so QEMU considers every bitmap inconsistent and ignores them; their clusters show as leaks.')
    }
    if (bitmapsError && !autoclearBit && bitmapsError.field !== 'length') {
      // QEMU checks only the length before looking at autoclear bit 0 (docs/format.md §2.1).
      warnings.push(`The ignored bitmaps extension is also invalid: ${bitmapsError.message}`)
    } else if (bitmapsError) {
      qemuRefuses.push(bitmapsError.message)
    }
  } else if (autoclearBit) {
    warnings.push('Autoclear bit 0 (bitmaps) is set but there is no bitmaps extension: QEMU opens the image, but its first write marks it corrupt. Repair: clear the bit.')
  }

  if (bitmapsExtension) {
    throwIfAborted(opts.signal)
    const { bitmapDirectoryOffset: dOff, bitmapDirectorySize: dSize } = bitmapsExtension
    if (dOff + dSize > fileSize) {
      bitmapsError = new FormatError('bitmaps extension', 'bitmap_directory_offset', bitmapsExtension.offset + BitmapsExtField.bitmapDirectoryOffset, `puts the directory (${dSize} bytes) past the end of the file (0x${fileSize.toString(16)})`, dOff)
      if (bitmapsTrusted) qemuRefuses.push(bitmapsError.message)
    } else {
      const dirBuf = await device.read(dOff, dSize)
      const dir = decodeDirectory(dirBuf, dOff, bitmapsExtension.nbBitmaps, header.clusterSize, header.diskLength, bitmapsExtension.offset)
      if (dir.error) {
        bitmapsError = dir.error
        if (bitmapsTrusted) qemuRefuses.push(dir.error.message)
      }
      bitmaps = await loadBitmaps(device, header, dir.entries, bitmapsTrusted, opts)
      for (const b of bitmaps) {
        if (b.status === 'invalid' && bitmapsTrusted) qemuRefuses.push(`bitmap '${b.name}': ${b.problems[0]}`)
      }
    }
  }
  const inUse = bitmaps.filter((b) => b.status === 'in-use').length
  if (inUse > 0) {
    warnings.push(`${inUse} bitmap${inUse > 1 ? 's are' : ' is'} in use: the image is open in a running VM, or its writer crashed. QEMU cannot use ${inUse > 1 ? 'them' : 'it'}; the stored data is stale.`)
  }
  return {
    device, fileSize, header, cluster0, extensions, features,
    ...(backingFile !== undefined ? { backingFile } : {}),
    ...(bf ? { backingFormat: extensionString(bf) } : {}),
    ...(df ? { dataFile: extensionString(df) } : {}),
    ...(bitmapsExtension ? { bitmapsExtension } : {}),
    ...(bitmapsError ? { bitmapsError } : {}),
    bitmapsTrusted, bitmaps, warnings, qemuRefuses,
  }
}

async function loadBitmaps(
  device: BlockDevice, header: Header, entries: DirEntry[], trusted: boolean, opts: OpenOptions,
): Promise<Bitmap[]> {
  const out: Bitmap[] = []
  const seen = new Map<string, number>()
  const cs = header.clusterSize
  for (const e of entries) {
    throwIfAborted(opts.signal)
    const structure = `${dirEntryStructure(e.index)} '${displayName(e.nameBytes)}'`
    const problems = e.violations.map((v) => new FormatError(structure, v.field, e.offset + v.pos, v.problem, v.value).message)
    const warnings = [...e.warnings]
    const inUse = isInUse(e.flags)
    const gb = e.granularityBits
    const nbits = gb <= 63 ? bitmapBits(header.diskLength, gb) : 0
    const expected = gb <= 63 ? expectedTableSize(header.diskLength, gb, cs) : 0
    if (gb < 9 || gb > 31) warnings.push(`granularity_bits ${gb} is outside QEMU's 9..31`)
    const nameKey = nameKeyOf(e.nameBytes)
    const dupeIndex = seen.get(nameKey)
    const dupe = dupeIndex === undefined ? undefined : out[dupeIndex]
    if (dupe) {
      if (inUse) warnings.push(`name duplicates bitmap ${dupe.index}; QEMU skips this in-use copy`)
      else problems.push(new FormatError(structure, 'name', e.offset + DIR_ENTRY_HEADER_SIZE + e.extraDataSize, `duplicates bitmap ${dupe.index} (Bitmap already exists)`, displayName(e.nameBytes)).message)
    }
    let table: Float64Array<ArrayBufferLike> = new Float64Array(0)
    // Bound the table by the file and QEMU's data limit before reading it.
    const tableBytes = e.tableSize * 8
    const tableOk = e.tableOffset > 0 && e.tableOffset % cs === 0 && e.tableSize > 0
    if (tableOk && e.tableOffset + tableBytes > device.size) {
      problems.push(new FormatError(structure, 'bitmap_table_offset', e.offset + DirEntryField.bitmapTableOffset, `puts the table (${tableBytes} bytes) past the end of the file`, e.tableOffset).message)
    } else if (tableOk && e.tableSize * cs <= BME_MAX_PHYS_SIZE * 2) {
      const t = await readTable(device, e.tableOffset, e.tableSize, cs)
      table = t.entries
      const tp: TableProblem | undefined = t.problems[0]
      if (tp) {
        const msg = `${tableProblemError(`bitmap table of '${displayName(e.nameBytes)}'`, tp).message}${t.problems.length > 1 ? ` (and ${t.problems.length - 1} more bad entries)` : ''}`
        // QEMU validates the table only for bitmaps it loads (in_use clear).
        if (inUse) warnings.push(msg)
        else problems.push(msg)
      }
      const tw: TableProblem | undefined = t.warnings[0]
      if (tw) {
        warnings.push(`${tableProblemError(`bitmap table of '${displayName(e.nameBytes)}'`, tw).message}${t.warnings.length > 1 ? ` (and ${t.warnings.length - 1} more such entries)` : ''}`)
      }
    }
    if (!inUse && e.violations.length === 0 && e.tableSize > expected) {
      problems.push(new FormatError(structure, 'bitmap_table_size', e.offset + DirEntryField.bitmapTableSize, `is larger than the ${expected} entries the disk needs (Could not read bitmap from image)`, e.tableSize).message)
    }
    if (inUse && e.tableSize !== expected) {
      warnings.push(`table has ${e.tableSize} entries but the disk needs ${expected} (resized while in use): rebuild before clearing in_use`)
    }
    let status: BitmapStatus
    if (problems.length > 0) status = 'invalid'
    else if (!trusted) status = 'untrusted'
    else if (inUse) status = 'in-use'
    else status = 'ok'
    if (dupe === undefined) seen.set(nameKey, out.length)
    out.push({
      index: e.index,
      name: displayName(e.nameBytes),
      nameBytes: e.nameBytes,
      entry: e,
      tableOffset: e.tableOffset,
      tableSize: e.tableSize,
      expectedTableSize: expected,
      flags: e.flags,
      inUse,
      auto: isAuto(e.flags),
      type: e.type,
      granularityBits: gb,
      granularity: 2 ** gb,
      nbits,
      status,
      problems,
      warnings,
      table,
    })
  }
  return out
}

/** The bitmap with this display name or exact bytes. */
export function findBitmap(img: Image, name: string): Bitmap | undefined {
  return img.bitmaps.find((b) => b.name === name)
}

function autoclearBitOf(header: Header): boolean {
  return header.version === 3 && hasBit(header.autoclearFeatures, Autoclear.bitmaps)
}
