/**
 * `qbm diff IMAGE A B --op union|intersect|minus|xor [-b IMAGE_B] [--save NAME] [--output=human|json]`:
 * bitmap algebra at byte resolution, printed as merged extents like `qbm map`; with --save, the
 * result also becomes a new (disabled) bitmap NAME in IMAGE, at the finer of A's and B's
 * granularities, so it is exact (add + qbm's own set-ranges edit, one commit, after the check).
 * `qbm checkpoints IMAGE --libvirt-xml FILE... [--disk NAME] [--output=human|json]`.
 */
import { readFileSync } from 'node:fs'
import {
  type SetOp, ConstraintError, SET_OPS, allExtents, combineExtents, crossCheck, humanAndExact, parseCheckpointXml, pickDisk, planEdits,
} from '../../engine/index.js'
import { type Parsed, UsageError, one, outputFormat } from '../args.js'
import { out } from '../io.js'
import { CliError, checkpointHint, editFile, openPath, requireBitmap, requireReader } from './common.js'
import { COMMANDS } from './registry.js'

async function cmdDiff(p: Parsed, path: string, nameA: string, nameB: string): Promise<number> {
  const fmt = outputFormat(p)
  const op = one(p, 'op') as SetOp | undefined
  if (!op || !SET_OPS.includes(op)) throw new UsageError(`--op must be one of ${SET_OPS.join(', ')}`)
  const a = await openPath(path)
  const pathB = one(p, 'image-b')
  const b = pathB ? await openPath(pathB) : a
  try {
    if (b.img.header.diskLength !== a.img.header.diskLength) {
      throw new CliError(`the images differ in size (${a.img.header.diskLength} vs ${b.img.header.diskLength} bytes)`)
    }
    const ra = requireReader(a.img, requireBitmap(a.img, nameA))
    const rb = requireReader(b.img, requireBitmap(b.img, nameB))
    const save = one(p, 'save')
    if (save !== undefined) {
      for (const r of [ra, rb]) {
        if (r.bitmap.status !== 'ok') throw new CliError(`cannot save a result computed from bitmap '${r.bitmap.name}', which is ${r.bitmap.status}: backups would trust bits QEMU does not`)
      }
      if (b !== a) throw new UsageError('--save writes into IMAGE: both bitmaps must be in it (no -b)')
    }
    let ranges = save !== undefined ? new Float64Array(1024) : undefined
    let total = 0
    let count = 0
    if (fmt === 'json') out('[')
    for await (const e of combineExtents(allExtents(ra), allExtents(rb), op)) {
      if (fmt === 'json') out(`${count ? ',' : ''}\n{"offset":${e.offset},"length":${e.length}}`)
      else out(`${String(e.offset).padStart(16)}  ${String(e.length).padStart(16)}    1  dirty\n`)
      if (ranges) {
        if (2 * count + 2 > ranges.length) { const g = new Float64Array(ranges.length * 2); g.set(ranges); ranges = g }
        ranges[2 * count] = e.offset
        ranges[2 * count + 1] = e.offset + e.length
      }
      total += e.length
      count++
    }
    if (fmt === 'json') out(count ? '\n]\n' : ']\n')
    else out(`# ${nameA} ${op} ${nameB}: ${count} extent${count === 1 ? '' : 's'}, ${humanAndExact(total)}\n`)
    if (save !== undefined && ranges) {
      // The result is exact at the finer granularity: a new bitmap there, its granules set.
      const g = Math.min(ra.granularity, rb.granularity)
      const result = ranges.subarray(0, 2 * count)
      await editFile(path, (img) => planEdits(img, [
        { op: 'add', name: save, granularity: g, disabled: true },
        { op: 'set-ranges', name: save, resultId: 1, what: `${nameA} ${op} ${nameB}` },
      ], { sources: { ranges: (id) => (id === 1 ? result : undefined) } }))
    }
    return 0
  } finally {
    a.dev.close()
    if (b !== a) b.dev.close()
  }
}

async function cmdCheckpoints(p: Parsed, path: string): Promise<number> {
  const fmt = outputFormat(p)
  const files = p.opts.get('libvirt-xml') ?? []
  if (files.length === 0) throw new UsageError('give at least one --libvirt-xml FILE (virsh checkpoint-dumpxml output)')
  const cps = files.map((f) => {
    try {
      return parseCheckpointXml(readFileSync(f, 'utf8'))
    } catch (e) {
      throw new CliError(`${f}: ${(e as Error).message}`)
    }
  })
  const { dev, img } = await openPath(path)
  try {
    let disk: string
    try {
      disk = pickDisk(cps, path, one(p, 'disk'))
    } catch (e) {
      if (e instanceof ConstraintError && e.code === 'disk-ambiguous') throw new CliError(`${e.message}: name it with --disk`)
      throw new CliError((e as Error).message)
    }
    const r = crossCheck(img, cps, disk)
    if (fmt === 'json') out(JSON.stringify(r, null, 2) + '\n')
    else {
      out(`disk ${disk}: ${r.findings.length} checkpoint${r.findings.length === 1 ? '' : 's'}\n`)
      for (const f of r.findings) out(`  ${f.checkpoint.padEnd(24)} bitmap ${f.bitmap.padEnd(24)} ${f.state.toUpperCase().padEnd(9)} ${f.fix}${checkpointHint(f.state, path, f.bitmap)}\n`)
      for (const o of r.orphans) out(`  ${'(none)'.padEnd(24)} bitmap ${o.bitmap.padEnd(24)} ${'ORPHAN'.padEnd(9)} ${o.fix}\n`)
    }
    const bad = r.findings.some((f) => f.state !== 'healthy')
    return bad ? 2 : 0
  } finally {
    dev.close()
  }
}

COMMANDS.push(
  {
    name: 'diff',
    usage: 'diff IMAGE A B --op union|intersect|minus|xor [-b IMAGE_B] [--save NAME] [--output=human|json]',
    spec: { op: { value: true }, 'image-b': { value: true, alias: 'b' }, output: { value: true }, save: { value: true } },
    positional: 3,
    run: (p, a) => cmdDiff(p, a[0]!, a[1]!, a[2]!),
  },
  {
    name: 'checkpoints',
    usage: 'checkpoints IMAGE --libvirt-xml FILE... [--disk NAME] [--output=human|json]   (exit 2 when a checkpoint needs attention)',
    spec: { 'libvirt-xml': { value: true, repeat: true }, disk: { value: true }, output: { value: true } },
    positional: 1,
    run: (p, a) => cmdCheckpoints(p, a[0]!),
  },
)
