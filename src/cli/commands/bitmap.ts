/**
 * `qbm bitmap (--add | --remove | --clear | --enable | --disable | --merge SOURCE [-b SOURCE_IMAGE]
 * | --rename NEW | --clear-in-use=keep|dirty|empty)... [-g GRANULARITY] [--force] IMAGE BITMAP`
 * and `qbm repair IMAGE --drop-all-bitmaps | --fix-autoclear | --retrust`.
 * Actions apply in order, as with qemu-img bitmap, and are written in one commit.
 */
import {
  type ClearInUseMode, type Edit, type Image, type Repair, parseSize, planEdits, planRepair,
} from '../../engine/index.js'
import { type Parsed, UsageError, has, one } from '../args.js'
import { err } from '../io.js'
import { CliError, editFile, openPath } from './common.js'
import { COMMANDS } from './registry.js'

export async function cmdBitmap(p: Parsed, path: string, name: string): Promise<number> {
  const edits: Edit[] = []
  const g = one(p, 'granularity')
  const sourceImage = one(p, 'source-image')
  let srcImg: Image | undefined
  let srcClose: (() => void) | undefined
  const fmt = one(p, 'format')
  const srcFmt = one(p, 'source-format')
  if (fmt !== undefined && fmt !== 'qcow2') throw new UsageError(`-f ${fmt}: only qcow2 images have persistent bitmaps`)
  if (srcFmt !== undefined && sourceImage === undefined) throw new UsageError('-F only supported with -b')
  if (srcFmt !== undefined && srcFmt !== 'qcow2') throw new UsageError(`-F ${srcFmt}: only qcow2 images have persistent bitmaps`)
  for (const [opt, val] of p.ordered) {
    switch (opt) {
      case 'add': edits.push({ op: 'add', name, ...(g !== undefined ? { granularity: parseSize(g) } : {}) }); break
      case 'remove': edits.push({ op: 'remove', name }); break
      case 'clear': edits.push({ op: 'clear', name }); break
      case 'enable': edits.push({ op: 'enable', name }); break
      case 'disable': edits.push({ op: 'disable', name }); break
      case 'rename':
        edits.push({ op: 'rename', name, newName: val! })
        name = val! // the actions that follow apply to the bitmap under its new name
        break
      case 'clear-in-use': {
        const mode = val as ClearInUseMode
        if (!['keep', 'dirty', 'empty'].includes(mode)) throw new UsageError(`--clear-in-use must be keep, dirty or empty (got '${val}')`)
        edits.push({ op: 'clear-in-use', name, mode })
        break
      }
      case 'merge': {
        if (sourceImage && !srcImg) {
          let o: Awaited<ReturnType<typeof openPath>>
          try {
            o = await openPath(sourceImage)
          } catch (e) {
            // The source image's problem is named after the source image, not IMAGE.
            throw new CliError(e instanceof CliError ? e.message : (e as Error).message, 1, sourceImage)
          }
          srcImg = o.img
          srcClose = () => o.dev.close()
        }
        edits.push({ op: 'merge', name, source: val!, ...(srcImg ? { sourceImage: srcImg } : {}) })
        break
      }
      default: break
    }
  }
  if (edits.length === 0) throw new UsageError('need at least one action (--add, --remove, --clear, --enable, --disable, --merge, --rename, --clear-in-use)')
  if (g !== undefined && !has(p, 'add')) throw new UsageError('-g/--granularity is only valid with --add')
  if (sourceImage !== undefined && !has(p, 'merge')) throw new UsageError('-b/--source-image is only valid with --merge')
  try {
    await editFile(path, (img) => planEdits(img, edits, { force: has(p, 'force') }))
    return 0
  } finally {
    srcClose?.()
  }
}

export async function cmdRepair(p: Parsed, path: string): Promise<number> {
  const modes = (['drop-all-bitmaps', 'fix-autoclear', 'retrust'] as const).filter((m) => has(p, m))
  if (modes.length !== 1) throw new UsageError('repair needs exactly one of --drop-all-bitmaps, --fix-autoclear, --retrust')
  const plan = await editFile(path, (img) => planRepair(img, modes[0] as Repair))
  for (const s of plan.summary) err(`qbm: ${s}\n`)
  return 0
}

COMMANDS.push(
  {
    name: 'bitmap',
    usage: 'bitmap (--add | --remove | --clear | --enable | --disable | --merge SOURCE [-b SOURCE_IMAGE] | --rename NEW | --clear-in-use=keep|dirty|empty)... [-g GRANULARITY] [--force] IMAGE BITMAP',
    spec: {
      add: { repeat: true }, remove: { repeat: true }, clear: { repeat: true }, enable: { repeat: true }, disable: { repeat: true },
      merge: { value: true, repeat: true }, rename: { value: true, repeat: true }, 'clear-in-use': { value: true, repeat: true },
      granularity: { value: true, alias: 'g' }, 'source-image': { value: true, alias: 'b' }, 'source-format': { value: true, alias: 'F' },
      format: { value: true, alias: 'f' }, force: {},
    },
    positional: 2,
    run: (p, a) => cmdBitmap(p, a[0]!, a[1]!),
  },
  {
    name: 'repair',
    usage: 'repair IMAGE --drop-all-bitmaps | --fix-autoclear | --retrust',
    spec: { 'drop-all-bitmaps': {}, 'fix-autoclear': {}, retrust: {} },
    positional: 1,
    run: (p, a) => cmdRepair(p, a[0]!),
  },
)

