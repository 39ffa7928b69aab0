/**
 * Crash injection (issue 3, "Proof: crash injection"). For a representative set of edits ×
 * images, the plan is computed once; then for EVERY k from 0 to the plan's number of writes the
 * original bytes are committed through a FaultyDevice that loses power after k writes (writes
 * 0..k-1 land, later writes and flushes vanish while reporting success). Each result must:
 * open in qbm (no bitmaps error, no invalid bitmap), pass `qemu-img check` with exit 0 or 3
 * (leaks allowed, never 1 or 2), and show the bitmaps (names, flags, granularity, extents as qbm
 * reads them; the list `qemu-img info` prints) either all in the old state or all in the new
 * one: old exactly while the header write (docs/format.md §6.3 step 2) has not landed, new from then on.
 * The error path (write k throws) must leave exactly the same bytes as a power cut at k.
 *
 * Then the real CLI is killed with SIGKILL at random moments during a big edit, in a bounded
 * loop, with the same checks. The numbers of cases and their outcomes are printed.
 */
import { spawn } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Edit, type Image, type Plan, type Repair, commitPlan, openImage, planEdits, planRepair, planWriteCount } from '../index.js'
import { MemoryDevice } from '../../io/memory.js'
import { FaultyDevice } from '../../io/faulty.js'
import {
  EDGE_EDITS, type EditImageSpec, buildImage, edgeSpec, planAddsRefblock, planMovesReftable, randomWrites, setAutoclearBit0,
} from '../../test-support/edit-images.js'
import { type QbmState, checkImage, mustTool, qbmState, qemuInfo } from '../../test-support/edit-oracle.js'
import { Rng } from '../../test-support/prng.js'
import { QBM, qbm as qbmRun, requireTool, tempDir } from '../../test-support/tools.js'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

const tmp = tempDir('qbm-crash-')
afterAll(() => tmp.cleanup())
beforeAll(() => { for (const t of ['qemu-img', 'qemu-io']) requireTool(t) })

let seq = 0
function freshDir(label: string): string {
  const d = join(tmp.path, `${String(++seq).padStart(2, '0')}-${label.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 40)}`)
  mkdirSync(d, { recursive: true })
  return d
}

