/**
 * Edits against the live QEMU 7.2 tools (issue 3, "Proof: interop"). Images are made by
 * qemu-img / qemu-io over a matrix of cluster sizes (512 B .. 2 MiB), refcount widths (1 .. 64
 * bits) and bitmaps (granularity 512 B .. 2 GiB, enabled and disabled, with writes), plus
 * images with a backing file, an external data file, writers killed while the bitmaps were in
 * use (also after resizing the disk), untrusted extensions, and images calibrated so that the
 * edit must add a refcount block or grow and move the refcount table.
 *
 * Every edit runs through the engine (NodeFileDevice 'rw' and MemoryDevice: planEdits /
 * planRepair + commitPlan) and through the CLI (`qbm bitmap ...`, `qbm repair ...`); single-call
 * CLI runs must produce the engine's bytes exactly. Each result is then checked with QEMU:
 * `qemu-img check` exit 0, `qemu-img info` lists exactly the expected bitmaps and flags,
 * `nbdinfo --map` of every usable bitmap equals the model's extents, QMP sha256 of bitmaps whose
 * bits did not change is unchanged (and for changed ones equals qbm's own digest), and qbm reads
 * back the same list in directory order. A missing QEMU tool fails the suite.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ConstraintError, type Edit, type EditSources, type Image, type Plan, type Repair, commitPlan, openImage, planEdits, planRepair,
} from '../index.js'
import { MemoryDevice } from '../../io/memory.js'
import { NodeFileDevice } from '../../io/node-file.js'
import { loadRefcounts } from '../qcow2/refcount.js'
import {
  type BuiltImage, type EditImageSpec, EDGE_CLI, EDGE_EDITS, buildImage, copyImage, edgeSpec, infoOf, planAddsRefblock, qemuDefaultGranularity, qemuImgCreate, randomWrites, setAutoclearBit0,
} from '../../test-support/edit-images.js'
import {
  type Extent, type QemuSnapshot, checkImage, mustTool, nbdMap, qbmState, qemuInfo, qemuSnapshot, qemuSnapshotAsync, sha256File, tool, union, writesToExtents,
} from '../../test-support/edit-oracle.js'
import { type ModelEdit, type ModelState, applyModel, applyRepairModel, startState } from '../../test-support/edit-model.js'
import { qbm, requireTool, tempDir } from '../../test-support/tools.js'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

const tmp = tempDir('qbm-edits-')
afterAll(() => tmp.cleanup())

beforeAll(() => {
  for (const t of ['qemu-img', 'qemu-io', 'qemu-nbd', 'nbdinfo', 'qemu-system-x86_64']) requireTool(t)
})

let dirSeq = 0
function freshDir(label: string): string {
  const d = join(tmp.path, `${String(++dirSeq).padStart(3, '0')}-${label.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 40)}`)
  mkdirSync(d, { recursive: true })
  return d
}

// ---------------------------------------------------------------------------------------------
// Base images and their state before any edit

interface Base {
  built: BuiltImage
  pre: QemuSnapshot
  /** model of the bitmaps before the edit (extents from nbdinfo for usable bitmaps) */
  state: ModelState[]
  cs: number
}

async function makeBase(label: string, spec: EditImageSpec, prebuilt?: BuiltImage): Promise<Base> {
  const built = prebuilt ?? await buildImage(freshDir(label), spec)
  const pre = await qemuSnapshotAsync(built.path)
  expect(pre.check, pre.checkOutput).toBe(0)
  const state = startState(built.model.map((m) => ({ ...m, extents: pre.maps[m.name] ?? m.extents })))
  return { built, pre, state, cs: built.spec.clusterSize }
}

// ---------------------------------------------------------------------------------------------
// Running an edit both ways and checking the result with QEMU

interface Scenario {
  title: string
  /** engine edits, applied in one plan (cross-image merges name their source by key) */
  edits?: ModelEdit[]
  repair?: Repair
  force?: boolean
  /** CLI calls (arguments after `qbm`); 'IMG' is replaced by the image's file name */
  cli: string[][]
  /** cross-image merge sources: key -> base */
  sources?: Record<string, Base>
  /** extra checks on the result */
  after?: (ctx: { path: string; enginePath: string; base: Base; prePath: string; plan: Plan }) => Promise<void> | void
  /** expected state when not derivable from edits (default: the model) */
  expectState?: (base: Base) => ModelState[]
}

const results: Array<{ image: string; scenario: string; ms: number }> = []

function cliArgs(call: string[], imgName: string): string[] {
  return call.map((a) => (a === 'IMG' ? imgName : a))
}

/** The scenario's edits as the engine takes them, a cross-image merge naming its source by id, and what the ids are. */
function toEngineEdits(edits: ModelEdit[], sources: Record<string, Image>): { edits: Edit[]; sources: EditSources } {
  const keys = Object.keys(sources)
  return {
    edits: edits.map((e) => {
      if (e.op !== 'merge' || !e.sourceKey) return e as Edit
      return { op: 'merge', name: e.name, source: e.source, sourceImageId: keys.indexOf(e.sourceKey) }
    }),
    sources: { image: (id) => sources[keys[id]!] },
  }
}

function planScenario(img: Image, sc: Scenario, srcImgs: Record<string, Image>): Promise<Plan> {
  if (sc.repair) return planRepair(img, sc.repair)
  const { edits, sources } = toEngineEdits(sc.edits!, srcImgs)
  return planEdits(img, edits, { force: sc.force ?? false, sources })
}

async function runEngine(path: string, sc: Scenario, sourcePaths: Record<string, string>): Promise<Plan> {
  const srcDevs = Object.entries(sourcePaths).map(([k, p]) => [k, NodeFileDevice.open(p, 'r')] as const)
  const srcImgs: Record<string, Image> = {}
  for (const [k, d] of srcDevs) srcImgs[k] = await openImage(d)
  const dev = NodeFileDevice.open(path, 'rw')
  try {
    const img = await openImage(dev)
    const plan = await planScenario(img, sc, srcImgs)
    await commitPlan(dev, plan)
    return plan
  } finally {
    dev.close()
    for (const [, d] of srcDevs) d.close()
  }
}

async function runMemory(bytes: Uint8Array, sc: Scenario, sourcePaths: Record<string, string>): Promise<Uint8Array> {
  const srcImgs: Record<string, Image> = {}
  for (const [k, p] of Object.entries(sourcePaths)) srcImgs[k] = await openImage(new MemoryDevice(new Uint8Array(readFileSync(p))))
  const dev = new MemoryDevice(bytes)
  const img = await openImage(dev)
  const plan = await planScenario(img, sc, srcImgs)
  await commitPlan(dev, plan)
  return dev.bytes()
}

function expectedOf(base: Base, sc: Scenario): ModelState[] {
  if (sc.expectState) return sc.expectState(base)
  const ctx = {
    L: base.built.length,
    defaultGranularity: qemuDefaultGranularity(base.cs),
    sources: Object.fromEntries(Object.entries(sc.sources ?? {}).map(([k, b]) => [k, b.state])),
  }
  return sc.repair ? applyRepairModel(base.state, sc.repair, ctx) : applyModel(base.state, sc.edits!, ctx)
}

