/**
 * What qemu-img check needs before it can check anything: QEMU must open the image (QEMU
 * block/qcow2.c qcow2_do_open with BDRV_O_CHECK, read-only). This module repeats the checks of
 * that open that qbm's own reader does not make or makes differently, and loads the bitmap
 * directory exactly as QEMU does (BITMAP qcow2_read_extensions, bitmap_list_load,
 * qcow2_load_dirty_bitmaps), because any failure there makes QEMU refuse the image and
 * `qemu-img check` exit 1 (docs/format.md §6.6).
 *
 * QEMU is more tolerant than qbm's reader in a few places, and a check must follow QEMU:
 * reads past the end of the file return zeros, so a directory, table or data cluster past the
 * end of the file does not stop the open (the check then reports the reference as exceeding
 * the end of the file); in_use bitmaps are never read at open.
 */
import type { Image } from '../image.js'
import { FormatError } from '../errors.js'
import { offsetFrom } from '../bytes.js'
import {
  Autoclear, BME_FLAG_IN_USE, ExtensionType, Incompatible, KNOWN_INCOMPATIBLE, MAX_L1_BYTES,
  MAX_REFTABLE_BYTES, hasBit,
} from '../qcow2/constants.js'
import { findExtension } from '../qcow2/extensions.js'
import { type BitmapsExtension, decodeBitmapsExtension } from '../qcow2/bitmaps/extension.js'
import { type DirEntry, decodeDirectory } from '../qcow2/bitmaps/directory.js'
import { checkTableEntry, expectedTableSize } from '../qcow2/bitmaps/constraints.js'
import { readInFile, readPadded, readable } from './padded.js'

/** The bitmap directory QEMU loaded (its s->nb_bitmaps > 0), for the refcount check. */
export interface LoadedDirectory {
  readonly offset: number
  readonly size: number
  readonly entries: readonly DirEntry[]
}

/** The full disk encryption header area (extension 0x0537BE77). */
export interface CryptoHeaderArea {
  readonly offset: number
  readonly length: number
}

/** What QEMU's open decided and loaded, as far as the check needs it. */
export interface QemuOpen {
  /** why QEMU refuses to open the image; empty when it opens */
  readonly refusals: string[]
  /** present when QEMU trusts and loads the bitmaps extension */
  readonly directory?: LoadedDirectory
  readonly crypto?: CryptoHeaderArea
  /** incompatible bit 4: 16-byte L2 entries */
  readonly extendedL2: boolean
  /** incompatible bit 2: guest data lives in another file */
  readonly externalData: boolean
}

/** QEMU's size_to_l1: L1 entries needed for `size` bytes. */
export function sizeToL1(size: number, clusterBits: number, extendedL2: boolean): number {
  const l2Bits = clusterBits - (extendedL2 ? 4 : 3)
  return Math.ceil(size / 2 ** (clusterBits + l2Bits))
}

/** Follow qcow2_do_open (check mode) on an image qbm has opened. */
export async function emulateQemuOpen(img: Image, ignoreBitmaps = false): Promise<QemuOpen> {
  const h = img.header
  const cs = h.clusterSize
  const refusals: string[] = []
  const extendedL2 = hasBit(h.incompatibleFeatures, Incompatible.extendedL2)
  const externalData = hasBit(h.incompatibleFeatures, Incompatible.externalDataFile)

  const unknown = h.incompatibleFeatures & ~KNOWN_INCOMPATIBLE
  if (unknown) refusals.push(`Unsupported qcow2 feature(s): 0x${unknown.toString(16)}`)
  if (extendedL2 && cs / 32 < 512) refusals.push(`Unsupported subcluster size: ${cs / 32}`)
  if (h.refcountTableClusters > MAX_REFTABLE_BYTES / cs) refusals.push('Reference count table too large')
  if (h.l1Size > MAX_L1_BYTES / 8) refusals.push('Active L1 table too large')
  const l1Needed = sizeToL1(h.size, h.clusterBits, extendedL2)
  if (l1Needed > 0x7fffffff) refusals.push('Image is too big')
  else if (h.l1Size < l1Needed) refusals.push('L1 table is too small')

  if (h.cryptMethod > 2) refusals.push(`Unsupported encryption method ${h.cryptMethod}`)
  const tooLarge = extensionTooLarge(img)
  // A bitmaps record with a wrong length derails the walk over the records after it; the
  // header a repair writes drops that record, so the check for a repair looks only before it.
  const bitmapsRecord = findExtension(img.extensions, ExtensionType.bitmaps)
  if (tooLarge && !(ignoreBitmaps && bitmapsRecord && tooLarge.at > bitmapsRecord.offset)) refusals.push(tooLarge.message)

  let crypto: CryptoHeaderArea | undefined
  const cext = findExtension(img.extensions, ExtensionType.fullDiskEncryption)
  if (cext) {
    if (h.cryptMethod !== 2) refusals.push('CRYPTO header extension only expected with LUKS encryption method')
    else if (cext.length !== 16) refusals.push(`CRYPTO header extension size ${cext.length}, but expected size 16`)
    else {
      const v = new DataView(cext.data.buffer, cext.data.byteOffset, cext.data.byteLength)
      const offsetRaw = v.getBigUint64(0)
      const offset = offsetFrom(offsetRaw)
      const length = offsetFrom(v.getBigUint64(8))
      if (offsetRaw % BigInt(cs) !== 0n) refusals.push(`Encryption header offset '${offsetRaw}' is not a multiple of cluster size '${cs}'`)
      else crypto = { offset, length }
    }
  } else if (h.cryptMethod === 2) {
    refusals.push('Missing CRYPTO header for crypt method 2')
  }
  if (externalData && !findExtension(img.extensions, ExtensionType.externalDataFile)) {
    refusals.push("'data-file' is required for this image")
  }
  if (!externalData && hasBit(h.autoclearFeatures, Autoclear.rawExternalData)) {
    refusals.push('data-file-raw requires a data file')
  }

  const directory = ignoreBitmaps ? undefined : await loadBitmaps(img, refusals)
  return {
    refusals, extendedL2, externalData,
    ...(directory ? { directory } : {}),
    ...(crypto ? { crypto } : {}),
  }
}

