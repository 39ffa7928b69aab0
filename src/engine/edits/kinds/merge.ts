/**
 * `qemu-img bitmap --merge SOURCE [-b SOURCE_IMAGE]`: every granule of the target that meets a
 * byte dirty in the source becomes dirty (docs/format.md §8). The source may be in another image
 * of the same size, named by the id the caller's PlanOptions.sources knows it by.
 */
import { ConstraintError } from '../../errors.js'
import { setBitRange } from '../bits.js'
import type { EditKind, ModelBitmap } from './kind.js'

/** Merge bitmap `source` (of this image, or of image `sourceImageId`) into bitmap `name`. */
export interface MergeEdit {
  op: 'merge'
  name: string
  source: string
  /** the image the source bitmap is in, by id (PlanOptions.sources.image); absent: this image */
  sourceImageId?: number
}

/** The merge edit kind. */
export const merge: EditKind<MergeEdit> = {
  op: 'merge',
  describe: (e) => `Merge '${e.source}'${e.sourceImageId !== undefined ? ' (from another open image)' : ''} into '${e.name}': every granule dirty in either becomes dirty in '${e.name}'.`,
  async apply(e, m) {
    const fail = (why: string, code: 'bitmap-not-found' | 'size-mismatch' | 'source-unusable'): never => {
      throw new ConstraintError(`Operation merge on bitmap ${e.name} failed: ${why}`, code)
    }
    const t = m.find(e.name, 'merge')
    m.refuseInUse(t, 'merge')
    const other = e.sourceImageId === undefined ? undefined : m.otherImage(e.sourceImageId, 'merge', e.name)
    let src: ModelBitmap
    if (other) {
      if (other.diskLength !== m.diskLength) fail(`the source image's size (${other.diskLength}) differs from this image's (${m.diskLength})`, 'size-mismatch')
      const sb = other.find(e.source)
      if (!sb) return fail(`Dirty bitmap '${e.source}' not found in the source image`, 'bitmap-not-found')
      if (sb.status !== 'ok') fail(`source bitmap '${e.source}' is ${sb.status}`, 'source-unusable')
      src = sb
    } else {
      src = m.lookup(e.source) ?? fail(`Dirty bitmap '${e.source}' not found`, 'bitmap-not-found')
    }
    m.refuseInUse(src, 'merge')
    const bytes = await m.bits(t)
    const g = 2 ** t.granularityBits
    for await (const [a, b] of m.dirtyRanges(src)) setBitRange(bytes, Math.floor(a / g), Math.ceil(b / g))
    t.data = { kind: 'mem', bytes }
    return undefined
  },
}
