/**
 * Issue 9: "SIGKILL of `qbm serve` at every write of a commit leaves the old or the new state,
 * judged by `qemu-img check`". A real `qbm serve --write` runs under strace, which kills it
 * with SIGKILL on entry to its k-th pwrite64 (`-e inject=pwrite64:signal=SIGKILL:when=k`), so
 * writes 1..k-1 landed and write k did not; no hook in the product. A page-like client over
 * the socket opens the image, plans the edit and commits it. For every k from 1 to the commit's
 * write count N, on a fresh copy: `qemu-img check` exits 0 or 3 (leaks), never 1 or 2; the
 * bitmaps (qbm's reading of names, flags, granularity and extents; `qemu-img info`'s list) are
 * all old or all new, old exactly until the header write (spec §6.3) landed; the guest data is
 * unchanged (`qemu-img compare` with the original). One untraced-by-inject run counts the
 * server's pwrite64 calls first: they must be exactly the plan's N (nothing else in the server
 * writes with pwrite64, so the k-th one is the commit's k-th write).
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Edit, type Image, type Plan, openImage, planEdits, planWriteCount } from '../engine/index.js'
import { MemoryDevice } from '../io/memory.js'
import type { ErrorInfo } from '../session/api.js'
import { EDGE_EDITS, type EditImageSpec, buildImage, edgeSpec, planAddsRefblock, randomWrites } from '../test-support/edit-images.js'
import { type QbmState, checkImage, qbmState, qemuInfo } from '../test-support/edit-oracle.js'
import { connectClient, startServe } from '../test-support/serve.js'
import { requireTool, run, tempDir } from '../test-support/tools.js'

const KiB = 1024
const MiB = 1024 * KiB

const tmp = tempDir('qbm-serve-crash-')
afterAll(() => tmp.cleanup())
beforeAll(() => { for (const t of ['qemu-img', 'qemu-io', 'strace']) requireTool(t) })

interface ServeCrashCase {
  label: string
  spec: (plan: (img: Image) => Promise<Plan>) => EditImageSpec
  edits: Edit[]
  force?: boolean
  expectPlan?: (plan: Plan) => void
}

const CASES: ServeCrashCase[] = [
  {
    label: 'add + merge that adds a refcount block (512 B clusters, 64-bit refcounts)',
    spec: (plan) => edgeSpec('refblock', 'rb.qcow2', plan), edits: EDGE_EDITS,
    expectPlan: (p) => expect(planAddsRefblock(p.writes)).toBe(true),
  },
  {
    label: 'remove a bitmap with data (4 KiB clusters)',
    spec: () => ({
      name: 'rm.qcow2', size: 64 * MiB, clusterSize: 4 * KiB,
      bitmaps: [{ name: 'keep', granularity: 4096, writes: randomWrites(301, 64 * MiB, 6, 256 * KiB) }, { name: 'gone', granularity: 512, writes: randomWrites(302, 64 * MiB, 8, 64 * KiB) }],
    }),
    edits: [{ op: 'remove', name: 'gone' }],
  },
  {
    label: 'clear-in-use keep + remove on an image a writer left in use (64 KiB clusters)',
    spec: () => ({
      name: 'inuse.qcow2', size: 256 * MiB, clusterSize: 64 * KiB,
      bitmaps: [{ name: 'a', granularity: 4 * KiB, writes: randomWrites(311, 256 * MiB, 5, MiB) }, { name: 'b', granularity: 512, writes: randomWrites(312, 256 * MiB, 5, 64 * KiB) }],
      inUse: {},
    }),
    edits: [{ op: 'clear-in-use', name: 'a', mode: 'keep' }, { op: 'remove', name: 'b' }], force: true,
  },
]

/** The comparable part of what qbm reads back (as src/engine/edits/crash.test.ts compares). */
function comparable(s: QbmState): string {
  return JSON.stringify({
    extension: s.hasExtension, autoclear: s.autoclearBit0, trusted: s.trusted,
    bitmaps: s.bitmaps.map((b) => ({ name: b.name, granularity: b.granularity, flags: b.flags, status: b.status, extents: b.extents })),
  })
}

/** Serve `dir` with --write under `wrap`, and commit `edits` to its one image as the page would. */
async function serveAndCommit(dir: string, wrap: string[], edits: Edit[], force: boolean): Promise<{ writeCount: number; commitError?: ErrorInfo; exit: { code: number | null; signal: NodeJS.Signals | null } }> {
  const s = await startServe(['--write', '--listen', '127.0.0.1:0', dir], { wrap })
  let writeCount = -1
  let commitError: ErrorInfo | undefined
  try {
    const c = await connectClient(s)
    const rows = (await c.api.hostOverview()).rows
    expect(rows).toHaveLength(1)
    const opened = await c.api.open({ kind: 'host', id: rows[0]!.id })
    expect(opened).toMatchObject({ writable: true, writeMode: 'in-place' })
    const review = await c.api.planEdits({ edits, ...(force ? { force } : {}) })
    writeCount = review.writeCount
    try {
      await c.api.commitPlan(review.planId, 1)
    } catch (e) {
      commitError = e as ErrorInfo
    }
    c.close()
  } finally {
    if (s.alive()) await s.stop()
  }
  return { writeCount, ...(commitError ? { commitError } : {}), exit: await s.exited }
}

