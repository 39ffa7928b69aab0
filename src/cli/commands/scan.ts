/**
 * `qbm scan PATH... [-r] [--output=human|json|prometheus] [--output-file FILE]
 * [--libvirt-checkpoint-dir DIR] [--no-check]`: the host overview in one process. PATHs are
 * images, block devices and directories (their qcow2 files, by magic; `-r` descends). Exit code:
 * 0, or 2 when an image needs attention (human and json; prometheus output always exits 0, its
 * metrics say it), 1 when the scan could not run.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { humanAndExact, humanBytes } from '../../engine/index.js'
import { buildCatalog, type Catalog } from '../../host/catalog.js'
import { CheckpointIndex, type LibvirtCheckpoints, checkpointDirToUse, readCheckpointDir } from '../../host/libvirt.js'
import { readLockTable } from '../../host/locks.js'
import { type OverviewRow, buildOverview, needsAttention } from '../../host/overview.js'
import { formatPrometheus } from '../../host/prometheus.js'
import { type Parsed, UsageError, has, one } from '../args.js'
import { err, out } from '../io.js'
import { CliError, checkpointHint } from './common.js'
import { COMMANDS } from './registry.js'

type ScanFormat = 'human' | 'json' | 'prometheus'

/** Write `text` to `file` atomically: a temp file in the same directory, fsync, rename. */
export function writeAtomically(file: string, text: string): void {
  // Not ending in .prom: the textfile collector never reads the temp file.
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}`)
  let fd: number | undefined
  try {
    fd = openSync(tmp, 'w', 0o644)
    const buf = Buffer.from(text)
    let done = 0
    while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done)
    fsyncSync(fd)
    closeSync(fd)
    fd = undefined
    renameSync(tmp, file)
  } catch (e) {
    if (fd !== undefined) closeSync(fd)
    try { unlinkSync(tmp) } catch { /* never created */ }
    throw new CliError(`cannot write: ${(e as Error).message}`, 1, file)
  }
}

function statusWords(r: OverviewRow, status: OverviewRow['bitmaps'][number]['status']): string {
  switch (status) {
    case 'ok': return 'ok'
    case 'in-use': return r.holder ? 'in use (live in QEMU; the file has its last saved bits)' : 'in use (stale: its writer never closed it)'
    case 'untrusted': return 'untrusted (autoclear bit 0 clear)'
    case 'invalid': return 'INVALID'
  }
}

const pct = (p: number | null): string => (p === null ? '-' : `${p.toFixed(2)}%`)

function checkWord(r: OverviewRow): string {
  if (!r.check) return '-'
  const c = r.check
  if (c.status === 'errors') return `${c.corruptions + c.checkErrors} error${c.corruptions + c.checkErrors === 1 ? '' : 's'}`
  if (c.status === 'leaks') return `${c.leaks} leak${c.leaks === 1 ? '' : 's'}`
  return c.status
}

function checkpointWord(r: OverviewRow): string {
  if (r.checkpoints.length === 0) return '-'
  const n = r.checkpoints.reduce((a, c) => a + c.checkpoints, 0)
  return r.checkpointMismatches ? `${r.checkpointMismatches} mismatch${r.checkpointMismatches === 1 ? '' : 'es'}` : `ok (${n})`
}

/** The human table: one line per image, its bitmaps indented below, then what was not scanned. */
export function formatHuman(rows: OverviewRow[], catalog: Catalog, libvirt: LibvirtCheckpoints | undefined, seconds: number): string {
  const head = ['', 'PATH', 'KIND', 'VIRTUAL', 'FILE', 'BITMAPS', 'IN USE', 'MAX DIRTY', 'HELD BY', 'CHECK', 'CHECKPOINTS']
  const cells = rows.map((r) => [
    needsAttention(r) ? '!' : ' ', r.path, r.kind,
    r.virtualSize === null ? '-' : humanBytes(r.virtualSize), humanBytes(r.fileSize),
    r.error ? '-' : String(r.bitmapCount), r.error ? '-' : String(r.inUseCount), pct(r.maxDirtyPercent),
    r.holderText ?? '-', checkWord(r), checkpointWord(r),
  ])
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (c: string[]): string => c.map((x, i) => x.padEnd(width[i]!)).join('  ').trimEnd() + '\n'
  let s = line(head)
  rows.forEach((r, i) => {
    s += line(cells[i]!)
    const pad = ' '.repeat(width[0]! + 2)
    if (r.error) s += `${pad}  error: ${r.error}\n`
    for (const w of r.warnings) s += `${pad}  warning: ${w}\n`
    for (const b of r.bitmaps) {
      const dirty = b.dirtyBytes === null ? 'unreadable' : `${humanAndExact(b.dirtyBytes)} dirty, ${pct(b.dirtyPercent)}`
      s += `${pad}  bitmap ${b.name}: granularity ${humanBytes(b.granularity)}, flags ${b.flags.join(', ') || '-'}${b.enabled ? '' : ' (disabled)'}, ${statusWords(r, b.status)}, ${dirty}\n`
    }
    if (r.check?.message) s += `${pad}  check: ${r.check.message}\n`
    for (const c of r.checkpoints) {
      for (const m of c.mismatches) {
        s += `${pad}  checkpoint ${m.checkpoint ?? '(none)'} of ${m.domain}/${m.disk}, bitmap ${m.bitmap}: ${m.state}${m.symptom ? ` ("${m.symptom}")` : ''}: ${m.fix}${checkpointHint(m.state, r.path, m.bitmap)}\n`
      }
    }
  })
  for (const e of catalog.errors) s += `not scanned: ${e.path}: ${e.message}\n`
  if (libvirt) for (const e of libvirt.errors) s += `checkpoint file not read: ${e.path}: ${e.message}\n`
  const attention = rows.filter(needsAttention).length
  s += `${rows.length} image${rows.length === 1 ? '' : 's'}, ${attention} need${attention === 1 ? 's' : ''} attention (!)` +
    `${libvirt ? `, ${libvirt.files.length} libvirt checkpoint${libvirt.files.length === 1 ? '' : 's'} from ${libvirt.dir}` : ''}; ${seconds.toFixed(2)} s\n`
  return s
}

function scanFormat(p: Parsed): ScanFormat {
  const o = one(p, 'output') ?? 'human'
  if (o !== 'human' && o !== 'json' && o !== 'prometheus') throw new UsageError(`--output must be human, json or prometheus (got '${o}')`)
  return o
}

async function cmdScan(p: Parsed, paths: string[]): Promise<number> {
  if (paths.length === 0) throw new UsageError("'scan' expects at least one PATH (see 'qbm --help')")
  const fmt = scanFormat(p)
  const outputFile = one(p, 'output-file')
  const t0 = performance.now()
  const dir = checkpointDirToUse(one(p, 'libvirt-checkpoint-dir'))
  let libvirt: LibvirtCheckpoints | undefined
  if (dir !== undefined) {
    try {
      libvirt = readCheckpointDir(dir)
    } catch (e) {
      throw new CliError(`cannot read the libvirt checkpoint directory: ${(e as Error).message}`, 1, dir)
    }
  }
  const catalog = buildCatalog(paths, { recursive: has(p, 'recursive') })
  const progress = fmt === 'human' && !outputFile && process.stderr.isTTY
  const rows = await buildOverview(catalog.entries, {
    check: !has(p, 'no-check'),
    locks: readLockTable(),
    ...(libvirt ? { checkpoints: new CheckpointIndex(libvirt) } : {}),
    ...(progress ? { onProgress: (done: number, total: number) => err(`\rqbm: scanned ${done}/${total}`) } : {}),
  })
  if (progress && rows.length) err('\r\x1b[K')
  const seconds = (performance.now() - t0) / 1000
  let text: string
  if (fmt === 'prometheus') {
    text = formatPrometheus(rows, {
      endedAtMs: Date.now(), durationSeconds: seconds, catalogErrors: catalog.errors.length,
      ...(libvirt ? { checkpointDir: libvirt.dir, checkpointFiles: libvirt.files.length, checkpointErrors: libvirt.errors.length } : {}),
    })
  } else if (fmt === 'json') {
    text = JSON.stringify({
      images: rows, errors: catalog.errors,
      ...(libvirt ? { libvirt: { dir: libvirt.dir, checkpoints: libvirt.files.length, errors: libvirt.errors } } : {}),
      durationSeconds: seconds,
    }, null, 2) + '\n'
  } else {
    text = formatHuman(rows, catalog, libvirt, seconds)
  }
  if (outputFile !== undefined) writeAtomically(outputFile, text)
  else out(text)
  return fmt !== 'prometheus' && rows.some(needsAttention) ? 2 : 0
}

COMMANDS.push({
  name: 'scan',
  usage: 'scan PATH... [-r] [--output=human|json|prometheus] [--output-file FILE] [--libvirt-checkpoint-dir DIR] [--no-check]   (exit 2 when an image needs attention)',
  spec: {
    recursive: { alias: 'r' }, output: { value: true }, 'output-file': { value: true },
    'libvirt-checkpoint-dir': { value: true }, 'no-check': {},
  },
  positional: [0, Infinity],
  run: (p, a) => cmdScan(p, a),
})
