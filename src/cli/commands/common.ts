/** Shared CLI plumbing: open an image file, find a bitmap, refuse unreadable ones. */
import { statSync } from 'node:fs'
import { NodeFileDevice } from '../../io/node-file.js'
import { err } from '../io.js'
import { type Bitmap, type ConstraintCode, ConstraintError, type Image, type Plan, commitPlan, openImage } from '../../engine/index.js'
import { readerFor, readable } from '../../engine/describe.js'
import type { BitmapReader } from '../../engine/index.js'

export class CliError extends Error {
  override readonly name = 'CliError'
  /** @param image the file the error is about, when it is not the command's IMAGE argument */
  constructor(message: string, readonly exitCode = 1, readonly image?: string) {
    super(message)
  }
}

export async function openPath(path: string, mode: 'r' | 'rw' = 'r'): Promise<{ dev: NodeFileDevice; img: Image }> {
  let dev: NodeFileDevice
  let isDir = false
  try { isDir = statSync(path).isDirectory() } catch { /* open reports it */ }
  if (isDir) throw new CliError(`Could not open '${path}': it is a directory, not an image file`)
  try {
    dev = NodeFileDevice.open(path, mode)
  } catch (e) {
    throw new CliError(`Could not open '${path}': ${(e as Error).message}`)
  }
  try {
    return { dev, img: await openImage(dev) }
  } catch (e) {
    dev.close()
    throw e
  }
}

export function requireBitmap(img: Image, name: string): Bitmap {
  const b = img.bitmaps.find((x) => x.name === name)
  if (!b) {
    if (img.bitmapsError && img.bitmaps.length === 0) throw img.bitmapsError
    throw new CliError(`Dirty bitmap '${name}' not found`)
  }
  return b
}

/** A reader over a bitmap whose data can be read (stale in-use data included). */
export function requireReader(img: Image, b: Bitmap): BitmapReader {
  if (!readable(b)) throw new CliError(`bitmap '${b.name}' cannot be read: ${b.problems[0] ?? 'no usable table'}`)
  const why = notAsQemuSeesIt(img, b)
  if (why) err(`qbm: warning: bitmap '${b.name}' ${why}\n`)
  return readerFor(img, b)
}

/** Why the stored bits of `b` are not what QEMU would export, or undefined when they are. */
export function notAsQemuSeesIt(img: Image, b: Bitmap): string | undefined {
  if (b.status === 'in-use') return 'is in use: these are the stale bits of its last clean save (QEMU refuses to export it)'
  if (b.status === 'untrusted') return 'is untrusted (autoclear bit 0 is clear): QEMU ignores every bitmap of this image; these are the stored bits'
  if (b.status === 'invalid') return `is invalid (${b.problems[0] ?? 'see qbm info'}): QEMU refuses the image; these are the bits qbm could read`
  if (img.qemuRefuses.length > 0) return `belongs to an image QEMU refuses to open (${img.qemuRefuses[0]}); these are the stored bits`
  return undefined
}

/**
 * Open read-write, plan (which first runs the image check: an image that fails it is refused),
 * commit, print the plan's warnings: one open, so the plan matches the file it writes. The one
 * write path of every editing command.
 */
export async function editFile(path: string, makePlan: (img: Image) => Promise<Plan>): Promise<Plan> {
  const { dev, img } = await openPath(path, 'rw')
  try {
    const plan = await makePlan(img)
    await commitPlan(dev, plan)
    for (const w of plan.warnings) err(`qbm: warning: ${w}\n`)
    return plan
  } catch (e) {
    if (e instanceof ConstraintError) throw new CliError(e.message + flagHint(e.code, path))
    throw e
  } finally {
    dev.close()
  }
}

/** The CLI's own way out of a refused edit, keyed on the engine's code: its flag names. */
export function flagHint(code: ConstraintCode, image: string): string {
  switch (code) {
    case 'bitmaps-in-use': return '; if it is not (its writer crashed), confirm with --force'
    case 'bitmap-metadata-broken':
    case 'bitmap-metadata-invalid': return `; to repair: qbm repair ${image} --drop-all-bitmaps`
    case 'bitmaps-untrusted': return `; to repair: qbm repair ${image} --retrust (every bit set) or --drop-all-bitmaps`
    case 'stored-bits-unusable': return '; use --clear-in-use=dirty or --clear-in-use=empty'
    case 'image-check-failed': return `; \`qbm check ${image}\` lists every problem`
    default: return ''
  }
}