/** The comparable part of what qbm reads back. */
function comparable(s: QbmState): unknown {
  return {
    extension: s.hasExtension, autoclear: s.autoclearBit0, trusted: s.trusted,
    bitmaps: s.bitmaps.map((b) => ({ name: b.name, granularity: b.granularity, flags: b.flags, status: b.status, extents: b.extents })),
  }
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

interface Tally { cases: number; old: number; new: number; check0: number; check3: number }
const tallies: Array<{ label: string; writes: number; t: Tally; extra: string }> = []
const killTally = { runs: 0, untouched: 0, oldWithChanges: 0, new: 0, check0: 0, check3: 0, exitedBeforeKill: 0, firstWriteMs: 0, fullRunMs: 0 }

afterAll(() => {
  const total = tallies.reduce((s, x) => s + x.t.cases, 0)
  const lines = tallies.map((x) => `  ${x.label}: ${x.writes} writes -> ${x.t.cases} cases (k=0..${x.writes}): ${x.t.old} old state, ${x.t.new} new state; qemu-img check exit 0: ${x.t.check0}, exit 3 (leaks): ${x.t.check3}${x.extra}`)
  console.log([
    `[crash] power-cut injection: ${total} (edit × image × k) cases over ${tallies.length} edit×image combinations, every one old-or-new, check exit 0 or 3 only (error path: same bytes as the power cut for each k)`,
    ...lines,
    `[crash] SIGKILL of the real CLI (a full run takes ~${killTally.fullRunMs} ms, writes start after ~${killTally.firstWriteMs} ms): ${killTally.runs} runs: ${killTally.untouched} before any write, ${killTally.oldWithChanges} old state with partial writes, ${killTally.new} new state (${killTally.exitedBeforeKill} finished before the kill); qemu-img check exit 0: ${killTally.check0}, exit 3: ${killTally.check3}`,
  ].join('\n'))
})

interface CrashCase {
  label: string
  spec: (plan: (img: Image) => Promise<Plan>) => EditImageSpec
  edits?: Edit[]
  repair?: Repair
  force?: boolean
  /** change the built file before the crash runs (e.g. clear autoclear bit 0) */
  prepare?: (path: string) => void
  /** what the plan must contain */
  expectPlan?: (img: Image, plan: Plan) => void
}

const CASES: CrashCase[] = [
  {
    label: 'add+merge moving the refcount table (512 B clusters, 64-bit refcounts)',
    spec: (plan) => edgeSpec('reftable', 'rt.qcow2', plan), edits: EDGE_EDITS,
    expectPlan: (img, p) => expect(planMovesReftable(img, p.header.data)).toBe(true),
  },
  {
    label: 'add+merge adding a refcount block (512 B clusters, 64-bit refcounts)',
    spec: (plan) => edgeSpec('refblock', 'rb.qcow2', plan), edits: EDGE_EDITS,
    expectPlan: (img, p) => { expect(planAddsRefblock(p.writes)).toBe(true); expect(planMovesReftable(img, p.header.data)).toBe(false) },
  },
  {
    label: 'add -g 1k + merge + disable (512 B clusters, 1-bit refcounts)',
    spec: () => ({
      name: 'r1.qcow2', size: 4 * MiB, clusterSize: 512, refcountBits: 1,
      bitmaps: [{ name: 'a', granularity: 512, writes: randomWrites(201, 4 * MiB, 6, 128 * KiB) }, { name: 'c', granularity: 64 * KiB, writes: randomWrites(202, 4 * MiB, 3, 64 * KiB) }],
    }),
    edits: [{ op: 'add', name: 'x', granularity: 1024 }, { op: 'merge', name: 'x', source: 'a' }, { op: 'merge', name: 'x', source: 'c' }, { op: 'disable', name: 'x' }],
  },
  {
    label: 'copy a bitmap, then merge into the copy (4 KiB clusters, 16-bit refcounts)',
    spec: () => ({
      name: 'copy.qcow2', size: 64 * MiB, clusterSize: 4 * KiB,
      bitmaps: [{ name: 'a', granularity: 512, writes: randomWrites(241, 64 * MiB, 6, 256 * KiB) }, { name: 'c', granularity: 64 * KiB, writes: randomWrites(242, 64 * MiB, 3, MiB) }],
    }),
    edits: [{ op: 'copy', name: 'a', newName: 'a-copy' }, { op: 'merge', name: 'a-copy', source: 'c' }],
  },
  {
    label: 'remove the last bitmap (4 KiB clusters)',
    spec: () => ({ name: 'last.qcow2', size: 64 * MiB, clusterSize: 4 * KiB, bitmaps: [{ name: 'only', granularity: 512, writes: randomWrites(211, 64 * MiB, 8, 256 * KiB) }] }),
    edits: [{ op: 'remove', name: 'only' }],
  },
  {
    label: 'merge across granularities both ways (64 KiB clusters, 8-bit refcounts)',
    spec: () => ({
      name: 'merge.qcow2', size: 1 * GiB, clusterSize: 64 * KiB, refcountBits: 8,
      bitmaps: [{ name: 'a', granularity: 64 * KiB, writes: randomWrites(221, GiB, 6, 4 * MiB) }, { name: 'f', granularity: 512, writes: randomWrites(222, GiB, 6, 256 * KiB) }],
    }),
    edits: [{ op: 'merge', name: 'a', source: 'f' }, { op: 'merge', name: 'f', source: 'a' }],
  },
  {
    label: 'clear-in-use dirty with the table rebuilt after a resize (512 B clusters, 2-bit refcounts)',
    spec: () => ({
      name: 'resized.qcow2', size: 8 * MiB, clusterSize: 512, refcountBits: 2,
      bitmaps: [{ name: 'a', granularity: 512, writes: [[0, 4096], [3 * MiB, 1000]] }, { name: 'c', granularity: 64 * KiB, writes: [[MiB, 512]] }],
      inUse: { writes: [[2 * MiB, 4096]], truncate: 16 * MiB },
    }),
    edits: [{ op: 'clear-in-use', name: 'a', mode: 'dirty' }, { op: 'clear-in-use', name: 'c', mode: 'keep' }], force: true,
  },
  {
    label: 'clear-in-use keep + remove an in-use bitmap (64 KiB clusters)',
    spec: () => ({
      name: 'inuse.qcow2', size: 256 * MiB, clusterSize: 64 * KiB,
      bitmaps: [{ name: 'a', granularity: 4 * KiB, writes: randomWrites(231, 256 * MiB, 5, MiB) }, { name: 'b', granularity: 512, writes: randomWrites(232, 256 * MiB, 5, 64 * KiB) }],
      inUse: {},
    }),
    edits: [{ op: 'clear-in-use', name: 'a', mode: 'keep' }, { op: 'remove', name: 'b' }], force: true,
  },
  {
    label: 'repair --retrust (4 KiB clusters, 4-bit refcounts)',
    spec: () => ({
      name: 'retrust.qcow2', size: 64 * MiB + 512, clusterSize: 4 * KiB, refcountBits: 4,
      bitmaps: [{ name: 'a', granularity: 512, writes: [[0, 512]] }, { name: 'd', granularity: MiB, disabled: true, writes: [[5 * MiB, 512]] }],
    }),
    prepare: (p) => setAutoclearBit0(p, false),
    repair: 'retrust',
  },
  {
    label: 'repair --drop-all-bitmaps (64 KiB clusters, 16-bit refcounts)',
    spec: () => ({
      name: 'drop.qcow2', size: 512 * MiB, clusterSize: 64 * KiB,
      bitmaps: [
        { name: 'a', granularity: 64 * KiB, writes: randomWrites(241, 512 * MiB, 5, 2 * MiB) },
        { name: 'b', granularity: 512, writes: randomWrites(242, 512 * MiB, 5, 64 * KiB), disabled: true },
        { name: 'c', granularity: MiB, writes: randomWrites(243, 512 * MiB, 5, 2 * MiB) },
      ],
    }),
    repair: 'drop-all-bitmaps',
  },
  {
    label: 'repair --drop-all-bitmaps on qcow2 v2 (after qemu-img amend -o compat=0.10)',
    spec: () => ({
      name: 'v2.qcow2', size: 64 * MiB, clusterSize: 64 * KiB,
      bitmaps: [{ name: 'a', granularity: 4096, writes: [[0, MiB]] }, { name: 'f', granularity: 512, writes: [[2 * MiB, 4096]] }],
    }),
    prepare: (p) => { mustTool('qemu-img', ['amend', '-o', 'compat=0.10'], p) },
    repair: 'drop-all-bitmaps',
  },
  {
    label: 'repair --fix-autoclear (64 KiB clusters)',
    spec: () => ({ name: 'fix.qcow2', size: 16 * MiB, clusterSize: 64 * KiB, bitmaps: [], writes: [[0, 4096]] }),
    prepare: (p) => setAutoclearBit0(p, true),
    repair: 'fix-autoclear',
  },
  {
    label: 'enable + disable + rename (directory only; 512 B clusters, 32-bit refcounts)',
    spec: () => ({
      name: 'flags.qcow2', size: 4 * MiB, clusterSize: 512, refcountBits: 32,
      bitmaps: [{ name: 'a', granularity: 512, writes: [[0, 8192]] }, { name: 'b', granularity: 4096, writes: [[MiB, 512]], disabled: true }],
    }),
    edits: [{ op: 'disable', name: 'a' }, { op: 'enable', name: 'b' }, { op: 'rename', name: 'b', newName: 'b-renamed' }],
  },
  {
    label: 'clear-in-use empty + keep (512 B clusters, 64-bit refcounts)',
    spec: () => ({
      name: 'inuse512.qcow2', size: 4 * MiB, clusterSize: 512, refcountBits: 64,
      bitmaps: [{ name: 'a', granularity: 512, writes: randomWrites(261, 4 * MiB, 5, 64 * KiB) }, { name: 'c', granularity: 64 * KiB, writes: [[2 * MiB, 512]] }],
      inUse: {},
    }),
    edits: [{ op: 'clear-in-use', name: 'a', mode: 'empty' }, { op: 'clear-in-use', name: 'c', mode: 'keep' }], force: true,
  },
  {
    label: 'add + merge on an overlay with a backing file',
    spec: () => ({
      name: 'overlay.qcow2', size: 64 * MiB, clusterSize: 64 * KiB, backing: { writes: [[0, MiB]] },
      bitmaps: [{ name: 'a', granularity: 4096, writes: randomWrites(271, 64 * MiB, 4, 256 * KiB) }],
    }),
    edits: [{ op: 'add', name: 'n', granularity: 512, disabled: true }, { op: 'merge', name: 'n', source: 'a' }],
  },
  {
    label: 'clear + merge on an image with an external data file (4 KiB clusters, 8-bit refcounts)',
    spec: () => ({
      name: 'ext.qcow2', size: 64 * MiB, clusterSize: 4 * KiB, refcountBits: 8, dataFile: true,
      bitmaps: [{ name: 'a', granularity: 4096, writes: randomWrites(281, 64 * MiB, 5, 256 * KiB) }, { name: 'c', granularity: MiB, writes: [[3 * MiB, 512]] }],
    }),
    edits: [{ op: 'clear', name: 'c' }, { op: 'merge', name: 'c', source: 'a' }],
  },
  {
    label: 'remove + rename + clear (2 MiB clusters, 32-bit refcounts)',
    spec: () => ({
      name: 'big.qcow2', size: 4 * GiB, clusterSize: 2 * MiB, refcountBits: 32,
      bitmaps: [
        { name: 'a', granularity: 64 * KiB, writes: randomWrites(251, 4 * GiB, 3, 256 * KiB) },
        { name: 'b', granularity: 512, writes: randomWrites(252, 4 * GiB, 3, 64 * KiB) },
        { name: 'c', granularity: MiB, writes: randomWrites(253, 4 * GiB, 3, 256 * KiB) },
      ],
    }),
    edits: [{ op: 'remove', name: 'b' }, { op: 'rename', name: 'a', newName: 'z' }, { op: 'clear', name: 'c' }],
  },
]

describe('FaultyDevice', () => {
  it('power cut after k writes: later writes and flushes vanish but report success', async () => {
    const inner = new MemoryDevice(new Uint8Array(16))
    const f = FaultyDevice.powerCutAfter(inner, 2)
    await f.write(0, new Uint8Array([1]))
    await f.flush()
    await f.write(1, new Uint8Array([2]))
    await f.write(2, new Uint8Array([3]))
    await f.flush()
    await f.write(20, new Uint8Array([4]))
    expect([...inner.bytes().subarray(0, 4)]).toEqual([1, 2, 0, 0])
    expect(inner.size).toBe(16)
    expect({ writes: f.writes, landed: f.landed, dropped: f.dropped, flushes: f.flushes, passed: f.flushesPassed }).toEqual({ writes: 4, landed: 2, dropped: 2, flushes: 2, passed: 1 })
    expect(f.log.map((l) => l.fate)).toEqual(['landed', 'landed', 'dropped', 'dropped'])
  })
  it('error path: write k throws, earlier writes landed', async () => {
    const inner = new MemoryDevice(new Uint8Array(8))
    const f = FaultyDevice.failingAt(inner, 1)
    await f.write(0, new Uint8Array([9]))
    await expect(f.write(1, new Uint8Array([9]))).rejects.toThrow(/injected write error/)
    expect([...inner.bytes().subarray(0, 2)]).toEqual([9, 0])
  })
})

describe('power cut after every write of a plan', () => {
  for (const c of CASES) {
    it(c.label, async () => {
      const dir = freshDir(c.label)
      const planOf = (img: Image): Promise<Plan> => c.repair ? planRepair(img, c.repair) : planEdits(img, c.edits!, { force: c.force ?? false })
      const built = await buildImage(dir, c.spec(planOf))
      c.prepare?.(built.path)
      const orig = new Uint8Array(readFileSync(built.path))
      const img = await openImage(new MemoryDevice(orig))
      const plan = await planOf(img)
      c.expectPlan?.(img, plan)
      const n = planWriteCount(plan)
      const headerIndex = plan.writes.length

      const oldState = comparable(await qbmState(orig))
      const oldCheck = checkImage(built.path).code
      const oldInfo = qemuInfo(built.path).bitmaps
      const full = new MemoryDevice(orig)
      await commitPlan(full, plan)
      const newPath = join(dir, 'new.qcow2')
      writeFileSync(newPath, full.bytes())
      const newState = comparable(await qbmState(full.bytes()))
      const newCheck = checkImage(newPath)
      expect(newCheck.code, `complete commit: ${newCheck.output}`).toBe(0)
      const newInfo = qemuInfo(newPath).bitmaps
      expect(same(oldState, newState), 'the edit changes what qbm reads').toBe(false)

      const t: Tally = { cases: 0, old: 0, new: 0, check0: 0, check3: 0 }
      for (let k = 0; k <= n; k++) {
        const dev = new MemoryDevice(orig)
        const f = FaultyDevice.powerCutAfter(dev, k)
        await commitPlan(f, plan)
        expect(f.writes, 'the committer issues every write of the plan').toBe(n)
        expect(f.landed).toBe(Math.min(k, n))
        const bytes = dev.bytes()
        if (k === 0) expect(Buffer.compare(Buffer.from(bytes), Buffer.from(orig)), 'k=0 leaves the file untouched').toBe(0)

        // error path: write k fails; what landed must be the same as with the power cut
        if (k < n) {
          const dev2 = new MemoryDevice(orig)
          await expect(commitPlan(FaultyDevice.failingAt(dev2, k), plan)).rejects.toThrow(/injected write error/)
          expect(Buffer.compare(Buffer.from(dev2.bytes()), Buffer.from(bytes)), `error at write ${k}`).toBe(0)
        }

        const q = await qbmState(bytes)
        expect(q.bitmapsError, `k=${k}: bitmaps error`).toBeUndefined()
        expect(q.invalid, `k=${k}: invalid bitmaps`).toEqual([])
        const st = comparable(q)
        const isOld = same(st, oldState)
        const isNew = same(st, newState)
        expect(isOld || isNew, `k=${k}: neither the old nor the new state:\n${JSON.stringify(st)}`).toBe(true)
        // old exactly until the single header write lands (docs/format.md §6.3)
        expect(isNew, `k=${k} (header is write ${headerIndex})`).toBe(k > headerIndex)

        const p = join(dir, `k${k}.qcow2`)
        writeFileSync(p, bytes)
        const ck = checkImage(p)
        expect([0, 3], `k=${k}: qemu-img check exit ${ck.code}\n${ck.output}`).toContain(ck.code)
        if (k === 0) expect(ck.code).toBe(oldCheck)
        if (k === n) expect(ck.code).toBe(0)
        expect(qemuInfo(p).bitmaps, `k=${k}: qemu-img info`).toEqual(isNew ? newInfo : oldInfo)
        rmSync(p)
        t.cases++
        if (isNew) t.new++
        else t.old++
        if (ck.code === 0) t.check0++
        else t.check3++
      }
      tallies.push({ label: `${c.label} [${basename(built.path)}]`, writes: n, t, extra: '' })
      rmSync(dir, { recursive: true, force: true })
    })
  }
})

// ---------------------------------------------------------------------------------------------
// SIGKILL of the real CLI

function runCli(args: string[], cwd: string, killAfterMs?: number): Promise<{ code: number | null; signal: string | null; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const p = spawn(process.execPath, [QBM, ...args], { cwd, stdio: 'ignore' })
    let timer: NodeJS.Timeout | undefined
    if (killAfterMs !== undefined) timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs)
    p.on('error', reject)
    p.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer)
      resolve({ code, signal, ms: Number(process.hrtime.bigint() - t0) / 1e6 })
    })
  })
}

