/**
 * Issue 9's in-place edit figure: add, remove and clear-in-use on images of 1 GiB, 10 GiB and
 * 100 GiB virtual size, three ways: through `qbm serve --write` (a page-like client over the
 * socket: planEdits, which runs the image check, then commitPlan, which writes in place and
 * reopens; timed from the plan request to the commit's answer), through `qbm bitmap` (whole
 * process), and `qemu-img bitmap` for the same edit (whole process). For clear-in-use QEMU has
 * no edit that keeps the bitmap: its only fix is `qemu-img bitmap --remove` of the in-use
 * bitmap, the baseline bench/main.ts uses too. Target: qbm ≤ 1/2 of qemu-img's time, and no
 * growth with the file size.
 *
 * The files are as big as their virtual size: `qemu-img create -o preallocation=metadata`
 * allocates every L2 table and refcount block, so a 100 GiB image is a 100 GiB file (sparse on
 * disk: ~13 MiB of metadata) whose metadata really scales with it. Each image carries a 64 KiB
 * bitmap with scattered writes; clear-in-use runs on a fresh sparse copy after a qemu-io writer
 * was killed (bitmaps left in use), for every tool.
 *
 * Called as `rows.push(...await benchServeEdit({ dir, qbmBin }))`; bench/serve-run.mjs runs it alone.
 */
import type { Row } from './rows.js'
import { mkdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Edit } from '../src/session/api.js'
import { type ServeProcess, type SocketClient, connectClient, startServe } from '../src/test-support/serve.js'
import { GiB, Prng, log, median, run, timed } from './util.js'

/** A row of the bench table. */
export type EditBenchRow = Row

export interface EditBenchOptions {
  /** a temp dir the bench owns (needs a few hundred MiB on disk; the files are sparse) */
  dir: string
  /** bin/qbm.cjs of the checkout */
  qbmBin: string
  /** timed runs per figure (default 5, after one warm-up) */
  runs?: number
  /** virtual sizes in GiB (default 1, 10, 100) */
  sizesGiB?: number[]
  /** qemu-img create's preallocation (default 'metadata': the file is as big as the disk) */
  preallocation?: 'metadata' | 'off'
}