/** Every check of the issue's interop proof on one result file. */
async function verifyResult(path: string, base: Base, expected: ModelState[], label: string): Promise<void> {
  const snap = await qemuSnapshotAsync(path)
  expect(snap.check, `${label}: qemu-img check\n${snap.checkOutput}`).toBe(0)
  expect(snap.bitmaps, `${label}: qemu-img info bitmaps`).toEqual(infoOf(expected))
  for (const e of expected) {
    if (e.flags.includes('in-use')) continue
    expect(snap.maps[e.name], `${label}: nbdinfo --map of '${e.name}'`).toEqual(e.extents)
  }
  const q = await qbmState(path, { sha: true })
  expect(q.bitmapsError, `${label}: qbm bitmapsError`).toBeUndefined()
  expect(q.invalid, `${label}: qbm invalid bitmaps`).toEqual([])
  expect(q.bitmaps.map((b) => ({ name: b.name, granularity: b.granularity, flags: b.flags, extents: b.extents })), `${label}: qbm list`)
    .toEqual(expected.map((e) => ({ name: e.name, granularity: e.granularity, flags: e.flags, extents: e.extents })))
  expect(q.hasExtension, `${label}: bitmaps extension present`).toBe(expected.length > 0)
  expect(q.autoclearBit0, `${label}: autoclear bit 0`).toBe(expected.length > 0)
  for (const e of expected) {
    // QEMU's own view of the loaded bitmap: dirty byte count, recording (= auto), consistency
    const qb = snap.qemuBitmaps?.find((x) => x.name === e.name)
    expect(qb, `${label}: QEMU lists '${e.name}' over QMP`).toBeDefined()
    const inUse = e.flags.includes('in-use')
    expect(qb!.inconsistent === true, `${label}: QMP inconsistent of '${e.name}'`).toBe(inUse)
    if (!inUse) {
      // QEMU counts whole granules (a last granule cut short by the disk end counts fully)
      expect(qb!.count, `${label}: QMP dirty count of '${e.name}'`).toBe(e.extents.reduce((n, x) => n + Math.ceil(x.length / e.granularity) * e.granularity, 0))
      expect(qb!.recording, `${label}: QMP recording of '${e.name}'`).toBe(e.flags.includes('auto'))
      expect(qb!.granularity).toBe(e.granularity)
    }
    const sum = snap.sha[e.name]
    expect(sum, `${label}: QEMU sha256 of '${e.name}'`).toBeDefined()
    if (!e.changed && e.origin !== undefined && base.pre.sha[e.origin] !== undefined) {
      expect(sum, `${label}: sha256 of untouched '${e.name}' (was '${e.origin}')`).toBe(base.pre.sha[e.origin])
    } else {
      expect(sum, `${label}: QEMU sha256 of changed '${e.name}' vs qbm's digest`).toBe(q.sha[e.name])
    }
  }
}

async function runScenario(base: Base, sc: Scenario): Promise<void> {
  const t0 = Date.now()
  const dir = freshDir(`${basename(base.built.path)}-${sc.title}`)
  const a = copyImage(base.built, join(dir, 'engine'))
  const b = copyImage(base.built, join(dir, 'cli'))
  const before = new Uint8Array(readFileSync(base.built.path))
  const sourcePaths = Object.fromEntries(Object.entries(sc.sources ?? {}).map(([k, s]) => [k, s.built.path]))

  const tm: Record<string, number> = {}
  let tl = Date.now()
  const lap = (k: string): void => { const n = Date.now(); tm[k] = (tm[k] ?? 0) + n - tl; tl = n }
  lap('copy')
  // engine on a file, and in memory: identical bytes
  const plan = await runEngine(a, sc, sourcePaths)
  const engineBytes = new Uint8Array(readFileSync(a))
  const memBytes = await runMemory(before, sc, sourcePaths)
  expect(Buffer.compare(Buffer.from(memBytes), Buffer.from(engineBytes)), 'MemoryDevice and NodeFileDevice results differ').toBe(0)

  lap('engine')
  // CLI (sources copied next to the image so -b takes a relative name)
  for (const [k, s] of Object.entries(sc.sources ?? {})) copyImage(s.built, join(dir, 'cli'), k)
  for (const call of sc.cli) {
    const r = qbm(cliArgs(call, basename(b)), { cwd: dirname(b) })
    expect(r.code, `qbm ${call.join(' ')}: ${r.stderr}`).toBe(0)
  }
  lap('cli')
  const cliBytes = new Uint8Array(readFileSync(b))
  const expected = expectedOf(base, sc)
  if (sc.cli.length === 1) {
    expect(Buffer.compare(Buffer.from(cliBytes), Buffer.from(engineBytes)), 'the CLI and the engine wrote different bytes').toBe(0)
    await verifyResult(b, base, expected, `${sc.title} (cli = engine)`)
  } else {
    // several CLI calls (several commits) vs one engine plan: verify both results
    await Promise.all([verifyResult(a, base, expected, `${sc.title} (engine)`), verifyResult(b, base, expected, `${sc.title} (cli)`)])
  }
  lap('verify')
  if (process.env.QBM_TIMING) console.log(sc.title, JSON.stringify(tm))
  await sc.after?.({ path: b, enginePath: a, base, prePath: base.built.path, plan })
  rmSync(dir, { recursive: true, force: true })
  results.push({ image: basename(base.built.path), scenario: sc.title, ms: Date.now() - t0 })
}

afterAll(() => {
  const byImage = new Map<string, number>()
  for (const r of results) byImage.set(r.image, (byImage.get(r.image) ?? 0) + 1)
  console.log(`[edits] ${results.length} edit scenarios verified against QEMU over ${byImage.size} images: ${[...byImage].map(([k, v]) => `${k}×${v}`).join(', ')}`)
})

// ---------------------------------------------------------------------------------------------
// Extra checks

/** After the last bitmap is gone, QEMU must still write the image without marking it corrupt. */
function qemuCanStillWrite(path: string): void {
  mustTool('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 64k'], path)
  const c = checkImage(path)
  expect(c.code, c.output).toBe(0)
  expect(qemuInfo(path).corrupt).toBe(false)
  const hdr = readFileSync(path)
  expect(hdr.readBigUInt64BE(72) & 2n, 'corrupt bit').toBe(0n)
  expect(hdr.readBigUInt64BE(88) & 1n, 'autoclear bit 0').toBe(0n)
}

/** A copy reads as its source: nbdinfo --map and QEMU's SHA-256 of the two are equal. */
async function copiesReadAsSources(path: string, pairs: Array<[string, string]>): Promise<void> {
  const snap = await qemuSnapshotAsync(path)
  for (const [src, copy] of pairs) {
    expect(snap.maps[copy], `nbdinfo --map of '${copy}' vs '${src}'`).toEqual(snap.maps[src])
    expect(snap.sha[copy], `QEMU sha256 of '${copy}' vs '${src}'`).toBe(snap.sha[src])
    expect(snap.bitmaps.find((b) => b.name === copy), `qemu-img info of '${copy}'`).toEqual({ ...snap.bitmaps.find((b) => b.name === src), name: copy })
  }
}

async function reftableOf(path: string): Promise<{ offset: number; clusters: number; blocks: number }> {
  const dev = new MemoryDevice(new Uint8Array(readFileSync(path)))
  const img = await openImage(dev)
  const rc = await loadRefcounts(dev, img.header)
  return { offset: img.header.refcountTableOffset, clusters: img.header.refcountTableClusters, blocks: [...rc.reftable].filter((x) => x > 0).length }
}

// ---------------------------------------------------------------------------------------------
// The matrix

interface MatrixEntry {
  key: string
  cs: number
  rb: number
  size: number
  /** granularities: a and b share gA; c coarse; f fine */
  gA: number
  gC: number
  gF: number
  /** granularity for the add -g --disable scenario */
  gAdd: number
  writes: number
  maxLen: number
  extra?: number[]
}