const tallies: string[] = []
afterAll(() => console.log(`[serve crash] SIGKILL of qbm serve --write at every write of a commit (strace inject):\n${tallies.join('\n')}`))

describe('SIGKILL of qbm serve at every write of a commit', () => {
  for (const c of CASES) {
    it(c.label, async () => {
      const dir = join(tmp.path, c.label.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 40))
      const planOf = (img: Image): Promise<Plan> => planEdits(img, c.edits, { force: c.force ?? false })
      const built = await buildImage(join(dir, 'build'), c.spec(planOf))
      const pristine = built.path
      const orig = new Uint8Array(readFileSync(pristine))
      const plan = await planOf(await openImage(new MemoryDevice(orig)))
      c.expectPlan?.(plan)
      const n = planWriteCount(plan)
      const headerWrite = plan.writes.length + 1 // 1-based number of the cluster-0 write
      const oldState = comparable(await qbmState(pristine))
      const oldInfo = qemuInfo(pristine).bitmaps

      // A whole commit under strace, counting the server's positioned writes.
      const work = join(dir, 'work')
      mkdirSync(work, { recursive: true })
      const target = join(work, 'image.qcow2')
      copyFileSync(pristine, target)
      const log = join(dir, 'writes.trace')
      const full = await serveAndCommit(work, ['strace', '-f', '-qq', '-y', '-e', 'trace=pwrite64,pwritev,pwritev2,write,writev', '-o', log, '--'], c.edits, c.force ?? false)
      expect(full.commitError).toBeUndefined()
      expect(full.writeCount).toBe(n)
      const trace = readFileSync(log, 'utf8').split('\n')
      const positioned = trace.filter((l) => /\bpwrite(64|v|v2)\(/.test(l))
      expect(positioned.length, 'every pwrite of the server is a write of the commit, one each').toBe(n)
      expect(positioned.filter((l) => !l.includes(`<${target}>`)), 'positioned writes go to the image only').toEqual([])
      expect(trace.filter((l) => /\bwritev?\(\d+</.test(l) && l.includes(target)), 'no unpositioned writes to the image').toEqual([])
      const ck = checkImage(target)
      expect(ck.code, ck.output).toBe(0)
      const newState = comparable(await qbmState(target))
      const newInfo = qemuInfo(target).bitmaps
      expect(newState).not.toBe(oldState)

      let old = 0
      let fresh = 0
      const codes: number[] = []
      for (let k = 1; k <= n; k++) {
        copyFileSync(pristine, target)
        const r = await serveAndCommit(work, ['strace', '-f', '-qq', '-o', '/dev/null', '-e', 'trace=pwrite64', '-e', `inject=pwrite64:signal=SIGKILL:when=${k}`, '--'], c.edits, c.force ?? false)
        expect(r.writeCount).toBe(n)
        expect(r.commitError?.code, `k=${k}: the commit must not complete`).toBeDefined()
        expect(r.exit.signal === 'SIGKILL' || r.exit.code === 137, `k=${k}: killed (${JSON.stringify(r.exit)})`).toBe(true)
        const check = checkImage(target)
        expect([0, 3], `k=${k}: qemu-img check exit ${check.code}\n${check.output}`).toContain(check.code)
        codes.push(check.code)
        const st = comparable(await qbmState(target))
        const isNew = st === newState
        expect(isNew || st === oldState, `k=${k}: neither the old nor the new bitmaps`).toBe(true)
        expect(isNew, `k=${k}: new exactly once the header write (${headerWrite}) landed`).toBe(k > headerWrite)
        expect(qemuInfo(target).bitmaps, `k=${k}: qemu-img info`).toEqual(isNew ? newInfo : oldInfo)
        const cmp = run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', pristine, target])
        expect(cmp.code, `k=${k}: guest data: ${cmp.stdout}${cmp.stderr}`).toBe(0)
        if (isNew) fresh++
        else old++
      }
      tallies.push(`  ${c.label}: ${n} writes (header = write ${headerWrite}): k=1..${n}: ${old} old, ${fresh} new; qemu-img check exit 0: ${codes.filter((x) => x === 0).length}, exit 3: ${codes.filter((x) => x === 3).length}`)
      rmSync(dir, { recursive: true, force: true })
    }, 900_000)
  }
})
