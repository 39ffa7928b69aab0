/**
 * `qbm check IMAGE [--output=human|json]`: the equivalent of `qemu-img check` (docs/format.md §6.6),
 * read-only. Like qemu-img, messages about clusters go to stderr and the summary to stdout, and
 * the exit code is 0 clean, 1 could not check, 2 corruptions, 3 leaks only.
 */
import { type CheckReport, checkImage } from '../../engine/index.js'
import { type Parsed, outputFormat } from '../args.js'
import { err, flushOut, out } from '../io.js'
import { openPath } from './common.js'
import type { ExtraCommand } from './registry.js'

/** Run the check on a file; returns qemu-img check's exit code. */
export async function cmdCheck(p: Parsed, path: string): Promise<number> {
  const fmt = outputFormat(p)
  const { dev, img } = await openPath(path)
  try {
    const r = await checkImage(img)
    if (fmt === 'json') {
      out(JSON.stringify({ filename: path, format: 'qcow2', ...r }, null, 2) + '\n')
      flushOut()
      if (r.failure) err(`qbm: ${path}: ${r.failure}\n`)
      return r.exitCode
    }
    printHuman(path, r)
    return r.exitCode
  } finally {
    dev.close()
  }
}

/** qemu-img check's human output (qemu-img.c dump_human_image_check). */
export function formatSummary(r: CheckReport): string {
  const L: string[] = []
  if (!(r.corruptions || r.leaks || r.checkErrors)) {
    L.push('No errors were found on the image.')
  } else {
    if (r.corruptions) L.push('', `${r.corruptions} errors were found on the image.`, 'Data may be corrupted, or further writes to the image may corrupt it.')
    if (r.leaks) L.push('', `${r.leaks} leaked clusters were found on the image.`, 'This means waste of disk space, but no harm to data.')
    if (r.checkErrors) L.push('', `${r.checkErrors} internal errors have occurred during the check.`)
  }
  if (r.totalClusters !== 0 && r.allocatedClusters !== 0) {
    const pct = (a: number, b: number): string => printf2((a * 100) / b)
    L.push(`${r.allocatedClusters}/${r.totalClusters} = ${pct(r.allocatedClusters, r.totalClusters)}% allocated, ` +
      `${pct(r.fragmentedClusters, r.allocatedClusters)}% fragmented, ${pct(r.compressedClusters, r.allocatedClusters)}% compressed clusters`)
  }
  if (r.imageEndOffset) L.push(`Image end offset: ${r.imageEndOffset}`)
  return L.join('\n') + '\n'
}

/**
 * printf("%0.2f"): like toFixed(2), except that an exact tie rounds to even as glibc does
 * (1/32 = 3.125% prints 3.12). Only multiples of 1/8 can be exact ties at two decimals.
 */
export function printf2(x: number): string {
  const y = x * 8
  if (Number.isInteger(y) && (y * 125) % 10 === 5) {
    let n = Math.floor(x * 100)
    if (n % 2 === 1) n++
    return `${Math.floor(n / 100)}.${String(n % 100).padStart(2, '0')}`
  }
  return x.toFixed(2)
}

function printHuman(path: string, r: CheckReport): void {
  let msgs = ''
  for (const f of r.findings) msgs += f.kind === 'warning' ? `qbm: warning: ${f.message}\n` : `${f.message}\n`
  if (r.findingsOmitted) msgs += `qbm: ${r.findingsOmitted} more error and leak messages not shown\n`
  if (msgs) err(msgs)
  if (r.completed) {
    out(formatSummary(r))
    flushOut()
  }
  if (r.failure) err(`qbm: ${path}: ${r.failure}\n`)
}

/** The command as registered in registry.ts. */
export const checkCommand: ExtraCommand = {
  name: 'check',
  usage: 'check IMAGE [--output=human|json]',
  spec: { output: { value: true } },
  positional: 1,
  run: (p, a) => cmdCheck(p, a[0]!),
}
