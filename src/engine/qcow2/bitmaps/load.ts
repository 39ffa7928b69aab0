/**
 * Loading the bitmaps as QEMU decides (docs/format.md §2, §3.4; qcow2.c qcow2_read_extensions,
 * qcow2-bitmap.c bitmap_list_load and qcow2_load_dirty_bitmaps). The extension, the directory and
 * every table are decoded once, with QEMU's reads (zeros past the end of the file, nothing past
 * its largest offset), and each bitmap gets QEMU's verdict. What qbm notices beyond QEMU's rules
 * (a table past the end of the file, odd names, non-zero padding) is kept as warnings.
 */
import type { BlockDevice } from '../../device.js'
import { FormatError, type AbortSignalLike, type Finding, findingFrom, plainFinding, throwIfAborted } from '../../errors.js'
import { displayName } from '../../names.js'
import { readPadded, readable } from '../../padded.js'
import {
  Autoclear, BME_MAX_GRANULARITY_BITS, BME_MAX_PHYS_SIZE, BME_MIN_GRANULARITY_BITS, BME_TABLE_ENTRY_SIZE, BitmapsExtField,
  DIR_ENTRY_HEADER_SIZE, DirEntryField, ExtensionType, QCOW2_MAX_BITMAPS, QCOW2_MAX_BITMAP_DIRECTORY_SIZE, hasBit,
} from '../constants.js'
import { type HeaderExtension, findExtension } from '../extensions.js'
import type { Header } from '../header.js'
import { bitmapBits, expectedTableSize } from './constraints.js'
import { type DirEntry, decodeDirectory, dirEntryStructure, isAuto, isInUse } from './directory.js'
import { BITMAPS_EXT_STRUCT, type BitmapsExtension, decodeBitmapsExtension } from './extension.js'
import { type DecodedTable, type TableProblem, decodeTable, tableProblemError } from './table.js'

/**
 * QEMU's verdict on one bitmap. ok: QEMU loads it; in-use: QEMU calls it inconsistent (stale,
 * unusable); untrusted: autoclear bit 0 is clear or the image is v2, so QEMU ignores every
 * bitmap; invalid: QEMU refuses it, and with it the whole image.
 */
export type BitmapStatus = 'ok' | 'in-use' | 'untrusted' | 'invalid'

/** One bitmap as read from its directory entry and table. */
export interface Bitmap {
  readonly index: number
  /** display name: UTF-8 with invalid bytes escaped as \xNN */
  readonly name: string
  readonly nameBytes: Uint8Array
  readonly entry: DirEntry
  /** FAR above 2^53 (docs/format.md §0.3) */
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
  /** why QEMU refuses it (or would, once trusted): display form of the refusal findings */
  readonly problems: string[]
  /** display form of the warning findings */
  readonly warnings: string[]
  /** every problem and warning with its structure, field and offset */
  readonly findings: Finding[]
  /** decoded table as QEMU reads it (0 zeroes, 1 ones, else data offset; past the file: zeros); empty when unreadable */
  readonly table: Float64Array
}

/** The bitmap directory QEMU loaded (its s->nb_bitmaps > 0), for the refcount check. */
export interface LoadedDirectory {
  readonly offset: number
  readonly size: number
  readonly entries: readonly DirEntry[]
}

/** Everything the bitmaps part of QEMU's open decided, and what qbm read. */
export interface BitmapsLoad {
  readonly extension?: BitmapsExtension
  /** the extension or the directory is broken (the first problem) */
  readonly error?: FormatError
  /** autoclear bit 0 set on a v3 image: QEMU reads the extension */
  readonly trusted: boolean
  readonly bitmaps: Bitmap[]
  /** present when QEMU loads the bitmaps (trusted, nothing refused) */
  readonly directory?: LoadedDirectory
  /** image-level refusals and warnings about the bitmaps (each bitmap has its own too) */
  readonly findings: Finding[]
}