const ms = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`)
const r2 = (x: number): string => x.toFixed(2)
const BITMAP = 'daily'

function makeImage(path: string, sizeGiB: number, preallocation: string): void {
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `preallocation=${preallocation}`, path, `${sizeGiB}G`])
  run('qemu-img', ['bitmap', '--add', path, BITMAP])
  const rng = new Prng(sizeGiB)
  const L = sizeGiB * GiB
  run('qemu-io', ['-f', 'qcow2', ...Array.from({ length: 64 }, () => ['-c', `write -q -z ${rng.int(L / 65536 - 1) * 65536} 65536`]).flat(), path])
}

function sparseCopy(from: string, to: string): void {
  rmSync(to, { force: true })
  run('cp', ['--sparse=always', from, to])
}

/** A writer killed without closing: every bitmap left in use. */
function killWriter(path: string): void {
  run('qemu-io', ['-f', 'qcow2', '-c', 'write -q 0 64k', '-c', 'sigraise 9', path], { okCodes: [137, -1, 1, 0] })
  const info = JSON.parse(run('qemu-img', ['info', '--output=json', path]).stdout) as { 'format-specific': { data: { bitmaps: Array<{ name: string; flags: string[] }> } } }
  if (!info['format-specific'].data.bitmaps.find((b) => b.name === BITMAP)?.flags.includes('in-use')) throw new Error(`killing the writer left '${BITMAP}' not in use in ${path}`)
}

/** Plan and commit through the server, timed from the plan request to the commit's answer. */
async function serverEdit(c: SocketClient, edits: Edit[], force = false): Promise<number> {
  const t = performance.now()
  const review = await c.api.planEdits({ edits, ...(force ? { force } : {}) })
  await c.api.commitPlan(review.planId)
  return performance.now() - t
}

/** Open the served image (rescanning the catalog: a fresh copy is a new inode). */
async function openServed(c: SocketClient): Promise<void> {
  const rows = (await c.api.hostOverview()).rows
  if (rows.length !== 1) throw new Error(`the served directory should hold one image, not ${rows.length}`)
  await c.api.open({ kind: 'host', id: rows[0]!.id })
}

interface Times { server: number[]; cli: number[]; qemu: number[] }
const empty = (): Times => ({ server: [], cli: [], qemu: [] })

/** Build the images, time the edits, prove the results clean, return the rows. */
export async function benchServeEdit(opts: EditBenchOptions): Promise<EditBenchRow[]> {
  const runs = opts.runs ?? 5
  const sizes = opts.sizesGiB ?? [1, 10, 100]
  const qbm = (args: string[]): number => timed(process.execPath, [opts.qbmBin, ...args]).ms
  const rows: EditBenchRow[] = []
  const all: Record<string, Record<'add' | 'remove' | 'clear-in-use', Times>> = {}
  for (const g of sizes) {
    const dir = join(opts.dir, `edit-${g}G`)
    const served = join(dir, 'served')
    mkdirSync(served, { recursive: true })
    const base = join(dir, 'base.qcow2')
    const W = join(served, 'image.qcow2')
    makeImage(base, g, opts.preallocation ?? 'metadata')
    sparseCopy(base, W)
    const fileSize = statSync(W).size
    log(`edit: ${g} GiB image, file ${fileSize} bytes (${(statSync(W).blocks * 512 / 2 ** 20).toFixed(1)} MiB on disk)`)
    const t: Record<'add' | 'remove' | 'clear-in-use', Times> = { add: empty(), remove: empty(), 'clear-in-use': empty() }
    let server: ServeProcess | undefined
    try {
      server = await startServe(['--write', '--listen', '127.0.0.1:0', served], { qbmBin: opts.qbmBin })
      const c = await connectClient(server)
      try {
        for (let i = 0; i < runs + 1; i++) {
          const keep = i > 0
          // add then remove, each way, on the same file
          await openServed(c)
          const sa = await serverEdit(c, [{ op: 'add', name: 'x' }])
          const sr = await serverEdit(c, [{ op: 'remove', name: 'x' }])
          const ca = qbm(['bitmap', '--add', W, 'x'])
          const cr = qbm(['bitmap', '--remove', W, 'x'])
          const qa = timed('qemu-img', ['bitmap', '--add', W, 'x']).ms
          const qr = timed('qemu-img', ['bitmap', '--remove', W, 'x']).ms
          // clear-in-use on a fresh copy with a killed writer, for each tool
          sparseCopy(base, W); killWriter(W)
          await openServed(c)
          const sc = await serverEdit(c, [{ op: 'clear-in-use', name: BITMAP, mode: 'keep' }], true)
          sparseCopy(base, W); killWriter(W)
          const cc = qbm(['bitmap', '--clear-in-use=keep', '--force', W, BITMAP])
          sparseCopy(base, W); killWriter(W)
          const qc = timed('qemu-img', ['bitmap', '--remove', W, BITMAP]).ms
          sparseCopy(base, W)
          if (!keep) continue
          t.add.server.push(sa); t.add.cli.push(ca); t.add.qemu.push(qa)
          t.remove.server.push(sr); t.remove.cli.push(cr); t.remove.qemu.push(qr)
          t['clear-in-use'].server.push(sc); t['clear-in-use'].cli.push(cc); t['clear-in-use'].qemu.push(qc)
        }
        // The server's last clear-in-use result, judged: write it again and check it.
        sparseCopy(base, W); killWriter(W)
        await openServed(c)
        await serverEdit(c, [{ op: 'clear-in-use', name: BITMAP, mode: 'keep' }], true)
        const chk = run('qemu-img', ['check', W], { okCodes: [0, 1, 2, 3] })
        if (chk.code !== 0) throw new Error(`qemu-img check after the server's clear-in-use on ${g} GiB exited ${chk.code}: ${chk.stdout}`)
        const info = JSON.parse(run('qemu-img', ['info', '--output=json', W]).stdout) as { 'format-specific': { data: { bitmaps: Array<{ name: string; flags: string[] }> } } }
        if (info['format-specific'].data.bitmaps.find((b) => b.name === BITMAP)?.flags.includes('in-use')) throw new Error('the server left the bitmap in use')
      } finally {
        c.close()
      }
    } finally {
      await server?.stop()
      rmSync(dir, { recursive: true, force: true })
    }
    all[`${g}G`] = t
    for (const op of ['add', 'remove', 'clear-in-use'] as const) {
      const x = t[op]
      const s = median(x.server)
      const cl = median(x.cli)
      const q = median(x.qemu)
      log(`edit ${op} on ${g} GiB: server ${ms(s)}, qbm bitmap ${ms(cl)}, qemu-img ${ms(q)}`)
      rows.push({
        figure: `in-place ${op} on a ${g} GiB image (preallocation=${opts.preallocation ?? 'metadata'}, file ${fileSize} bytes): through qbm serve (plan + commit) / qbm bitmap`,
        qbm: `${ms(s)} / ${ms(cl)}`, baseline: `${ms(q)} (qemu-img bitmap ${op === 'clear-in-use' ? '--remove of the in-use bitmap' : `--${op}`})`,
        ratio: `${r2(s / q)} / ${r2(cl / q)}`, target: '≤ 1/2 (0.5)', met: s <= q / 2 && cl <= q / 2, data: { ...x },
      })
    }
  }
  // Growth with the file size: the largest image against the smallest, per tool.
  const first = all[`${sizes[0]}G`]!
  const last = all[`${sizes.at(-1)}G`]!
  for (const op of ['add', 'remove', 'clear-in-use'] as const) {
    const g = (k: keyof Times): number => median(last[op][k]) / median(first[op][k])
    rows.push({
      figure: `  (${op}: ${sizes.at(-1)} GiB time / ${sizes[0]} GiB time; server, qbm bitmap, qemu-img)`,
      qbm: `${r2(g('server'))}, ${r2(g('cli'))}`, baseline: r2(g('qemu')), ratio: '', target: 'no growth (~1)', met: null,
    })
  }
  return rows
}
