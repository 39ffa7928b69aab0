/** `qbm info IMAGE [--output=human|json] [--sha256]`: header summary and every bitmap. */
import { describeImage, humanAndExact, humanBytes } from '../../engine/index.js'
import type { BitmapReader, ImageSummary } from '../../engine/index.js'
import { type Parsed, has, outputFormat } from '../args.js'
import { heldLabel } from '../../host/edit.js'
import type { LockHolder } from '../../host/locks.js'
import { err, out } from '../io.js'
import { openPath } from './common.js'

/** Run `qbm info`. */
export async function cmdInfo(p: Parsed, path: string): Promise<number> {
  const fmt = outputFormat(p)
  const { dev, img, held } = await openPath(path, { quiet: true })
  try {
    const readers = new Map<number, BitmapReader>()
    const s = await describeImage(img, { sha256: has(p, 'sha256'), readers })
    // Never on Node (WebAssembly SIMD is always there), but a fallback is never silent.
    const js = [...readers.values()].find((r) => r.kernel?.kind === 'js')
    if (js) err(`qbm: warning: bitmap data counted by the slower JavaScript kernel: ${js.kernel!.fallbackReason}\n`)
    if (fmt === 'json') {
      const heldBy = held ? { pid: held.pid ?? null, program: held.program ?? null, write: held.write, lockBytes: held.lockBytes } : null
      out(JSON.stringify({ image: path, heldBy, ...s }, null, 2) + '\n')
    } else out(formatInfo(path, s, { held, blockDevice: dev.isBlockDevice }))
    return 0
  } finally {
    dev.close()
  }
}

const STATUS_WORDS: Record<string, string> = {
  ok: 'ok',
  'in-use': 'in use (stale)',
  untrusted: 'untrusted (autoclear bit 0 clear)',
  invalid: 'INVALID',
}

/**
 * qbm info's human output. `held`: the QEMU process that has the image open, if any;
 * `blockDevice`: the image is a block device (its size is the device's, and it cannot grow).
 */
export function formatInfo(path: string, s: ImageSummary, on: { held?: LockHolder | null; blockDevice?: boolean } = {}): string {
  const held = on.held ?? null
  const L: string[] = []
  L.push(`image: ${path}`)
  if (held) L.push(heldLabel(held))
  L.push(`file format: qcow2 v${s.version}`)
  L.push(`virtual size: ${humanAndExact(s.virtualSize)}`)
  L.push(`${on.blockDevice ? 'device size' : 'file size'}: ${humanAndExact(s.fileSize)}`)
  L.push(`cluster size: ${humanBytes(s.clusterSize)} (${s.clusterSize})`)
  L.push(`refcount bits: ${s.refcountBits}`)
  L.push(`compression type: ${s.compressionType}`)
  const f = s.features
  L.push(`incompatible features: ${f.incompatible.join(', ') || '-'}`)
  L.push(`compatible features: ${f.compatible.join(', ') || '-'}`)
  L.push(`autoclear features: ${f.autoclear.join(', ') || '-'}`)
  if (s.backingFile !== undefined) L.push(`backing file: ${s.backingFile}${s.backingFormat ? ` (format ${s.backingFormat})` : ''}`)
  if (s.dataFile !== undefined) L.push(`data file: ${s.dataFile}`)
  if (s.bitmapsExtension) {
    const e = s.bitmapsExtension
    L.push(`bitmap directory: ${e.nbBitmaps} entr${e.nbBitmaps === 1 ? 'y' : 'ies'}, ${e.directorySize} bytes at 0x${e.directoryOffset.toString(16)}${e.trusted ? '' : ' (untrusted)'}`)
  }
  if (s.bitmapsError) L.push(`bitmaps error: ${s.bitmapsError.message}`)
  for (const w of s.warnings) L.push(`warning: ${w}`)
  for (const q of s.qemuRefuses) L.push(`QEMU refuses this image: ${q}`)
  L.push(`bitmaps: ${s.bitmaps.length}`)
  for (const b of s.bitmaps) {
    L.push(`  [${b.index}] ${b.name}`)
    L.push(`      granularity: ${humanBytes(b.granularity)} (${b.granularity})`)
    L.push(`      flags: ${b.flags.join(', ') || '-'}${b.enabled ? '' : ' (disabled)'}`)
    L.push(`      status: ${STATUS_WORDS[b.status] ?? b.status}`)
    if (b.dirtyBytes !== null) {
      L.push(`      dirty: ${humanAndExact(b.dirtyBytes)}, ${((100 * b.dirtyBytes) / Math.max(1, s.diskLength)).toFixed(2)}% of the disk, ${b.extentCount} extent${b.extentCount === 1 ? '' : 's'}${b.status === 'in-use' ? ' (stale)' : ''}`)
    }
    L.push(`      table: ${b.tableSize} entr${b.tableSize === 1 ? 'y' : 'ies'} at 0x${b.tableOffset.toString(16)}`)
    if (b.sha256) L.push(`      sha256: ${b.sha256}${b.status === 'in-use' ? " (QEMU's: it loads an in-use bitmap empty, so this is the hash of all zeros, not of the stale bits)" : ''}`)
    for (const pr of b.problems) L.push(`      problem: ${pr}`)
    for (const w of b.warnings) L.push(`      warning: ${w}`)
  }
  return L.join('\n') + '\n'
}