/** Read the bitmaps of an image through `device`, deciding as QEMU's open does. */
export async function loadBitmaps(
  device: BlockDevice, header: Header, extensions: readonly HeaderExtension[], signal?: AbortSignalLike,
): Promise<BitmapsLoad> {
  const findings: Finding[] = []
  const refuse = (e: FormatError): void => {
    const qemu = qemuWords(e)
    findings.push(findingFrom(e, 'refusal', { cause: 'bitmaps', ...(qemu ? { qemu } : {}) }))
  }
  const warn = (e: FormatError | string): void => {
    findings.push(typeof e === 'string' ? plainFinding('warning', e) : findingFrom(e, 'warning'))
  }
  const trusted = header.version === 3 && hasBit(header.autoclearFeatures, Autoclear.bitmaps)
  const record = findExtension(extensions, ExtensionType.bitmaps)
  if (!record) {
    if (trusted) warn('Autoclear bit 0 (bitmaps) is set but there is no bitmaps extension: QEMU opens the image, but its first write marks it corrupt. Repair: clear the bit.')
    return { trusted: false, bitmaps: [], findings }
  }
  // QEMU checks every bitmaps record it meets, in order: the length always, the rest when trusted.
  for (const e of extensions) {
    if (e.type !== ExtensionType.bitmaps || e === record) continue
    try { decodeBitmapsExtension(e, header.clusterSize) } catch (err) {
      if (!(err instanceof FormatError)) throw err
      if (trusted || err.field === 'length') refuse(err)
    }
  }
  let extension: BitmapsExtension | undefined
  let error: FormatError | undefined
  try {
    extension = decodeBitmapsExtension(record, header.clusterSize)
  } catch (e) {
    if (!(e instanceof FormatError)) throw e
    error = e
  }
  if (!trusted) {
    warn(header.version === 2
      ? 'This v2 image contains bitmaps, but v2 has no autoclear bits: QEMU considers them all inconsistent and drops them on its next read-write open.'
      : 'Autoclear bit 0 (bitmaps) is clear: a program lacking bitmap support modified this file, so QEMU considers every bitmap inconsistent and ignores them; their clusters show as leaks.')
  }
  if (error) {
    // QEMU checks only the length before looking at autoclear bit 0 (docs/format.md §2.1).
    if (trusted || error.field === 'length') refuse(error)
    else warn(`The ignored bitmaps extension is also invalid: ${error.message}`)
    return { ...(extension ? { extension } : {}), error, trusted, bitmaps: [], findings }
  }
  const ext = extension!
  throwIfAborted(signal)

  // bitmap_list_load: the directory as QEMU reads it.
  const { bitmapDirectoryOffset: dOff, bitmapDirectorySize: dSize, bitmapDirectoryOffsetRaw: dRaw } = ext
  const dirField = (problem: string): FormatError => new FormatError(BITMAPS_EXT_STRUCT, 'bitmap_directory_offset', ext.offset + BitmapsExtField.bitmapDirectoryOffset, problem, dRaw)
  if (!readable(dRaw, dSize)) {
    error = dirField('puts the directory past the largest offset QEMU can read (Failed to read bitmap directory: Input/output error)')
  } else if (dOff >= device.size) {
    // QEMU reads zeros, and an all-zero entry fails its constraints (bitmap_table_size 0).
    error = dirField(`puts the directory (${dSize} bytes) past the end of the file (0x${device.size.toString(16)}), where QEMU reads zeros`)
  }
  if (error) {
    if (trusted) refuse(error)
    return { extension: ext, error, trusted, bitmaps: [], findings }
  }
  if (dOff + dSize > device.size) {
    warn(dirField(`puts the end of the directory (${dSize} bytes) past the end of the file (0x${device.size.toString(16)}); QEMU reads zeros there`))
  }
  const dirBuf = await readPadded(device, dOff, dSize)
  const dir = decodeDirectory(dirBuf, dOff, ext.nbBitmaps, header.clusterSize, header.diskLength, ext.offset)
  if (dir.error) {
    error = dir.error
    if (trusted) refuse(dir.error)
  }
  const bitmaps = await loadEntries(device, header, dir.entries, trusted, signal)
  for (const b of bitmaps) {
    const first = b.findings.find((f) => f.severity === 'refusal')
    if (b.status === 'invalid' && first) findings.push({ ...first, message: `bitmap '${b.name}': ${first.message}`, cause: 'bitmaps' })
  }
  const loaded = trusted && !findings.some((f) => f.severity === 'refusal')
  return {
    extension: ext,
    ...(error ? { error } : {}),
    trusted,
    bitmaps,
    ...(loaded ? { directory: { offset: dOff, size: dSize, entries: dir.entries } } : {}),
    findings,
  }
}


