/**
 * Opening an image: the one reader (docs/format.md §6.1). The header, the extensions, the bitmaps
 * extension, the directory and every bitmap table are decoded once, and the open decides what
 * QEMU's qcow2_do_open and qcow2_load_dirty_bitmaps decide: whether QEMU's normal open (qemu-img
 * info, qemu-nbd) and its check open (qemu-img check) refuse the image, and each bitmap's status.
 * What qbm notices beyond QEMU's rules is kept as warnings. The views (describe.ts), the check
 * (check/check.ts) and the edit gate (edits/verify.ts) all work from this one Image.
 *
 * Metadata only: bitmap data is read on demand by BitmapReader.
 */
import type { BlockDevice } from './device.js'
import { type AbortSignalLike, type Finding, type FormatError, plainFinding, throwIfAborted } from './errors.js'
import { ExtensionType, HeaderField, Incompatible, MAX_CLUSTER_BITS, extensionTypeName, hasBit } from './qcow2/constants.js'
import { type Header, decodeHeader, headerFeatureNames } from './qcow2/header.js'
import { type HeaderExtension, decodeExtensions, duplicateExtensionTypes, extensionString, findExtension } from './qcow2/extensions.js'
import type { BitmapsExtension } from './qcow2/bitmaps/extension.js'
import { type Bitmap, type LoadedDirectory, loadBitmaps } from './qcow2/bitmaps/load.js'
import { type CryptoHeaderArea, openContainer } from './qcow2/open.js'

export type { Bitmap, BitmapStatus, LoadedDirectory } from './qcow2/bitmaps/load.js'
export type { CryptoHeaderArea } from './qcow2/open.js'

/** What QEMU's open decided and loaded, as the check needs it (docs/format.md §6.1). */
export interface QemuOpen {
  /** every reason QEMU refuses the image, in either open mode (`normalOnly`: the normal open only) */
  readonly refusals: readonly Finding[]
  /** the bitmap directory QEMU loads (trusted extension, nothing refused), for the refcount check */
  readonly directory?: LoadedDirectory
  readonly crypto?: CryptoHeaderArea
  /** incompatible bit 4: 16-byte L2 entries */
  readonly extendedL2: boolean
  /** incompatible bit 2: guest data lives in another file */
  readonly externalData: boolean
}

/** An opened image: its decoded metadata and QEMU's verdict on it. */
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
  /** the bitmaps extension or directory is broken (the first problem found) */
  readonly bitmapsError?: FormatError
  /** autoclear bit 0 set on a v3 image and extension present (QEMU trusts the bitmaps) */
  readonly bitmapsTrusted: boolean
  readonly bitmaps: Bitmap[]
  /** plain-word warnings about the image (display form of the warning findings) */
  readonly warnings: string[]
  /** why QEMU's normal open (qemu-img info, qemu-nbd) refuses the image (display form) */
  readonly qemuRefuses: string[]
  /** image-level refusals and warnings with structure, field and offset (each bitmap has its own) */
  readonly findings: Finding[]
  /** QEMU's decisions, for the check */
  readonly qemu: QemuOpen
}

/** Options of openImage. */
export interface OpenOptions {
  signal?: AbortSignalLike
}

/** Bytes read first: enough for any header and, at cluster sizes up to 4 KiB, all of cluster 0. */
const FIRST_READ = 4096

/**
 * Open an image through its device. Throws FormatError only when the header itself is unusable
 * (QEMU refuses such an image too); everything else is recorded as findings.
 */
