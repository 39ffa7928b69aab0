/**
 * What a socket message may be, checked before anything runs (zod): a birpc request naming one
 * EngineApi method, with arguments of the method's shapes and sizes. A browser tab is trusted
 * less than the worker is: the server only opens images by catalog id and refuses everything
 * else with an error naming the argument.
 */
import { z } from 'zod'
import type { Edit, EngineApi } from '../session/api.js'

const index = z.number().int().min(0).max(1 << 20)
const offset = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const count = z.number().int().min(0).max(1 << 24)
/** at most 2^20 cells (8 MiB of answer): the 2-D map asks for ~300,000 */
const cells = z.number().int().min(1).max(1 << 20)
const jobId = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional()
const id = z.number().int().min(-(1 << 20)).max(1 << 20)
/** a bitmap name: at most 1023 bytes of UTF-8 (QEMU's limit), so 1023 UTF-16 units is a safe bound for the check */
const name = z.string().min(1).max(4096)
const source = z.strictObject({ kind: z.literal('host'), id: z.string().min(1).max(128), name: z.string().max(4096).optional() })
const bitmapRef = z.strictObject({ image: id, bitmap: index })
const setOp = z.enum(['union', 'intersect', 'minus', 'xor'])
const repair = z.enum(['drop-all-bitmaps', 'fix-autoclear', 'retrust'])
const granularity = z.number().int().min(512).max(2 ** 31)
const edit = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('add'), name, granularity: granularity.optional(), disabled: z.boolean().optional() }),
  z.strictObject({ op: z.literal('remove'), name }),
  z.strictObject({ op: z.literal('enable'), name }),
  z.strictObject({ op: z.literal('disable'), name }),
  z.strictObject({ op: z.literal('clear'), name }),
  z.strictObject({ op: z.literal('merge'), name, source: name, sourceImageId: id.optional() }),
  z.strictObject({ op: z.literal('rename'), name, newName: name }),
  z.strictObject({ op: z.literal('clear-in-use'), name, mode: z.enum(['keep', 'dirty', 'empty']) }),
  z.strictObject({ op: z.literal('set-ranges'), name, resultId: id, what: z.string().max(4096) }),
  z.strictObject({ op: z.literal('copy'), name, newName: name }),
])
/** The schema is the API's Edit, neither more nor less: a new edit kind fails the type check until it has a row above. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const EDIT_SCHEMA_IN_STEP: Same<z.infer<typeof edit>, Edit> = true
void EDIT_SCHEMA_IN_STEP
const planRequest = z.strictObject({ edits: z.array(edit).max(256), repair: repair.optional(), force: z.boolean().optional() })
const checkpointFile = z.strictObject({ name: z.string().max(4096), text: z.string().max(4 << 20) })

/** Each method's arguments, in order (optional trailing ones may be absent or undefined). */
const ARGS: { [K in keyof EngineApi]: z.ZodTuple } = {
  open: z.tuple([source, jobId]),
  openSet: z.tuple([z.array(source).min(1).max(64), jobId]),
  activate: z.tuple([id]),
  scan: z.tuple([index, jobId]),
  heatmap: z.tuple([index, offset, offset, cells, jobId]),
  heatmapPreview: z.tuple([index, offset, offset, cells]),
  extentPage: z.tuple([index, count, count]),
  extentIndex: z.tuple([index, offset]),
  extentWindow: z.tuple([index, offset, offset]),
  extentsInRange: z.tuple([index, offset, offset, count]),
  exportExtents: z.tuple([index, z.enum(['csv', 'json']), offset.optional(), offset.optional(), jobId]),
  sha256: z.tuple([index, jobId]),
  overlay: z.tuple([index, offset, offset, cells, jobId]),
  extentSplits: z.tuple([index, count, z.number().int().min(0).max(4096), jobId]),
  estimate: z.tuple([index, jobId]),
  algebra: z.tuple([bitmapRef, bitmapRef, setOp, jobId]),
  algebraHeat: z.tuple([id, offset, offset, cells]),
  algebraPage: z.tuple([id, count, count]),
  algebraWindow: z.tuple([id, offset, offset]),
  dropAlgebra: z.tuple([id]),
  checkpoints: z.tuple([z.array(checkpointFile).max(256)]),
  planEdits: z.tuple([planRequest, jobId]),
  commitPlan: z.tuple([id, jobId]),
  editedCopy: z.tuple([id]),
  dropPlan: z.tuple([id]),
  cancel: z.tuple([z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)]),
  close: z.tuple([]),
  hostInfo: z.tuple([]),
  hostOverview: z.tuple([jobId, z.array(z.string().min(1).max(128)).max(100_000).optional()]),
  hostCheck: z.tuple([z.string().min(1).max(128), jobId]),
}

/**
 * A request as birpc sends it. The id is required: the page awaits every call (its only
 * events are the server's progress), and a call without an id would escape the in-flight limit.
 */
const request = z.strictObject({ t: z.literal('q'), i: z.string().min(1).max(64), m: z.string().max(64), a: z.array(z.unknown()).max(8), o: z.boolean().optional() })

export type Checked =
  | { ok: true; msg: { t: 'q'; i: string; m: keyof EngineApi; a: unknown[] } }
  | { ok: false; id?: string; message: string }

/** Check one decoded message; a refusal says which method and argument is wrong. */
export function checkRequest(msg: unknown): Checked {
  const r = request.safeParse(msg)
  if (!r.success) {
    const i = msg && typeof msg === 'object' && typeof (msg as { i?: unknown }).i === 'string' ? (msg as { i: string }).i : undefined
    return { ok: false, ...(i && i.length <= 64 ? { id: i } : {}), message: `malformed request: ${z.prettifyError(r.error).replace(/\n/g, '; ')}` }
  }
  const m = r.data.m
  const id = r.data.i
  if (!Object.hasOwn(ARGS, m)) return { ok: false, id, message: `unknown method '${m}'` }
  const spec = ARGS[m as keyof EngineApi]
  // Trailing optional arguments may be left out.
  const args = [...r.data.a]
  const want = spec.def.items.length
  if (args.length > want) return { ok: false, id, message: `${m}: expected at most ${want} arguments, got ${args.length}` }
  while (args.length < want) args.push(undefined)
  const a = spec.safeParse(args)
  if (!a.success) return { ok: false, id, message: `${m}: ${z.prettifyError(a.error).replace(/\n/g, '; ')}` }
  return { ok: true, msg: { t: 'q', i: id, m: m as keyof EngineApi, a: a.data as unknown[] } }
}