/**
 * QEMU's qcow2_read_extensions checks every record's length before it looks at the type, the
 * end record included, so an end record with a length that runs past the extension area makes
 * the open fail (qbm's reader stops at the end record without looking).
 */
function extensionTooLarge(img: Image): { message: string; at: number } | undefined {
  const h = img.header
  const end = h.backingFileOffset !== 0 ? h.backingFileOffset : h.clusterSize
  const c0 = img.cluster0
  const u32 = (p: number): number => (p + 4 <= c0.length ? ((c0[p]! << 24) | (c0[p + 1]! << 16) | (c0[p + 2]! << 8) | c0[p + 3]!) >>> 0 : 0)
  let offset = h.headerLength
  while (offset < end) {
    const type = u32(offset)
    const len = u32(offset + 4)
    offset += 8
    if (offset > end || len > end - offset) return { message: `Header extension too large (extension 0x${type.toString(16)} at 0x${(offset - 8).toString(16)})`, at: offset - 8 }
    if (type === ExtensionType.end) return undefined
    offset += Math.ceil(len / 8) * 8
  }
  return undefined
}

/**
 * The bitmaps part of the open. Returns the directory when QEMU loads it; pushes a refusal when
 * QEMU cannot open the image because of it.
 */
async function loadBitmaps(img: Image, refusals: string[]): Promise<LoadedDirectory | undefined> {
  const h = img.header
  const cs = h.clusterSize
  const ext = findExtension(img.extensions, ExtensionType.bitmaps)
  if (!ext) return undefined
  const trusted = h.version === 3 && hasBit(h.autoclearFeatures, Autoclear.bitmaps)
  let be: BitmapsExtension
  try {
    be = decodeBitmapsExtension(ext, cs)
  } catch (e) {
    if (!(e instanceof FormatError)) throw e
    // The length is checked before autoclear bit 0; every other field only when trusted.
    if (trusted || e.field === 'length') refusals.push(e.message)
    return undefined
  }
  if (!trusted) return undefined

  const offset = be.bitmapDirectoryOffset
  const size = be.bitmapDirectorySize
  const dirBuf = await readPadded(img.device, offset, size)
  const dir = decodeDirectory(dirBuf, offset, be.nbBitmaps, cs, h.diskLength, be.offset)
  if (dir.error) { refusals.push(dir.error.message); return undefined }
  const bad = dir.entries.find((e) => e.violations.length > 0)
  if (bad) {
    const v = bad.violations[0]!
    refusals.push(`Bitmap '${cName(bad.nameBytes)}' doesn't satisfy the constraints: ${v.field} ${v.problem}`)
    return undefined
  }

  // qcow2_load_dirty_bitmaps: names are C strings (cut at NUL); a later in_use entry whose
  // name exists is skipped; any other duplicate fails. Only bitmaps without in_use are read.
  const names = new Set<string>()
  const validTables = new Set<string>()
  for (const e of dir.entries) {
    const name = cName(e.nameBytes)
    const inUse = (e.flags & BME_FLAG_IN_USE) !== 0
    if (names.has(name)) {
      if (inUse) continue
      refusals.push(`Bitmap already exists: ${name}`)
      return undefined
    }
    names.add(name)
    if (inUse) continue
    // A table past QEMU's largest offset cannot be read; entries past the end of the file
    // read as zeros (valid). Tables shared by several entries are validated once.
    const key = `${e.tableOffsetRaw}:${e.tableSize}`
    if (!validTables.has(key)) {
      if (!readable(e.tableOffsetRaw, e.tableSize * 8)) {
        refusals.push(`Could not read bitmap_table table from image for bitmap '${name}': Input/output error`)
        return undefined
      }
      const table = await readInFile(img.device, e.tableOffset, e.tableSize * 8)
      const tv = new DataView(table.buffer, table.byteOffset, table.byteLength)
      for (let i = 0; i < table.length >>> 3; i++) {
        if (checkTableEntry(tv.getBigUint64(i * 8), cs)) {
          refusals.push(`Could not read bitmap_table table from image for bitmap '${name}': Invalid argument`)
          return undefined
        }
      }
      validTables.add(key)
    }
    if (e.tableSize !== expectedTableSize(h.diskLength, e.granularityBits, cs)) {
      refusals.push(`Could not read bitmap '${name}' from image: Invalid argument`)
      return undefined
    }
  }
  return { offset, size, entries: dir.entries }
}

const latin1 = new TextDecoder('latin1')

/** A name as QEMU's g_strndup sees it: bytes up to the first NUL. */
function cName(b: Uint8Array): string {
  const nul = b.indexOf(0)
  return latin1.decode(nul >= 0 ? b.subarray(0, nul) : b)
}