const MATRIX: MatrixEntry[] = [
  { key: 'c512-r64', cs: 512, rb: 64, size: 4 * MiB, gA: 512, gC: 64 * KiB, gF: 1 * KiB, gAdd: 1 * MiB, writes: 5, maxLen: 96 * KiB },
  { key: 'c512-r1', cs: 512, rb: 1, size: 4 * MiB, gA: 4 * KiB, gC: 256 * KiB, gF: 512, gAdd: 512, writes: 5, maxLen: 96 * KiB },
  { key: 'c4k-r2', cs: 4 * KiB, rb: 2, size: 64 * MiB, gA: 2 * KiB, gC: 1 * MiB, gF: 512, gAdd: 128 * KiB, writes: 6, maxLen: 1 * MiB },
  { key: 'c4k-r4', cs: 4 * KiB, rb: 4, size: 64 * MiB, gA: 8 * KiB, gC: 512 * KiB, gF: 1 * KiB, gAdd: 2 * KiB, writes: 6, maxLen: 1 * MiB },
  { key: 'c64k-r8', cs: 64 * KiB, rb: 8, size: 1 * GiB, gA: 64 * KiB, gC: 1 * MiB, gF: 512, gAdd: 512, writes: 6, maxLen: 4 * MiB },
  { key: 'c64k-r16-many', cs: 64 * KiB, rb: 16, size: 1 * GiB, gA: 16 * KiB, gC: 1 * MiB, gF: 512, gAdd: 256 * KiB, writes: 5, maxLen: 4 * MiB, extra: [128 * KiB, 2 * KiB, 32 * KiB, 512 * KiB, 64 * KiB, 4 * KiB] },
  { key: 'c64k-r32', cs: 64 * KiB, rb: 32, size: 1 * GiB + 64 * KiB, gA: 32 * KiB, gC: 512 * KiB, gF: 4 * KiB, gAdd: 1 * MiB, writes: 4, maxLen: 2 * MiB },
  { key: 'c2m-r64', cs: 2 * MiB, rb: 64, size: 4 * GiB, gA: 64 * KiB, gC: 1 * MiB, gF: 512, gAdd: 2 * GiB, writes: 3, maxLen: 256 * KiB },
]

function matrixSpec(m: MatrixEntry, seed: number): EditImageSpec {
  const w = (k: number): Array<[number, number]> => randomWrites(seed * 100 + k, m.size, m.writes, m.maxLen)
  return {
    name: `${m.key}.qcow2`, size: m.size, clusterSize: m.cs, refcountBits: m.rb,
    bitmaps: [
      { name: 'a', granularity: m.gA, writes: w(1) },
      { name: 'b', granularity: m.gA, writes: w(2), disabled: true },
      { name: 'c', granularity: m.gC, writes: w(3) },
      { name: 'f', granularity: m.gF, writes: w(4) },
      ...(m.extra ?? []).map((g, i) => ({ name: `e${i}`, granularity: g, writes: w(10 + i), disabled: i % 2 === 1 })),
    ],
    writes: w(5),
  }
}

function matrixScenarios(m: MatrixEntry): Scenario[] {
  const names = ['a', 'b', 'c', 'f', ...(m.extra ?? []).map((_, i) => `e${i}`)]
  return [
    { title: 'add (default granularity)', edits: [{ op: 'add', name: 'new' }], cli: [['bitmap', '--add', 'IMG', 'new']] },
    {
      title: `add -g ${m.gAdd} --disable`, edits: [{ op: 'add', name: 'new', granularity: m.gAdd, disabled: true }],
      cli: [['bitmap', '--add', '-g', String(m.gAdd), '--disable', 'IMG', 'new']],
    },
    { title: 'remove b', edits: [{ op: 'remove', name: 'b' }], cli: [['bitmap', '--remove', 'IMG', 'b']] },
    {
      title: 'remove all (the last one too)', edits: names.map((n) => ({ op: 'remove', name: n })),
      cli: names.map((n) => ['bitmap', '--remove', 'IMG', n]),
      after: ({ path }) => qemuCanStillWrite(path),
    },
    { title: 'enable b, disable a', edits: [{ op: 'enable', name: 'b' }, { op: 'disable', name: 'a' }], cli: [['bitmap', '--enable', 'IMG', 'b'], ['bitmap', '--disable', 'IMG', 'a']] },
    { title: 'clear a', edits: [{ op: 'clear', name: 'a' }], cli: [['bitmap', '--clear', 'IMG', 'a']] },
    { title: 'merge b into a (same granularity)', edits: [{ op: 'merge', name: 'a', source: 'b' }], cli: [['bitmap', '--merge', 'b', 'IMG', 'a']] },
    {
      title: 'merge coarse c into fine f, fine f into coarse c',
      edits: [{ op: 'merge', name: 'f', source: 'c' }, { op: 'merge', name: 'c', source: 'f' }],
      cli: [['bitmap', '--merge', 'c', 'IMG', 'f'], ['bitmap', '--merge', 'f', 'IMG', 'c']],
    },
    { title: 'rename a', edits: [{ op: 'rename', name: 'a', newName: 'renamé-a' }], cli: [['bitmap', '--rename', 'renamé-a', 'IMG', 'a']] },
    {
      title: 'several edits in one call: --add --merge f --merge a --disable',
      edits: [{ op: 'add', name: 'x' }, { op: 'merge', name: 'x', source: 'f' }, { op: 'merge', name: 'x', source: 'a' }, { op: 'disable', name: 'x' }],
      cli: [['bitmap', '--add', '--merge', 'f', '--merge', 'a', '--disable', 'IMG', 'x']],
    },
    {
      title: 'copy b (disabled) and f (fine granularity): the copies read as their sources',
      edits: [{ op: 'copy', name: 'b', newName: 'b-copy' }, { op: 'copy', name: 'f', newName: 'f-copy' }],
      cli: [['bitmap', '--copy', 'b-copy', 'IMG', 'b'], ['bitmap', '--copy', 'f-copy', 'IMG', 'f']],
      after: ({ path }) => copiesReadAsSources(path, [['b', 'b-copy'], ['f', 'f-copy']]),
    },
    {
      title: 'copy in one call between merges: --merge b --copy a2 --merge c on a',
      edits: [{ op: 'merge', name: 'a', source: 'b' }, { op: 'copy', name: 'a', newName: 'a2' }, { op: 'merge', name: 'a', source: 'c' }],
      cli: [['bitmap', '--merge', 'b', '--copy', 'a2', '--merge', 'c', 'IMG', 'a']],
    },
    {
      title: 'several edits in one call: --clear --merge c --enable --rename on b',
      edits: [{ op: 'clear', name: 'b' }, { op: 'merge', name: 'b', source: 'c' }, { op: 'enable', name: 'b' }, { op: 'rename', name: 'b', newName: 'b2' }],
      cli: [['bitmap', '--clear', '--merge', 'c', '--enable', '--rename', 'b2', 'IMG', 'b']],
    },
  ]
}

for (const [mi, m] of MATRIX.entries()) {
  describe(`matrix ${m.key}: cluster ${m.cs} B, refcount ${m.rb} bits`, () => {
    let base: Base
    beforeAll(async () => { base = await makeBase(m.key, matrixSpec(m, mi + 1)) })

    it('QEMU-made base image matches the model of its writes', () => {
      for (const b of base.built.model) expect(base.pre.maps[b.name], b.name).toEqual(b.extents)
      expect(base.pre.bitmaps).toEqual(infoOf(base.built.model))
    })

    for (const sc of matrixScenarios(m)) it(sc.title, async () => { await runScenario(base, sc) })
  })
}