/** QEMU's message for a broken extension or directory (qcow2_read_extensions, bitmap_list_load). */
function qemuWords(e: FormatError): string | undefined {
  switch (e.field) {
    case 'length': return 'bitmaps_ext: Invalid extension length'
    case 'reserved32': return 'bitmaps_ext: Reserved field is not zero'
    case 'nb_bitmaps':
      if (/More bitmaps/.test(e.problem)) return 'More bitmaps found than specified in header extension'
      if (/Less bitmaps/.test(e.problem)) return 'Less bitmaps found than specified in header extension'
      return e.value === 0 ? 'found bitmaps extension with zero bitmaps' : `bitmaps_ext: Image has ${e.value} bitmaps, exceeding the QEMU supported maximum of ${QCOW2_MAX_BITMAPS}`
    case 'bitmap_directory_size':
      if (/Broken bitmap directory/.test(e.problem)) return 'Broken bitmap directory'
      return e.value === 0 ? 'Requested bitmap directory size is zero' : `bitmaps_ext: bitmap directory size (${e.value}) exceeds the maximum supported size (${QCOW2_MAX_BITMAP_DIRECTORY_SIZE})`
    case 'bitmap_directory_offset':
      if (/not cluster aligned/.test(e.problem)) return 'bitmaps_ext: invalid bitmap directory offset'
      if (/largest offset/.test(e.problem)) return 'Failed to read bitmap directory: Input/output error'
      return undefined
    default: return undefined
  }
}

/** A name as QEMU sees it: a C string, cut at the first NUL (g_strndup). */
function cName(b: Uint8Array): Uint8Array {
  const nul = b.indexOf(0)
  return nul >= 0 ? b.subarray(0, nul) : b
}

/** A string key with QEMU's equality of names (strcmp of the C strings). */
function cNameKey(b: Uint8Array): string {
  const bytes = cName(b)
  let s = ''
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192))
  return s
}

