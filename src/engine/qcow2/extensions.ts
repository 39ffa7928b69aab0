/**
 * Header extensions (docs/format.md §1.3): a list of (type, length, data) records after the header,
 * read until the end record or the end of the extension area. Unknown ones are kept verbatim
 * so that a header rewrite can put them back byte-exact.
 */
import { Cursor } from '../bytes.js'
import { FormatError } from '../errors.js'
import { ExtensionType } from './constants.js'
import type { Header } from './header.js'

export interface HeaderExtension {
  readonly type: number
  /** absolute offset of the 8-byte type/length record */
  readonly offset: number
  readonly length: number
  /** the data bytes, padding excluded (a copy) */
  readonly data: Uint8Array
}

export interface FeatureNameEntry {
  readonly type: number
  readonly bit: number
  readonly name: string
}

export const EXT_STRUCT = 'header extension area'

/** End of the extension area: the backing file name if any, else the end of cluster 0. */
export function extensionAreaEnd(h: Header): number {
  return h.backingFileOffset !== 0 ? h.backingFileOffset : h.clusterSize
}

/** Decode every extension in cluster 0 (`cluster0` holds at least min(cs, file size) bytes). */
export function decodeExtensions(h: Header, cluster0: Uint8Array): HeaderExtension[] {
  // v2 images may carry extensions as well (QEMU reads them from offset 72 = header_length).
  const end = Math.min(extensionAreaEnd(h), cluster0.length)
  const c = new Cursor(cluster0, 0, EXT_STRUCT)
  const out: HeaderExtension[] = []
  let pos = h.headerLength
  while (pos + 8 <= end) {
    const type = c.u32(pos)
    const length = c.u32(pos + 4)
    if (type === ExtensionType.end) break
    if (pos + 8 + length > end) {
      throw new FormatError(EXT_STRUCT, 'length', pos + 4, `of extension 0x${type.toString(16)} runs past the end of the extension area at 0x${end.toString(16)} (Header extension too large)`, length)
    }
    // QEMU reads every record in order; a later record of the same type overrides the earlier.
    out.push({ type, offset: pos, length, data: cluster0.slice(pos + 8, pos + 8 + length) })
    pos += 8 + Math.ceil(length / 8) * 8
  }
  return out
}

/** The record QEMU uses for `type`: the last one (each record overrides the ones before it). */
export function findExtension(exts: readonly HeaderExtension[], type: number): HeaderExtension | undefined {
  return exts.findLast((e) => e.type === type)
}

/** Types that occur more than once. */
export function duplicateExtensionTypes(exts: readonly HeaderExtension[]): number[] {
  const seen = new Set<number>()
  const dup = new Set<number>()
  for (const e of exts) (seen.has(e.type) ? dup : seen).add(e.type)
  return [...dup]
}

const latin = new TextDecoder('utf-8', { fatal: false })

/** The data of a string extension (backing format, data file name). */
export function extensionString(e: HeaderExtension): string {
  return latin.decode(e.data)
}

/** The feature name table's 48-byte records: type (0 incompatible, 1 compatible, 2 autoclear), bit, name. */
export function decodeFeatureNameTable(e: HeaderExtension): FeatureNameEntry[] {
  const out: FeatureNameEntry[] = []
  for (let p = 0; p + 48 <= e.data.length; p += 48) {
    const raw = e.data.subarray(p + 2, p + 48)
    const nul = raw.indexOf(0)
    out.push({ type: e.data[p]!, bit: e.data[p + 1]!, name: latin.decode(nul >= 0 ? raw.subarray(0, nul) : raw) })
  }
  return out
}