export async function openImage(device: BlockDevice, opts: OpenOptions = {}): Promise<Image> {
  const fileSize = device.size
  const first = await device.read(0, Math.min(fileSize, FIRST_READ))
  // Cluster 0 holds the header and its extensions; header_length may exceed 4 KiB (QEMU allows
  // up to the cluster size), so read the whole cluster when cluster_bits says it is larger.
  const clusterBits = first.length >= HeaderField.clusterBits + 4 ? new DataView(first.buffer, first.byteOffset).getUint32(HeaderField.clusterBits) : 0
  const cluster0 = 2 ** clusterBits > FIRST_READ && clusterBits <= MAX_CLUSTER_BITS && fileSize > first.length
    ? await device.read(0, Math.min(fileSize, 2 ** clusterBits))
    : first
  const header = decodeHeader(cluster0, fileSize)
  const extensions = decodeExtensions(header, cluster0)
  const container = openContainer(header, extensions, cluster0)
  const findings: Finding[] = [...container.refusals]
  const warn = (message: string): void => { findings.push(plainFinding('warning', message)) }

  if (hasBit(header.incompatibleFeatures, Incompatible.dirty)) warn('The dirty bit is set: refcounts may be stale (lazy refcounts); QEMU repairs them on its next read-write open. Editing is refused.')
  if (hasBit(header.incompatibleFeatures, Incompatible.corrupt)) warn('The corrupt bit is set: QEMU refuses to open this image read-write. Editing is refused.')
  if (header.cryptMethod !== 0) warn(`The image is encrypted (crypt_method ${header.cryptMethod}); bitmaps are not encrypted and can still be read.`)
  for (const t of duplicateExtensionTypes(extensions)) {
    warn(`Header extension ${extensionTypeName(t)} appears more than once; QEMU uses the last one (so does qbm), and an edit writes it once.`)
  }

  let backingFile: string | undefined
  if (header.backingFileOffset !== 0 && header.backingFileSize > 0) {
    backingFile = new TextDecoder().decode(cluster0.subarray(header.backingFileOffset, header.backingFileOffset + header.backingFileSize))
  }
  const bf = findExtension(extensions, ExtensionType.backingFormat)
  const df = findExtension(extensions, ExtensionType.externalDataFile)

  throwIfAborted(opts.signal)
  const loaded = await loadBitmaps(device, header, extensions, opts.signal)
  findings.push(...loaded.findings)
  const inUse = loaded.bitmaps.filter((b) => b.status === 'in-use').length
  if (inUse > 0) {
    warn(`${inUse} bitmap${inUse > 1 ? 's are' : ' is'} in use: the image is open in a running VM, or its writer crashed. QEMU cannot use ${inUse > 1 ? 'them' : 'it'}; the stored data is stale.`)
  }
  return {
    device, fileSize, header, cluster0, extensions,
    features: headerFeatureNames(header),
    ...(backingFile !== undefined ? { backingFile } : {}),
    ...(bf ? { backingFormat: extensionString(bf) } : {}),
    ...(df ? { dataFile: extensionString(df) } : {}),
    ...(loaded.extension ? { bitmapsExtension: loaded.extension } : {}),
    ...(loaded.error ? { bitmapsError: loaded.error } : {}),
    bitmapsTrusted: loaded.trusted,
    bitmaps: loaded.bitmaps,
    warnings: findings.filter((f) => f.severity === 'warning').map((f) => f.message),
    qemuRefuses: findings.filter((f) => f.severity === 'refusal').map((f) => f.message),
    findings,
    qemu: {
      refusals: findings.filter((f) => f.severity === 'refusal'),
      ...(loaded.directory ? { directory: loaded.directory } : {}),
      ...(container.crypto ? { crypto: container.crypto } : {}),
      extendedL2: container.extendedL2,
      externalData: container.externalData,
    },
  }
}

/** Refusals of QEMU's check open; with `ignoreBitmaps`, as if the bitmaps were dropped. */
export function checkOpenRefusals(img: Image, ignoreBitmaps = false): Finding[] {
  return img.qemu.refusals.filter((f) => !f.normalOnly && !(ignoreBitmaps && f.cause === 'bitmaps'))
}

/** The bitmap with this display name (the first one, when a corrupt directory repeats it). */
export function findBitmap(img: Image, name: string): Bitmap | undefined {
  return img.bitmaps.find((b) => b.name === name)
}