describe('SIGKILL of `qbm bitmap --add ... --merge ...` at random moments', () => {
  it('every killed run leaves the old or the new state, check exit 0 or 3 (10 runs to find the write phase + 20 random kills)', async () => {
    const dir = freshDir('sigkill')
    // Writes are fast (page cache), so the edit must make many of them: 512-byte clusters,
    // 16 GiB disk, a source bitmap (64 KiB granularity) that is dirty everywhere, merged into a
    // new bitmap of 512-byte granularity: 8192 data clusters, ~8300 writes in the commit.
    // (Dirtying 16 GiB through qemu-io with 512-byte clusters takes QEMU minutes, so the source
    // is made all-dirty by `qbm repair --retrust` after clearing autoclear bit 0.)
    const size = 16 * GiB
    const built = await buildImage(dir, { name: 'kill.qcow2', size, clusterSize: 512, bitmaps: [{ name: 'src', granularity: 64 * KiB, writes: [[0, 4096]] }] })
    setAutoclearBit0(built.path, false)
    expect(qbmRun(['repair', 'kill.qcow2', '--retrust'], { cwd: dir }).code).toBe(0)
    expect(checkImage(built.path).code).toBe(0)
    expect((await qbmState(built.path)).bitmaps[0]!.extents).toEqual([{ offset: 0, length: size }])
    const orig = new Uint8Array(readFileSync(built.path))
    const oldState = comparable(await qbmState(orig))
    const args = ['bitmap', '--add', '-g', '512', '--merge', 'src', 'work.qcow2', 'new']

    // one complete run: the new state and the run time
    copyFileSync(built.path, join(dir, 'work.qcow2'))
    let fullRun = await runCli(args, dir)
    expect(fullRun.code).toBe(0)
    copyFileSync(built.path, join(dir, 'work.qcow2'))
    fullRun = await runCli(args, dir) // warm: the first run pays for cold caches
    expect(fullRun.code).toBe(0)
    const newState = comparable(await qbmState(join(dir, 'work.qcow2')))
    expect(checkImage(join(dir, 'work.qcow2')).code).toBe(0)
    const T = fullRun.ms
    killTally.fullRunMs = Math.round(T)

    type Outcome = 'untouched' | 'partial' | 'new'
    const killAt = async (i: number, delay: number): Promise<Outcome> => {
      const path = join(dir, 'work.qcow2')
      copyFileSync(built.path, path)
      const r = await runCli(args, dir, delay)
      const bytes = new Uint8Array(readFileSync(path))
      const q = await qbmState(bytes)
      expect(q.bitmapsError, `run ${i}`).toBeUndefined()
      expect(q.invalid).toEqual([])
      const st = comparable(q)
      const isOld = same(st, oldState)
      const isNew = same(st, newState)
      expect(isOld || isNew, `run ${i} (killed after ${delay} ms): neither old nor new`).toBe(true)
      const ck = checkImage(path)
      expect([0, 3], `run ${i}: qemu-img check exit ${ck.code}\n${ck.output}`).toContain(ck.code)
      killTally.runs++
      if (r.signal !== 'SIGKILL') killTally.exitedBeforeKill++
      if (ck.code === 0) killTally.check0++
      else killTally.check3++
      const outcome: Outcome = isNew ? 'new' : Buffer.compare(Buffer.from(bytes), Buffer.from(orig)) === 0 ? 'untouched' : 'partial'
      killTally[outcome === 'new' ? 'new' : outcome === 'untouched' ? 'untouched' : 'oldWithChanges']++
      return outcome
    }

    // Most of a run is Node's start-up and the planning; the writes take a few ms at the end.
    // Find where they begin and where the new state appears (binary searches on the kill
    // delay, 5 runs each), then kill at random moments in and around that window.
    const search = async (a: number, b: number, isLate: (o: Outcome) => boolean): Promise<[number, number]> => {
      let lo = a
      let hi = b
      for (let step = 0; step < 5; step++) {
        const mid = Math.round((lo + hi) / 2)
        if (isLate(await killAt(i++, mid))) hi = mid
        else lo = mid
      }
      return [lo, hi]
    }
    let i = 0
    const [firstLo] = await search(0, Math.ceil(T), (o) => o !== 'untouched')
    const [, newHi] = await search(firstLo, Math.ceil(T), (o) => o === 'new')
    killTally.firstWriteMs = firstLo
    const rng = new Rng(4242)
    const from = Math.max(0, firstLo - 15)
    const to = newHi + 15
    for (let n = 0; n < 20; n++) await killAt(i++, from + rng.int(to - from + 1))
  })
})