// ---------------------------------------------------------------------------------------------
// Default granularity: qbm picks what qemu-img picks

describe('default granularity of --add equals qemu-img bitmap --add', () => {
  for (const cs of [512, 4 * KiB, 8 * KiB, 64 * KiB, 128 * KiB, 2 * MiB]) {
    it(`cluster size ${cs}`, () => {
      const dir = freshDir(`defg-${cs}`)
      const p1 = join(dir, 'q.qcow2')
      const p2 = join(dir, 'b.qcow2')
      qemuImgCreate(p1, 64 * MiB, [`cluster_size=${cs}`])
      qemuImgCreate(p2, 64 * MiB, [`cluster_size=${cs}`])
      mustTool('qemu-img', ['bitmap', '--add'], p1, ['x'])
      const r = qbm(['bitmap', '--add', basename(p2), 'x'], { cwd: dir })
      expect(r.code, r.stderr).toBe(0)
      const gq = qemuInfo(p1).bitmaps[0]!.granularity
      const gb = qemuInfo(p2).bitmaps[0]!.granularity
      expect(gb).toBe(gq)
      expect(gb).toBe(qemuDefaultGranularity(cs))
      expect(checkImage(p2).code).toBe(0)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Backing file, external data file

describe('backing file', () => {
  let base: Base
  beforeAll(async () => {
    base = await makeBase('backing', {
      name: 'overlay.qcow2', size: 256 * MiB, clusterSize: 64 * KiB, backing: { writes: randomWrites(71, 256 * MiB, 5, MiB) },
      bitmaps: [{ name: 'a', granularity: 64 * KiB, writes: randomWrites(72, 256 * MiB, 4, MiB) }, { name: 'f', granularity: 512, writes: randomWrites(73, 256 * MiB, 4, 64 * KiB) }],
    })
  })
  const keepsBacking = ({ path }: { path: string }): void => {
    const j = qemuInfo(path).json as { 'backing-filename'?: string; 'backing-filename-format'?: string }
    expect(j['backing-filename']).toBe('base.qcow2')
    expect(j['backing-filename-format']).toBe('qcow2')
  }
  it('add', async () => { await runScenario(base, { title: 'add', edits: [{ op: 'add', name: 'n', granularity: 4096 }], cli: [['bitmap', '--add', '-g', '4096', 'IMG', 'n']], after: keepsBacking }) })
  it('merge f into a', async () => { await runScenario(base, { title: 'merge', edits: [{ op: 'merge', name: 'a', source: 'f' }], cli: [['bitmap', '--merge', 'f', 'IMG', 'a']], after: keepsBacking }) })
  it('remove all', async () => {
    await runScenario(base, {
      title: 'remove all', edits: [{ op: 'remove', name: 'a' }, { op: 'remove', name: 'f' }], cli: [['bitmap', '--remove', 'IMG', 'a'], ['bitmap', '--remove', 'IMG', 'f']],
      after: (c) => { keepsBacking(c); qemuCanStillWrite(c.path) },
    })
  })
})

describe('external data file', () => {
  let base: Base
  beforeAll(async () => {
    base = await makeBase('datafile', {
      name: 'ext.qcow2', size: 64 * MiB, clusterSize: 4 * KiB, refcountBits: 8, dataFile: true,
      bitmaps: [{ name: 'a', granularity: 4096, writes: randomWrites(81, 64 * MiB, 5, 256 * KiB) }, { name: 'c', granularity: MiB, writes: randomWrites(82, 64 * MiB, 3, 256 * KiB) }],
    })
  })
  const keepsDataFile = ({ path }: { path: string }): void => {
    const j = qemuInfo(path).json as { 'format-specific'?: { data?: { 'data-file'?: string } } }
    expect(j['format-specific']?.data?.['data-file']).toBe('ext.qcow2.data')
  }
  it('add', async () => { await runScenario(base, { title: 'add', edits: [{ op: 'add', name: 'n' }], cli: [['bitmap', '--add', 'IMG', 'n']], after: keepsDataFile }) })
  it('clear c, merge a into c', async () => {
    await runScenario(base, { title: 'clear+merge', edits: [{ op: 'clear', name: 'c' }, { op: 'merge', name: 'c', source: 'a' }], cli: [['bitmap', '--clear', '--merge', 'a', 'IMG', 'c']], after: keepsDataFile })
  })
  it('remove all', async () => {
    await runScenario(base, {
      title: 'remove all', edits: [{ op: 'remove', name: 'a' }, { op: 'remove', name: 'c' }], cli: [['bitmap', '--remove', 'IMG', 'a'], ['bitmap', '--remove', 'IMG', 'c']],
      after: (c) => { keepsDataFile(c); qemuCanStillWrite(c.path) },
    })
  })
})

// ---------------------------------------------------------------------------------------------
// Internal snapshots (shared clusters, refcounts above 1), extended L2 + zstd

describe('internal snapshot (refcounts above 1 elsewhere in the image)', () => {
  let base: Base
  beforeAll(async () => {
    const built = await buildImage(freshDir('snapshot'), {
      name: 'snap.qcow2', size: 128 * MiB, clusterSize: 64 * KiB, refcountBits: 4,
      bitmaps: [{ name: 'a', granularity: 4096, writes: [[0, 2 * MiB]] }, { name: 'f', granularity: 512, writes: [[3 * MiB, 5000]] }],
    })
    mustTool('qemu-img', ['snapshot', '-c', 'snap1'], built.path)
    mustTool('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x21 ${MiB} ${2 * MiB}`], built.path)
    base = await makeBase('snapshot-base', { name: 'unused', size: 0, clusterSize: 64 * KiB, bitmaps: [] }, built)
  })
  it('add + merge, remove all; the snapshot still applies', async () => {
    await runScenario(base, { title: 'add+merge', edits: [{ op: 'add', name: 'n', granularity: 512 }, { op: 'merge', name: 'n', source: 'a' }], cli: [['bitmap', '--add', '-g', '512', '--merge', 'a', 'IMG', 'n']] })
    await runScenario(base, {
      title: 'remove all', edits: [{ op: 'remove', name: 'a' }, { op: 'remove', name: 'f' }], cli: [['bitmap', '--remove', 'IMG', 'a'], ['bitmap', '--remove', 'IMG', 'f']],
      after: ({ path }) => {
        qemuCanStillWrite(path)
        mustTool('qemu-img', ['snapshot', '-a', 'snap1'], path)
        expect(checkImage(path).code).toBe(0)
      },
    })
  })
})

describe('extended L2 entries and zstd compression (incompatible bits 3 and 4)', () => {
  let base: Base
  beforeAll(async () => {
    base = await makeBase('extl2', {
      name: 'extl2.qcow2', size: 256 * MiB, clusterSize: 64 * KiB, options: ['extended_l2=on', 'compression_type=zstd'],
      bitmaps: [{ name: 'a', granularity: 2048, writes: randomWrites(161, 256 * MiB, 5, MiB) }, { name: 'c', granularity: 256 * KiB, writes: randomWrites(162, 256 * MiB, 4, MiB) }],
    })
  })
  it('clear + merge + rename, remove all', async () => {
    await runScenario(base, { title: 'clear+merge+rename', edits: [{ op: 'clear', name: 'c' }, { op: 'merge', name: 'c', source: 'a' }, { op: 'rename', name: 'c', newName: 'c2' }], cli: [['bitmap', '--clear', '--merge', 'a', '--rename', 'c2', 'IMG', 'c']] })
    await runScenario(base, { title: 'remove all', edits: [{ op: 'remove', name: 'a' }, { op: 'remove', name: 'c' }], cli: [['bitmap', '--remove', 'IMG', 'a'], ['bitmap', '--remove', 'IMG', 'c']], after: ({ path }) => qemuCanStillWrite(path) })
  })
})

// ---------------------------------------------------------------------------------------------
// Nearly full refcount structures: a new refcount block, a moved refcount table

describe('refcount structures nearly full (512-byte clusters, 64-bit refcounts: 64 clusters per block, 64 blocks per table cluster)', () => {
  const planEdge = (img: Image): Promise<Plan> => planEdits(img, EDGE_EDITS)
  let refblockEdge: Base
  let reftableEdge: Base
  beforeAll(async () => {
    refblockEdge = await makeBase('refblock-edge', edgeSpec('refblock', 'refblock-edge.qcow2', planEdge))
    reftableEdge = await makeBase('reftable-edge', edgeSpec('reftable', 'reftable-edge.qcow2', planEdge))
  })

  it('calibration: the edit needs a new refcount block / a bigger refcount table', async () => {
    const rb = await reftableOf(refblockEdge.built.path)
    const rt = await reftableOf(reftableEdge.built.path)
    expect(rt.clusters).toBe(1)
    expect(rt.blocks).toBe(64)
    expect(rb.clusters).toBe(1)
    console.log(`[edits] calibration: refblock edge after ${refblockEdge.built.fillSteps} fill steps (${rb.blocks} refblocks), reftable edge after ${reftableEdge.built.fillSteps} steps (${rt.blocks} refblocks, table full)`)
  })

  it('the edit on the refblock edge adds a refcount block that QEMU accepts', async () => {
    const pre = await reftableOf(refblockEdge.built.path)
    await runScenario(refblockEdge, {
      title: 'add+merge (new refblock)', edits: EDGE_EDITS, cli: EDGE_CLI,
      after: async ({ path, enginePath, plan }) => {
        expect(planAddsRefblock(plan.writes)).toBe(true)
        for (const p of [path, enginePath]) {
          const post = await reftableOf(p)
          expect(post.offset).toBe(pre.offset)
          expect(post.blocks).toBeGreaterThan(pre.blocks)
        }
      },
    })
  })

  it('the edit on the reftable edge grows and moves the refcount table (header switch), old table freed', async () => {
    const pre = await reftableOf(reftableEdge.built.path)
    await runScenario(reftableEdge, {
      title: 'add+merge (reftable moves)', edits: EDGE_EDITS, cli: EDGE_CLI,
      after: async ({ path, enginePath }) => {
        for (const p of [path, enginePath]) {
          const post = await reftableOf(p)
          expect(post.offset, 'refcount_table_offset').not.toBe(pre.offset)
          expect(post.clusters, 'refcount_table_clusters').toBeGreaterThan(pre.clusters)
          expect(post.blocks).toBeGreaterThan(pre.blocks)
          // QEMU keeps working with the moved table: write new clusters, check again.
          const n1 = nbdMap(p, 'n1')
          mustTool('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x42 ${7 * MiB} ${256 * KiB}`], p)
          const c = checkImage(p)
          expect(c.code, c.output).toBe(0)
          expect(nbdMap(p, 'n1')).toEqual(union(n1, [{ offset: 7 * MiB, length: 256 * KiB }]))
        }
      },
    })
  })

  it('small edits on the reftable edge (add, remove all)', async () => {
    await runScenario(reftableEdge, { title: 'add', edits: [{ op: 'add', name: 'new' }], cli: [['bitmap', '--add', 'IMG', 'new']] })
    await runScenario(reftableEdge, {
      title: 'remove all', edits: [{ op: 'remove', name: 'a' }, { op: 'remove', name: 'c' }], cli: [['bitmap', '--remove', 'IMG', 'a'], ['bitmap', '--remove', 'IMG', 'c']],
      after: ({ path }) => qemuCanStillWrite(path),
    })
  })
})

// ---------------------------------------------------------------------------------------------
// In-use bitmaps (a writer killed with SIGKILL), also after resizing the disk while in use

describe('in-use bitmaps (writer killed)', () => {
  let base: Base
  beforeAll(async () => {
    base = await makeBase('inuse', {
      name: 'inuse.qcow2', size: 512 * MiB, clusterSize: 64 * KiB,
      bitmaps: [
        { name: 'a', granularity: 64 * KiB, writes: randomWrites(101, 512 * MiB, 5, MiB) },
        { name: 'b', granularity: 4 * KiB, writes: randomWrites(102, 512 * MiB, 4, MiB), disabled: true },
        { name: 'f', granularity: 512, writes: randomWrites(103, 512 * MiB, 4, 64 * KiB) },
      ],
      inUse: { writes: [[0, MiB], [300 * MiB, 3 * MiB]] },
    })
  })
  it('QEMU lists them as in-use and refuses to export them', () => {
    expect(base.pre.bitmaps.every((b) => b.flags.includes('in-use'))).toBe(true)
    expect(() => nbdMap(base.built.path, 'a')).toThrow(/inconsistent/)
  })
  it('remove an in-use bitmap with --force', async () => {
    await runScenario(base, { title: 'remove in-use', force: true, edits: [{ op: 'remove', name: 'b' }], cli: [['bitmap', '--remove', '--force', 'IMG', 'b']] })
  })
  for (const mode of ['keep', 'dirty', 'empty'] as const) {
    it(`--clear-in-use=${mode}`, async () => {
      await runScenario(base, {
        title: `clear-in-use ${mode}`, force: true, edits: [{ op: 'clear-in-use', name: 'a', mode }, { op: 'clear-in-use', name: 'f', mode }],
        cli: [['bitmap', `--clear-in-use=${mode}`, '--force', 'IMG', 'a'], ['bitmap', `--clear-in-use=${mode}`, '--force', 'IMG', 'f']],
      })
    })
  }
  it('clear-in-use then use the bitmap in the same call (--clear-in-use=empty --merge a --enable)', async () => {
    await runScenario(base, {
      title: 'clear-in-use + merge', force: true,
      edits: [{ op: 'clear-in-use', name: 'a', mode: 'keep' }, { op: 'clear-in-use', name: 'b', mode: 'empty' }, { op: 'merge', name: 'b', source: 'a' }, { op: 'enable', name: 'b' }],
      cli: [['bitmap', '--clear-in-use=keep', '--force', 'IMG', 'a'], ['bitmap', '--clear-in-use=empty', '--merge', 'a', '--enable', '--force', 'IMG', 'b']],
    })
  })
  it('drop all bitmaps (repair) on an in-use image', async () => {
    await runScenario(base, { title: 'drop-all in-use', repair: 'drop-all-bitmaps', cli: [['repair', 'IMG', '--drop-all-bitmaps']], after: ({ path }) => qemuCanStillWrite(path) })
  })
})

describe('in-use bitmaps whose table no longer matches the disk (resized while in use)', () => {
  for (const [label, truncate] of [['grown', 16 * MiB], ['shrunk', 3 * MiB]] as const) {
    describe(label, () => {
      let base: Base
      beforeAll(async () => {
        base = await makeBase(`resized-${label}`, {
          name: `resized-${label}.qcow2`, size: 8 * MiB, clusterSize: 512, refcountBits: 16,
          bitmaps: [
            { name: 'a', granularity: 512, writes: [[0, 4096], [2 * MiB + 100, 1000], [7 * MiB, 64 * KiB]] },
            { name: 'c', granularity: 64 * KiB, writes: [[5 * MiB, 512]] },
          ],
          inUse: { writes: [[MiB, 4096]], truncate },
        })
      })
      it('qbm sees the stale table size', async () => {
        const q = await qbmState(base.built.path)
        expect(q.bitmaps.map((b) => b.status)).toEqual(['in-use', 'in-use'])
        const img = await openImage(new MemoryDevice(new Uint8Array(readFileSync(base.built.path))))
        const a = img.bitmaps[0]!
        expect(a.tableSize).not.toBe(a.expectedTableSize)
        expect(qemuInfo(base.built.path).json['virtual-size']).toBe(truncate)
      })
      for (const mode of ['keep', 'dirty', 'empty'] as const) {
        it(`--clear-in-use=${mode} rebuilds the table at the new size`, async () => {
          await runScenario(base, {
            title: `clear-in-use ${mode} (${label})`, force: true,
            edits: [{ op: 'clear-in-use', name: 'a', mode }, { op: 'clear-in-use', name: 'c', mode }],
            cli: [['bitmap', `--clear-in-use=${mode}`, '--force', 'IMG', 'a'], ['bitmap', `--clear-in-use=${mode}`, '--force', 'IMG', 'c']],
            after: async ({ path }) => {
              const img = await openImage(new MemoryDevice(new Uint8Array(readFileSync(path))))
              for (const b of img.bitmaps) expect(b.tableSize, b.name).toBe(b.expectedTableSize)
            },
          })
        })
      }
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Repairs

describe('repair', () => {
  let multi: Base
  let untrusted: Base
  let untrustedPath: string
  beforeAll(async () => {
    multi = await makeBase('repair-multi', {
      name: 'multi.qcow2', size: 64 * MiB, clusterSize: 4 * KiB, refcountBits: 2,
      bitmaps: [
        { name: 'a', granularity: 4 * KiB, writes: randomWrites(111, 64 * MiB, 5, 512 * KiB) },
        { name: 'b', granularity: 512, writes: randomWrites(112, 64 * MiB, 5, 64 * KiB), disabled: true },
        { name: 'c', granularity: MiB, writes: randomWrites(113, 64 * MiB, 5, 512 * KiB) },
      ],
    })
    // Untrusted: a program without bitmap support "modified" the image (autoclear bit 0 cleared).
    const u = await buildImage(freshDir('untrusted'), {
      name: 'untrusted.qcow2', size: 32 * MiB + 512, clusterSize: 512, refcountBits: 1,
      bitmaps: [
        { name: 'a', granularity: 512, writes: randomWrites(121, 32 * MiB, 4, 64 * KiB) },
        { name: 'd', granularity: 64 * KiB, writes: randomWrites(122, 32 * MiB, 4, 64 * KiB), disabled: true },
      ],
    })
    setAutoclearBit0(u.path, false)
    untrustedPath = u.path
    const c = checkImage(u.path)
    expect(c.code, c.output).toBe(3) // QEMU ignores the extension: its clusters show as leaks
    expect(qemuInfo(u.path).bitmaps).toEqual([])
    untrusted = { built: u, pre: { check: 3, checkOutput: c.output, bitmaps: [], maps: {}, sha: {} }, state: startState(u.model), cs: 512 }
  })

  it('--drop-all-bitmaps', async () => {
    await runScenario(multi, { title: 'drop-all', repair: 'drop-all-bitmaps', cli: [['repair', 'IMG', '--drop-all-bitmaps']], after: ({ path }) => qemuCanStillWrite(path) })
  })
  it('--drop-all-bitmaps on an untrusted extension frees its clusters (no leaks left)', async () => {
    await runScenario(untrusted, { title: 'drop-all untrusted', repair: 'drop-all-bitmaps', cli: [['repair', 'IMG', '--drop-all-bitmaps']], after: ({ path }) => qemuCanStillWrite(path) })
  })
  it('--drop-all-bitmaps on metadata QEMU refuses (a directory entry with flag bit 2) makes the image usable again', async () => {
    const dir = freshDir('invalid-meta')
    const built = await buildImage(dir, { name: 'bad.qcow2', size: 64 * MiB, clusterSize: 4096, bitmaps: [{ name: 'a', writes: [[0, MiB]] }, { name: 'b', granularity: 512, writes: [[MiB, 512]] }] })
    const { img } = { img: await openImage(new MemoryDevice(new Uint8Array(readFileSync(built.path)))) }
    const entry = img.bitmaps[1]!.entry.offset
    const bytes = readFileSync(built.path)
    bytes.writeUInt32BE(bytes.readUInt32BE(entry + 12) | 4, entry + 12)
    writeFileSync(built.path, bytes)
    expect(checkImage(built.path).code).toBe(1) // QEMU cannot even open it
    const before = sha256File(built.path)
    const r1 = qbm(['bitmap', '--add', 'bad.qcow2', 'x'], { cwd: dir })
    expect(r1.code).toBe(1)
    expect(r1.stderr).toMatch(/only repair/)
    expect(qbm(['repair', 'bad.qcow2', '--retrust'], { cwd: dir }).code).toBe(1)
    expect(sha256File(built.path)).toBe(before)
    const r = qbm(['repair', 'bad.qcow2', '--drop-all-bitmaps'], { cwd: dir })
    expect(r.code, r.stderr).toBe(0)
    const c = checkImage(built.path)
    expect(c.code, c.output).toBe(0)
    qemuCanStillWrite(built.path)
  })
  it('--drop-all-bitmaps on a qcow2 v2 image that still carries a bitmaps extension (qemu-img amend -o compat=0.10)', async () => {
    const dir = freshDir('v2-ext')
    const built = await buildImage(dir, { name: 'v2.qcow2', size: 64 * MiB, clusterSize: 64 * KiB, bitmaps: [{ name: 'a', writes: [[0, MiB]] }, { name: 'f', granularity: 512, writes: [[MiB, 512]] }] })
    mustTool('qemu-img', ['amend', '-o', 'compat=0.10'], built.path)
    const pre = checkImage(built.path)
    expect(pre.code, pre.output).toBe(3) // QEMU ignores the extension; its clusters show as leaks
    const q0 = await qbmState(built.path)
    expect(q0.bitmaps.map((b) => b.status)).toEqual(['untrusted', 'untrusted'])
    const before = sha256File(built.path)
    expect(qbm(['bitmap', '--remove', 'v2.qcow2', 'a'], { cwd: dir }).code).toBe(1)
    expect(qbm(['repair', 'v2.qcow2', '--retrust'], { cwd: dir }).code).toBe(1)
    expect(sha256File(built.path)).toBe(before)
    const r = qbm(['repair', 'v2.qcow2', '--drop-all-bitmaps'], { cwd: dir })
    expect(r.code, r.stderr).toBe(0)
    const c = checkImage(built.path)
    expect(c.code, c.output).toBe(0)
    expect(c.output).not.toMatch(/warning/)
    const q = await qbmState(built.path)
    expect(q.hasExtension).toBe(false)
    const hdr = readFileSync(built.path)
    expect(hdr.readUInt32BE(4)).toBe(2)
    expect((qemuInfo(built.path).json as { 'format-specific'?: { data?: { compat?: string } } })['format-specific']?.data?.compat).toBe('0.10')
    mustTool('qemu-io', ['-f', 'qcow2', '-c', 'write 0 64k'], built.path)
    expect(checkImage(built.path).code).toBe(0)
  })
  it('--retrust marks every bitmap fully dirty and sets autoclear bit 0', async () => {
    expect(untrustedPath).toBeTruthy()
    await runScenario(untrusted, { title: 'retrust', repair: 'retrust', cli: [['repair', 'IMG', '--retrust']] })
  })
  it('--fix-autoclear clears bit 0 set without an extension; QEMU can write afterwards', async () => {
    const dir = freshDir('fix-autoclear')
    const built = await buildImage(dir, { name: 'fix.qcow2', size: 16 * MiB, clusterSize: 64 * KiB, bitmaps: [], writes: [[0, 4096]] })
    setAutoclearBit0(built.path, true)
    expect((await qbmState(built.path)).autoclearBit0).toBe(true)
    const base: Base = { built, pre: qemuSnapshot(built.path), state: [], cs: 64 * KiB }
    await runScenario(base, { title: 'fix-autoclear', repair: 'fix-autoclear', cli: [['repair', 'IMG', '--fix-autoclear']], after: ({ path }) => qemuCanStillWrite(path) })
  })
  it('the trap itself: without the fix QEMU marks such an image corrupt on its first write', () => {
    const dir = freshDir('trap')
    const p = join(dir, 'trap.qcow2')
    qemuImgCreate(p, 16 * MiB, ['cluster_size=65536'])
    setAutoclearBit0(p, true)
    tool('qemu-io', ['-f', 'qcow2', '-c', 'write 0 64k'], p)
    expect(qemuInfo(p).corrupt).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------
// Merge from another image of the same size (-b)

describe('merge from another image (-b SOURCE_IMAGE)', () => {
  for (const [label, cs, size] of [['c64k', 64 * KiB, 256 * MiB], ['c512', 512, 4 * MiB]] as const) {
    it(`${label}: same and different granularities`, async () => {
      const spec = (name: string, seed: number): EditImageSpec => ({
        name, size, clusterSize: cs,
        bitmaps: [
          { name: 'a', granularity: 4096, writes: randomWrites(seed, size, 5, size / 64) },
          { name: 'f', granularity: 512, writes: randomWrites(seed + 1, size, 5, size / 256) },
        ],
      })
      const target = await makeBase(`xmerge-t-${label}`, spec('target.qcow2', 131))
      const source = await makeBase(`xmerge-s-${label}`, spec('source.qcow2', 141))
      await runScenario(target, {
        title: 'merge -b', sources: { 'src.qcow2': source },
        edits: [{ op: 'merge', name: 'a', source: 'a', sourceKey: 'src.qcow2' }, { op: 'merge', name: 'f', source: 'a', sourceKey: 'src.qcow2' }],
        cli: [['bitmap', '--merge', 'a', '-b', 'src.qcow2', 'IMG', 'a'], ['bitmap', '--merge', 'a', '-b', 'src.qcow2', 'IMG', 'f']],
      })
      await runScenario(target, {
        title: 'merge -b fine into coarse', sources: { 'src.qcow2': source },
        edits: [{ op: 'merge', name: 'a', source: 'f', sourceKey: 'src.qcow2' }],
        cli: [['bitmap', '--merge', 'f', '-b', 'src.qcow2', 'IMG', 'a']],
      })
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Round trip with a real writer

describe('round trip: qbm adds, qemu-io writes, qbm and nbdinfo see exactly those writes', () => {
  const cases: Array<{ label: string; spec: EditImageSpec; g: number }> = [
    { label: 'c512-r64', spec: { name: 'rt1.qcow2', size: 4 * MiB, clusterSize: 512, refcountBits: 64, bitmaps: [{ name: 'old', granularity: 512, writes: [[0, 512]] }] }, g: 512 },
    { label: 'c4k-r1', spec: { name: 'rt2.qcow2', size: 64 * MiB, clusterSize: 4096, refcountBits: 1, bitmaps: [] }, g: 16 * KiB },
    { label: 'c64k', spec: { name: 'rt3.qcow2', size: GiB, clusterSize: 64 * KiB, bitmaps: [{ name: 'old', writes: [[5, 5]] }] }, g: 0 },
    { label: 'c2m-r8', spec: { name: 'rt4.qcow2', size: 4 * GiB, clusterSize: 2 * MiB, refcountBits: 8, bitmaps: [] }, g: 1 * MiB },
    { label: 'data file', spec: { name: 'rt5.qcow2', size: 64 * MiB, clusterSize: 4096, dataFile: true, bitmaps: [] }, g: 4096 },
    { label: 'backing', spec: { name: 'rt6.qcow2', size: 64 * MiB, clusterSize: 64 * KiB, backing: { writes: [[0, MiB]] }, bitmaps: [] }, g: 512 },
  ]
  for (const c of cases) {
    it(c.label, async () => {
      const built = await buildImage(freshDir(`rt-${c.label}`), c.spec)
      const L = built.length
      const args = ['bitmap', '--add', ...(c.g ? ['-g', String(c.g)] : []), basename(built.path), 'new']
      expect(qbm(args, { cwd: built.dir }).code).toBe(0)
      expect(qbm(['bitmap', '--add', '--disable', basename(built.path), 'off'], { cwd: built.dir }).code).toBe(0)
      const writes = [...randomWrites(151, L, 6, Math.min(L / 16, 2 * MiB)), [L - 700, 700] as [number, number], [L / 2 + 3, 1] as [number, number]]
      mustTool('qemu-io', ['-f', 'qcow2', ...writes.flatMap(([o, l]) => ['-c', `write -P 0x9 ${o} ${l}`])], built.path)
      const g = c.g || qemuDefaultGranularity(c.spec.clusterSize)
      const want = writesToExtents(writes, g, L)
      expect(nbdMap(built.path, 'new')).toEqual(want)
      expect(nbdMap(built.path, 'off')).toEqual([])
      const r = qbm(['map', '--output=json', basename(built.path), 'new'], { cwd: built.dir })
      expect(r.code, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout) as Extent[]).toEqual(want)
      const c2 = checkImage(built.path)
      expect(c2.code, c2.output).toBe(0)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Refusals: exit 1, one line on stderr, the file byte-identical

describe('refusals leave the file byte-identical', () => {
  let dir: string
  let std: string
  let inuse: string
  let v2: string
  let zero: string
  let huge: string
  let other: string
  let lazy: string
  let corrupt: string
  beforeAll(async () => {
    dir = freshDir('refusals')
    std = (await buildImage(dir, {
      name: 'std.qcow2', size: 64 * MiB, clusterSize: 64 * KiB,
      bitmaps: [{ name: 'a', writes: [[0, 4096]] }, { name: 'b', granularity: 512, disabled: true }],
    })).path
    inuse = (await buildImage(dir, { name: 'inuse.qcow2', size: 64 * MiB, clusterSize: 4096, bitmaps: [{ name: 'a' }, { name: 'b' }], inUse: {} })).path
    v2 = join(dir, 'v2.qcow2')
    qemuImgCreate(v2, 64 * MiB, ['compat=0.10'])
    zero = join(dir, 'zero.qcow2')
    qemuImgCreate(zero, 0, ['cluster_size=65536'])
    huge = join(dir, 'huge.qcow2')
    qemuImgCreate(huge, 4 * 1024 * GiB, ['cluster_size=65536'])
    other = (await buildImage(dir, { name: 'other.qcow2', size: 32 * MiB, clusterSize: 64 * KiB, bitmaps: [{ name: 'a' }] })).path
    // lazy refcounts and a killed writer: the dirty bit stays set
    lazy = (await buildImage(dir, { name: 'lazy.qcow2', size: 32 * MiB, clusterSize: 64 * KiB, options: ['lazy_refcounts=on'], bitmaps: [{ name: 'a' }], inUse: {} })).path
    expect(readFileSync(lazy).readBigUInt64BE(72) & 1n).toBe(1n)
    corrupt = (await buildImage(dir, { name: 'corrupt.qcow2', size: 32 * MiB, clusterSize: 64 * KiB, bitmaps: [{ name: 'a' }] })).path
    const cb = readFileSync(corrupt)
    cb.writeBigUInt64BE(cb.readBigUInt64BE(72) | 2n, 72)
    writeFileSync(corrupt, cb)
  })

  const cases: Array<{ title: string; file: () => string; args: string[]; edits?: Edit[]; force?: boolean; re: RegExp }> = [
    { title: 'name taken', file: () => std, args: ['--add', 'a'], edits: [{ op: 'add', name: 'a' }], re: /already exists/ },
    { title: 'empty name', file: () => std, args: ['--add', ''], edits: [{ op: 'add', name: '' }], re: /empty/ },
    { title: 'name of 1024 bytes', file: () => std, args: ['--add', 'n'.repeat(1024)], edits: [{ op: 'add', name: 'n'.repeat(1024) }], re: /exceeds maximum/ },
    { title: 'name of 1024 bytes in UTF-8 (512 characters)', file: () => std, args: ['--add', 'é'.repeat(512)], edits: [{ op: 'add', name: 'é'.repeat(512) }], re: /exceeds maximum/ },
    { title: 'granularity not a power of 2', file: () => std, args: ['--add', '-g', '1536', 'x'], edits: [{ op: 'add', name: 'x', granularity: 1536 }], re: /power of 2/ },
    { title: 'granularity below 512', file: () => std, args: ['--add', '-g', '256', 'x'], edits: [{ op: 'add', name: 'x', granularity: 256 }], re: /power of 2 and at least 512/ },
    { title: 'granularity above 2 GiB', file: () => std, args: ['--add', '-g', '4G', 'x'], edits: [{ op: 'add', name: 'x', granularity: 4 * GiB }], re: /too big|Granularity/ },
    { title: 'bitmap data over 512 MiB (4 TiB disk, -g 512)', file: () => huge, args: ['--add', '-g', '512', 'x'], edits: [{ op: 'add', name: 'x', granularity: 512 }], re: /Too much space/ },
    { title: 'zero-length disk', file: () => zero, args: ['--add', 'x'], edits: [{ op: 'add', name: 'x' }], re: /length is 0/ },
    { title: 'qcow2 v2', file: () => v2, args: ['--add', 'x'], edits: [{ op: 'add', name: 'x' }], re: /v2/ },
    { title: 'in use without --force', file: () => inuse, args: ['--remove', 'a'], edits: [{ op: 'remove', name: 'a' }], re: /in use.*--force/ },
    { title: 'add on an in-use image without --force', file: () => inuse, args: ['--add', 'x'], edits: [{ op: 'add', name: 'x' }], re: /--force/ },
    { title: 'enable an in-use bitmap', file: () => inuse, args: ['--enable', '--force', 'a'], edits: [{ op: 'enable', name: 'a' }], force: true, re: /inconsistent/ },
    { title: 'disable an in-use bitmap', file: () => inuse, args: ['--disable', '--force', 'a'], edits: [{ op: 'disable', name: 'a' }], force: true, re: /inconsistent/ },
    { title: 'clear an in-use bitmap', file: () => inuse, args: ['--clear', '--force', 'a'], edits: [{ op: 'clear', name: 'a' }], force: true, re: /inconsistent/ },
    { title: 'merge into an in-use bitmap', file: () => inuse, args: ['--merge', 'b', '--force', 'a'], edits: [{ op: 'merge', name: 'a', source: 'b' }], force: true, re: /inconsistent/ },
    { title: 'merge from an in-use bitmap', file: () => inuse, args: ['--add', '--merge', 'b', '--force', 'x'], edits: [{ op: 'add', name: 'x' }, { op: 'merge', name: 'x', source: 'b' }], force: true, re: /inconsistent/ },
    { title: 'clear-in-use of a bitmap not in use', file: () => std, args: ['--clear-in-use=keep', 'a'], edits: [{ op: 'clear-in-use', name: 'a', mode: 'keep' }], re: /not in use/ },
    { title: 'bitmap not found (remove)', file: () => std, args: ['--remove', 'nope'], edits: [{ op: 'remove', name: 'nope' }], re: /not found/ },
    { title: 'bitmap not found (merge source)', file: () => std, args: ['--merge', 'nope', 'a'], edits: [{ op: 'merge', name: 'a', source: 'nope' }], re: /not found/ },
    { title: 'rename to a taken name', file: () => std, args: ['--rename', 'b', 'a'], edits: [{ op: 'rename', name: 'a', newName: 'b' }], re: /already exists/ },
    { title: 'a later action fails: nothing of the earlier ones is written', file: () => std, args: ['--add', '--add', 'x'], edits: [{ op: 'add', name: 'x' }, { op: 'add', name: 'x' }], re: /already exists/ },
    { title: 'merge -b from an image of another size', file: () => std, args: ['--merge', 'a', '-b', 'other.qcow2', 'a'], re: /size/ },
    { title: 'remove from an image without bitmaps', file: () => v2, args: ['--remove', 'x'], re: /v2|not found/ },
    { title: 'dirty bit set (lazy refcounts, writer killed)', file: () => lazy, args: ['--remove', '--force', 'a'], edits: [{ op: 'remove', name: 'a' }], force: true, re: /dirty bit/ },
    { title: 'corrupt bit set', file: () => corrupt, args: ['--add', 'x'], edits: [{ op: 'add', name: 'x' }], re: /corrupt/ },
  ]

  for (const c of cases) {
    it(c.title, async () => {
      const file = c.file()
      const name = c.args[c.args.length - 1]!
      const before = sha256File(file)
      const r = qbm(['bitmap', ...c.args.slice(0, -1), basename(file), name], { cwd: dir })
      expect(r.code, r.stderr).toBe(1)
      const lines = r.stderr.split('\n').filter((l) => l !== '')
      expect(lines.length, r.stderr).toBe(1)
      expect(r.stderr).toMatch(c.re)
      expect(r.stdout).toBe('')
      expect(sha256File(file), 'file changed by a refused edit').toBe(before)
      if (c.edits) {
        const img = await openImage(new MemoryDevice(new Uint8Array(readFileSync(file))))
        await expect(planEdits(img, c.edits, { force: c.force ?? false })).rejects.toBeInstanceOf(ConstraintError)
      }
    })
  }

  it('repair refusals', async () => {
    for (const [file, mode, re] of [[std, '--retrust', /no untrusted/], [std, '--fix-autoclear', /not set without/], [v2, '--drop-all-bitmaps', /v2|no bitmaps/], [lazy, '--drop-all-bitmaps', /dirty bit/], [corrupt, '--drop-all-bitmaps', /corrupt/]] as const) {
      const before = sha256File(file)
      const r = qbm(['repair', basename(file), mode], { cwd: dir })
      expect(r.code, r.stderr).toBe(1)
      expect(r.stderr.trim().split('\n').length).toBe(1)
      expect(r.stderr).toMatch(re)
      expect(sha256File(file)).toBe(before)
    }
  })

  it('the refusing image is unchanged for QEMU too', () => {
    expect(checkImage(std).code).toBe(0)
    expect(qemuInfo(std).bitmaps.map((b) => b.name)).toEqual(['a', 'b'])
    writeFileSync(join(dir, 'done'), '')
  })
})
