/** Shared CLI plumbing: open an image file, find a bitmap, refuse unreadable ones, edit in place. */
import { statSync } from 'node:fs'
import { NodeFileDevice } from '../../io/node-file.js'
import { editInPlace, heldBy, heldLabel } from '../../host/edit.js'
import type { LockHolder } from '../../host/locks.js'
import { err } from '../io.js'
import {
  type Bitmap, type BitmapReader, type ConstraintCode, ConstraintError, type Image, type Plan, openImage, readable, readerFor,
} from '../../engine/index.js'

export class CliError extends Error {
  override readonly name = 'CliError'
  /** @param image the file the error is about, when it is not the command's IMAGE argument */
  constructor(message: string, readonly exitCode = 1, readonly image?: string) {
    super(message)
  }
}

function refuseDirectory(path: string): void {
  let isDir = false
  try { isDir = statSync(path).isDirectory() } catch { /* open reports it */ }
  if (isDir) throw new CliError(`Could not open '${path}': it is a directory, not an image file`)
}

/**
 * Open an image read-only. `held` is the QEMU process that has it open (src/host/locks.ts):
 * reads still work, but the live bitmaps are in QEMU's memory, so a one-line warning says so on
 * stderr unless `quiet` (qbm info prints it as part of its output instead).
 */
export async function openPath(path: string, opts: { quiet?: boolean } = {}): Promise<{ dev: NodeFileDevice; img: Image; held: LockHolder | null }> {
  refuseDirectory(path)
  let dev: NodeFileDevice
  try {
    dev = NodeFileDevice.open(path, 'r')
  } catch (e) {
    throw new CliError(`Could not open '${path}': ${(e as Error).message}`)
  }
  try {
    const held = heldBy(dev)
    if (held && !opts.quiet) err(`qbm: warning: ${path}: ${heldLabel(held)}\n`)
    return { dev, img: await openImage(dev), held }
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
 * The write path of every editing command: src/host/edit.ts editInPlace (open read-write,
 * refuse if QEMU holds the image, plan, which first runs the image check, then commit after the
 * capacity check and a second lock check), then print the plan's warnings.
 */
export async function editFile(path: string, makePlan: (img: Image) => Promise<Plan>): Promise<Plan> {
  refuseDirectory(path)
  try {
    const plan = await editInPlace(path, makePlan)
    for (const w of plan.warnings) err(`qbm: warning: ${w}\n`)
    return plan
  } catch (e) {
    if ((e as NodeJS.ErrnoException).syscall === 'open') throw new CliError(`Could not open '${path}': ${(e as Error).message}`)
    if (e instanceof ConstraintError) throw new CliError(e.message + flagHint(e.code, path))
    throw e
  }
}

/**
 * The CLI's command for a checkpoint finding (engine crossCheck), keyed on its state: the
 * engine says what to do in plain words, the CLI adds how with its flags.
 */
export function checkpointHint(state: string, image: string, bitmap: string): string {
  switch (state) {
    case 'in-use': return ` (qbm bitmap --clear-in-use=dirty --force ${image} ${bitmap})`
    case 'broken': return ` (qbm repair ${image} --drop-all-bitmaps)`
    case 'untrusted': return ` (qbm repair ${image} --retrust, or --drop-all-bitmaps)`
    default: return ''
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
