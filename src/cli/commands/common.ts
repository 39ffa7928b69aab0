/** Shared CLI plumbing: open an image file, find a bitmap, refuse unreadable ones. */
import { NodeFileDevice } from '../../io/node-file.js'
import { type Bitmap, type Image, openImage } from '../../engine/index.js'
import { readerFor, readable } from '../../engine/describe.js'
import type { BitmapReader } from '../../engine/index.js'

export class CliError extends Error {
  override readonly name = 'CliError'
  constructor(message: string, readonly exitCode = 1) {
    super(message)
  }
}

export async function openPath(path: string, mode: 'r' | 'rw' = 'r'): Promise<{ dev: NodeFileDevice; img: Image }> {
  let dev: NodeFileDevice
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
  return readerFor(img, b)
}
