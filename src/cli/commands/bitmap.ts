/**
 * `qbm bitmap (--add | --remove | --clear | --enable | --disable | --merge SOURCE [-b SOURCE_IMAGE]
 * | --rename NEW | --copy NEW | --clear-in-use=keep|dirty|empty)... [-g GRANULARITY] [--force] IMAGE BITMAP`
 * and `qbm repair IMAGE --drop-all-bitmaps | --fix-autoclear | --retrust`.
 * Actions apply in order, as with qemu-img bitmap, and are written in one commit.
 */
import { type ClearInUseMode, type Edit, type Image, type Repair, parseSize, planEdits, planRepair } from '../../engine/index.js'
import { type OptionSpec, type Parsed, UsageError, has, one } from '../args.js'
import { err } from '../io.js'
import { CliError, editFile, openPath } from './common.js'
import { COMMANDS } from './registry.js'

/** The image `-b SOURCE_IMAGE` names in a merge edit (EditSources.image). */
const SOURCE_IMAGE_ID = 1

/** What an action flag needs besides BITMAP and its value: `-g`, and whether `-b` was given. */
interface ActionContext {
  granularity?: number
  sourceImage: boolean
}

interface Action {
  /** takes a value (--merge SOURCE, --rename NEW, --clear-in-use=MODE, --copy NEW) */
  value?: true
  /** the edit this flag stages on bitmap `name` */
  edit(name: string, value: string, c: ActionContext): Edit
}

const CLEAR_IN_USE_MODES: readonly ClearInUseMode[] = ['keep', 'dirty', 'empty']

/** The action flags, each to its edit (src/engine/edits/kinds/), in qemu-img bitmap's order of mention. */
const ACTIONS: Record<string, Action> = {
  add: { edit: (name, _v, c) => ({ op: 'add', name, ...(c.granularity !== undefined ? { granularity: c.granularity } : {}) }) },
  remove: { edit: (name) => ({ op: 'remove', name }) },
  clear: { edit: (name) => ({ op: 'clear', name }) },
  enable: { edit: (name) => ({ op: 'enable', name }) },
  disable: { edit: (name) => ({ op: 'disable', name }) },
  merge: { value: true, edit: (name, source, c) => ({ op: 'merge', name, source, ...(c.sourceImage ? { sourceImageId: SOURCE_IMAGE_ID } : {}) }) },
  rename: { value: true, edit: (name, newName) => ({ op: 'rename', name, newName }) },
  'clear-in-use': {
    value: true,
    edit: (name, mode) => {
      if (!CLEAR_IN_USE_MODES.includes(mode as ClearInUseMode)) throw new UsageError(`--clear-in-use must be keep, dirty or empty (got '${mode}')`)
      return { op: 'clear-in-use', name, mode: mode as ClearInUseMode }
    },
  },
  copy: { value: true, edit: (name, newName) => ({ op: 'copy', name, newName }) },
}

/** Open `-b SOURCE_IMAGE`; its problems are named after it, not after IMAGE. */
async function openSource(path: string): Promise<{ img: Image; close: () => void }> {
  try {
    const o = await openPath(path)
    return { img: o.img, close: () => o.dev.close() }
  } catch (e) {
    throw new CliError(e instanceof CliError ? e.message : (e as Error).message, 1, path)
  }
}

/** `qbm bitmap`: the actions' edits, in order, planned and written in one commit. */
export async function cmdBitmap(p: Parsed, path: string, name: string): Promise<number> {
  const g = one(p, 'granularity')
  const sourceImage = one(p, 'source-image')
  const fmt = one(p, 'format')
  const srcFmt = one(p, 'source-format')
  if (fmt !== undefined && fmt !== 'qcow2') throw new UsageError(`-f ${fmt}: only qcow2 images have persistent bitmaps`)
  if (srcFmt !== undefined && sourceImage === undefined) throw new UsageError('-F only supported with -b')
  if (srcFmt !== undefined && srcFmt !== 'qcow2') throw new UsageError(`-F ${srcFmt}: only qcow2 images have persistent bitmaps`)
  const c: ActionContext = { ...(g !== undefined ? { granularity: parseSize(g) } : {}), sourceImage: sourceImage !== undefined }
  const edits: Edit[] = []
  for (const [opt, val] of p.ordered) {
    const action = ACTIONS[opt]
    if (!action) continue
    const e = action.edit(name, val ?? '', c)
    edits.push(e)
    if (e.op === 'rename') name = e.newName // the actions that follow apply to the bitmap under its new name
  }
  if (edits.length === 0) throw new UsageError(`need at least one action (${Object.keys(ACTIONS).map((a) => `--${a}`).join(', ')})`)
  if (g !== undefined && !has(p, 'add')) throw new UsageError('-g/--granularity is only valid with --add')
  if (sourceImage !== undefined && !has(p, 'merge')) throw new UsageError('-b/--source-image is only valid with --merge')
  const src = sourceImage !== undefined ? await openSource(sourceImage) : undefined
  try {
    const sources = { image: (id: number) => (id === SOURCE_IMAGE_ID ? src?.img : undefined) }
    await editFile(path, (img) => planEdits(img, edits, { force: has(p, 'force'), sources }))
    return 0
  } finally {
    src?.close()
  }
}

/** `qbm repair`: one repair, planned and written. */
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
    usage: 'bitmap (--add | --remove | --clear | --enable | --disable | --merge SOURCE [-b SOURCE_IMAGE] | --rename NEW | --copy NEW | --clear-in-use=keep|dirty|empty)... [-g GRANULARITY] [--force] IMAGE BITMAP',
    spec: {
      ...Object.fromEntries(Object.entries(ACTIONS).map(([flag, a]): [string, OptionSpec] => [flag, { repeat: true, ...(a.value ? { value: true } : {}) }])),
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

