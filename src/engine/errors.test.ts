/**
 * Error codes (issue 10 "Errors carry codes"): every refused edit carries the code a caller keys
 * its way out on, the plain-data form keeps code, field and offset, and no engine message names
 * a CLI flag (the CLI adds its own, src/cli/commands/common.ts flagHint).
 */
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { MemoryDevice } from '../io/memory.js'
import {
  ConstraintError, type Edit, type ErrorCode, type Image, openImage, planEdits, planRepair, type Repair, toErrorInfo,
} from './index.js'
import { fixturePath, smallFixtures } from '../test-support/fixtures.js'

async function open(name: string): Promise<Image> {
  const f = smallFixtures().find((x) => x.name === name)
  if (!f) throw new Error(`no fixture ${name}`)
  return openImage(new MemoryDevice(new Uint8Array(readFileSync(fixturePath(f)))))
}

/** The error planning throws, or a failure when planning succeeds. */
async function refusal(p: Promise<unknown>): Promise<ConstraintError> {
  try {
    await p
  } catch (e) {
    if (e instanceof ConstraintError) return e
    throw e
  }
  throw new Error('the edit was not refused')
}

const cases: Array<{ fixture: string; edits?: Edit[]; repair?: Repair; force?: boolean; code: ErrorCode }> = [
  { fixture: 'in-use-killed', edits: [{ op: 'add', name: 'x' }], code: 'bitmaps-in-use' },
  { fixture: 'in-use-killed', edits: [{ op: 'clear', name: 'running' }], force: true, code: 'bitmap-inconsistent' },
  { fixture: 'cs4k-basic', edits: [{ op: 'remove', name: 'nope' }], code: 'bitmap-not-found' },
  { fixture: 'cs4k-basic', edits: [{ op: 'add', name: 'b0' }], code: 'name-taken' },
  { fixture: 'cs4k-basic', edits: [{ op: 'add', name: '' }], code: 'name-invalid' },
  { fixture: 'cs4k-basic', edits: [{ op: 'add', name: 'g', granularity: 100 }], code: 'granularity-invalid' },
  { fixture: 'cs4k-basic', edits: [{ op: 'clear-in-use', name: 'b0', mode: 'dirty' }], code: 'bitmap-not-in-use' },
  { fixture: 'corrupt-refcount-zeroed', edits: [{ op: 'add', name: 'x' }], code: 'bitmap-metadata-broken' },
  { fixture: 'corrupt-table-entry-past-eof', edits: [{ op: 'add', name: 'x' }], code: 'bitmap-metadata-broken' },
  { fixture: 'corrupt-flags-bit2', edits: [{ op: 'add', name: 'x' }], code: 'bitmap-metadata-invalid' },
  { fixture: 'autoclear-cleared', edits: [{ op: 'add', name: 'x' }], code: 'bitmaps-untrusted' },
  { fixture: 'v2-plain', edits: [{ op: 'add', name: 'x' }], code: 'image-not-editable' },
  { fixture: 'lazy-refcounts-killed', edits: [{ op: 'add', name: 'x' }], force: true, code: 'image-not-editable' },
  { fixture: 'cs4k-basic', repair: 'retrust', code: 'nothing-to-repair' },
  { fixture: 'no-bitmaps', repair: 'drop-all-bitmaps', code: 'nothing-to-repair' },
]

describe('refused edits carry their code', () => {
  it.each(cases.map((c) => [`${c.fixture}: ${c.repair ?? JSON.stringify(c.edits)}`, c] as const))('%s', async (_label, c) => {
    const img = await open(c.fixture)
    const opts = c.force ? { force: true } : {}
    const e = await refusal(c.repair ? planRepair(img, c.repair, opts) : planEdits(img, c.edits!, opts))
    expect(e.code, e.message).toBe(c.code)
    // the engine's words name no CLI flag; the CLI and the UI add their own
    expect(e.message).not.toMatch(/--[a-z]|\bqbm (repair|check|bitmap)\b/)
    expect(toErrorInfo(e)).toMatchObject({ code: c.code, message: e.message })
  })

  it('the in-use refusal is what a caller keys "confirm no VM has the image open" on, and force lifts it', async () => {
    const img = await open('in-use-killed')
    const e = await refusal(planEdits(img, [{ op: 'remove', name: 'running' }]))
    expect(e.code).toBe('bitmaps-in-use')
    await expect(planEdits(img, [{ op: 'remove', name: 'running' }], { force: true })).resolves.toBeDefined()
  })

  it('an image whose check fails outside its bitmaps: image-check-failed', async () => {
    const bytes = new Uint8Array(readFileSync(fixturePath(smallFixtures().find((f) => f.name === 'cs4k-basic')!)))
    const v = new DataView(bytes.buffer)
    // clear the COPIED flag of the first data cluster of the first L2 table: a guest-data corruption
    const img0 = await openImage(new MemoryDevice(bytes))
    const l1 = img0.header.l1TableOffset
    const l2 = Number(v.getBigUint64(l1) & 0x00fffffffffffe00n)
    let at = l2
    while (v.getUint32(at) === 0 && v.getUint32(at + 4) === 0) at += 8
    bytes[at] = bytes[at]! & 0x7f
    const e = await refusal(planEdits(await openImage(new MemoryDevice(bytes)), [{ op: 'add', name: 'x' }]))
    expect(e.code, e.message).toBe('image-check-failed')
    expect(e.message).not.toMatch(/--[a-z]|\bqbm (repair|check|bitmap)\b/)
  })
})

describe('the plain-data form of errors', () => {
  it('a FormatError keeps its code, structure, field, offset and value', async () => {
    const bytes = new Uint8Array(readFileSync(fixturePath(smallFixtures().find((f) => f.name === 'cs4k-basic')!)))
    new DataView(bytes.buffer).setUint32(4, 9) // version
    const e = await openImage(new MemoryDevice(bytes)).then(() => undefined, (x: unknown) => x)
    expect(toErrorInfo(e)).toEqual(expect.objectContaining({ code: 'FormatError', structure: 'qcow2 header', field: 'version', offset: 4, value: '9' }))
  })

  it('a refused edit keeps its field', async () => {
    const img = await open('cs4k-basic')
    const e = await refusal(planEdits(img, [{ op: 'add', name: 'b0' }]))
    expect(toErrorInfo(e)).toEqual({ code: 'name-taken', message: e.message, field: 'name' })
  })
})