/** qcow2_load_dirty_bitmaps, entry by entry; tables shared by several entries are read once. */
async function loadEntries(
  device: BlockDevice, header: Header, entries: readonly DirEntry[], trusted: boolean, signal?: AbortSignalLike,
): Promise<Bitmap[]> {
  const out: Bitmap[] = []
  const seen = new Map<string, Bitmap>()
  const tables = new Map<string, DecodedTable>()
  const cs = header.clusterSize
  const L = header.diskLength
  for (const e of entries) {
    throwIfAborted(signal)
    const name = displayName(e.nameBytes)
    const structure = `${dirEntryStructure(e.index)} '${name}'`
    const at = (pos: number, field: string, problem: string, value?: bigint | number | string): FormatError =>
      new FormatError(structure, field, e.offset + pos, problem, value)
    const findings: Finding[] = []
    const qemuName = displayName(cName(e.nameBytes))
    const problem = (err: FormatError, qemu: string): void => {
      findings.push(findingFrom(err, 'refusal', { qemu }))
    }
    const warning = (err: FormatError | string): void => {
      findings.push(typeof err === 'string' ? plainFinding('warning', err) : findingFrom(err, 'warning'))
    }
    for (const v of e.violations) {
      problem(at(v.pos, v.field, v.problem, v.value), v.field === 'extra_data_size' ? 'Bitmap extra data is not supported' : `Bitmap '${qemuName}' doesn't satisfy the constraints`)
    }
    for (const w of e.warnings) warning(at(w.pos, w.field, w.problem, w.value))
    const inUse = isInUse(e.flags)
    const gb = e.granularityBits
    const valid = gb >= BME_MIN_GRANULARITY_BITS && gb <= BME_MAX_GRANULARITY_BITS
    const nbits = gb <= 63 ? bitmapBits(L, gb) : 0
    const expected = gb <= 63 ? expectedTableSize(L, gb, cs) : 0

    // Names are C strings: a later in_use entry with a name already loaded is skipped.
    const key = cNameKey(e.nameBytes)
    const dupe = seen.get(key)
    if (dupe) {
      const dupAt = at(DIR_ENTRY_HEADER_SIZE + e.extraDataSize, 'name', `duplicates bitmap ${dupe.index}`, name)
      if (inUse) warning(new FormatError(dupAt.structure, dupAt.field, dupAt.offset, `${dupAt.problem}; QEMU skips this in-use copy`, name))
      else problem(new FormatError(dupAt.structure, dupAt.field, dupAt.offset, `${dupAt.problem} (Bitmap already exists)`, name), `Bitmap already exists: ${qemuName}`)
    }

    // The table, read as QEMU reads it: zeros past the end of the file, nothing past its limit.
    let table: Float64Array = new Float64Array(0)
    const bytes = e.tableSize * BME_TABLE_ENTRY_SIZE
    const aligned = e.tableOffsetRaw !== 0n && e.tableOffsetRaw % BigInt(cs) === 0n
    // Tables QEMU would not read (constraints violated, or in_use) are still shown, up to twice
    // QEMU's own limit on table_size * cs (at most 16 MiB of table).
    if (aligned && e.tableSize > 0 && e.tableSize * cs <= BME_MAX_PHYS_SIZE * 2) {
      if (!readable(e.tableOffsetRaw, bytes)) {
        const msg = at(DirEntryField.bitmapTableOffset, 'bitmap_table_offset', 'puts the table past the largest offset QEMU can read (Could not read bitmap_table table from image: Input/output error)', e.tableOffsetRaw)
        if (inUse) warning(msg)
        else problem(msg, `Could not read bitmap_table table from image for bitmap '${qemuName}': Input/output error`)
      } else {
        const tkey = `${e.tableOffsetRaw}:${e.tableSize}`
        let t = tables.get(tkey)
        if (!t) {
          t = decodeTable(await readPadded(device, e.tableOffset, bytes), e.tableOffset, cs, device.size)
          tables.set(tkey, t)
        }
        table = t.entries
        if (e.tableOffset + bytes > device.size) {
          warning(at(DirEntryField.bitmapTableOffset, 'bitmap_table_offset', `puts ${e.tableOffset >= device.size ? 'the table' : 'the end of the table'} (${bytes} bytes) past the end of the file (0x${device.size.toString(16)}): QEMU reads zeros there, so ${e.tableOffset >= device.size ? 'the bitmap reads as empty' : 'those bitmap clusters read as empty'}, and qemu-img check counts a corruption`, e.tableOffsetRaw))
        }
        const first: TableProblem | undefined = t.problems[0]
        if (first) {
          const err = tableProblemError(`bitmap table of '${name}'`, first)
          const more = t.problems.length > 1 ? ` (and ${t.problems.length - 1} more bad entries)` : ''
          const f = new FormatError(err.structure, err.field, err.offset, `${err.problem}${more}`, err.value)
          // QEMU validates the table only for bitmaps it loads (in_use clear).
          if (inUse) warning(f)
          else problem(f, `Could not read bitmap_table table from image for bitmap '${qemuName}': Invalid argument`)
        }
        const tw: TableProblem | undefined = t.warnings[0]
        if (tw) {
          const err = tableProblemError(`bitmap table of '${name}'`, tw)
          const more = t.warnings.length > 1 ? ` (and ${t.warnings.length - 1} more such entries)` : ''
          warning(new FormatError(err.structure, err.field, err.offset, `${err.problem}${more}`, err.value))
        }
      }
    }
    if (!inUse && e.violations.length === 0 && e.tableSize > expected) {
      problem(at(DirEntryField.bitmapTableSize, 'bitmap_table_size', `is larger than the ${expected} entries the disk needs (Could not read bitmap from image)`, e.tableSize), `Could not read bitmap '${qemuName}' from image: Invalid argument`)
    }
    if (inUse && e.tableSize !== expected && valid) {
      warning(at(DirEntryField.bitmapTableSize, 'bitmap_table_size', `is ${e.tableSize} but the disk needs ${expected} entries (resized while in use): the table is rebuilt when in_use is cleared`, e.tableSize))
    }
    const problems = findings.filter((f) => f.severity === 'refusal').map((f) => f.message)
    let status: BitmapStatus
    if (!trusted) status = 'untrusted'
    else if (problems.length > 0) status = 'invalid'
    else if (inUse) status = 'in-use'
    else status = 'ok'
    const b: Bitmap = {
      index: e.index,
      name,
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
      warnings: findings.filter((f) => f.severity === 'warning').map((f) => f.message),
      findings,
      table,
    }
    if (!dupe) seen.set(key, b)
    out.push(b)
  }
  return out
}
