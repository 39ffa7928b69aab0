/**
 * Images for edit tests, made by QEMU's own tools (qemu-img create / bitmap, qemu-io writes),
 * with a model of what every bitmap must contain. Builders cover the interop matrix: cluster
 * size, refcount width, several bitmaps of different granularities with their own writes,
 * disabled bitmaps, backing files, external data files, writers killed while the bitmaps were
 * in use (optionally after resizing the disk), and images calibrated so that the next edit
 * must add a refcount block or grow and move the refcount table.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { type Header, type Image, openImage } from '../engine/index.js'
import { loadRefcounts, setRefcountEntry } from '../engine/qcow2/refcount.js'
import { MemoryDevice } from '../io/memory.js'
import { type Extent, mustTool, tool, writesToExtents } from './edit-oracle.js'
import { Rng } from './prng.js'

export type Write = [offset: number, length: number]

export interface BitmapSpec {
  name: string
  granularity?: number
  /** disabled after its own writes (so it holds data but records nothing later) */
  disabled?: boolean
  /** writes made right after this bitmap was added (they dirty it and every earlier enabled one) */
  writes?: Write[]
}

export interface EditImageSpec {
  /** file name inside the directory */
  name: string
  size: number
  clusterSize: number
  refcountBits?: number
  /** qcow2 v2 (compat=0.10) */
  v2?: boolean
  /** more qemu-img create -o options */
  options?: string[]
  /** backing file base.qcow2 in the same directory, with these writes */
  backing?: { writes: Write[] }
  /** external data file NAME.data (relative name) */
  dataFile?: boolean
  bitmaps: BitmapSpec[]
  /** writes after every bitmap exists */
  writes?: Write[]
  /**
   * Calibration: write fresh guest clusters (from guest offset `from`, first in one step up to
   * host cluster `coarseTo`, then one cluster per step) until `until` holds for the image.
   */
  fill?: { from: number; coarseTo?: number; until: (img: Image, bytes: Uint8Array) => Promise<boolean>; maxSteps?: number }
  /** finally: a writer opens the image, writes (and resizes), and is killed: bitmaps left in use */
  inUse?: { writes?: Write[]; truncate?: number }
}

export interface ModelBitmap {
  name: string
  granularity: number
  flags: string[]
  /** dirty extents QEMU stored (the last clean save); for in-use bitmaps the stale data */
  extents: Extent[]
}

export interface BuiltImage {
  spec: EditImageSpec
  dir: string
  path: string
  /** disk length after the build (after an in-use truncate) */
  length: number
  /** bitmaps as the model says they are (flags include in-use after an inUse step) */
  model: ModelBitmap[]
  /** extra files the image needs (backing file, data file), relative to dir */
  companions: string[]
  fillSteps: number
}

export function qemuImgCreate(path: string, size: number, opts: string[], extra: string[] = []): void {
  mustTool('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', opts.join(','), ...extra], path, [String(size)])
}

/**
 * Guest writes through qemu-io. By default `write -z` (zero writes dirty bitmaps like any
 * write but store no data for whole clusters, which keeps files small); `data` stores a pattern.
 */
export function qemuIoWrites(path: string, writes: Write[], mode: 'zero' | 'data' = 'zero'): void {
  if (writes.length === 0) return
  const cmds = writes.flatMap(([o, l]) => ['-c', mode === 'zero' ? `write -z ${o} ${l}` : `write -P 0x5a ${o} ${l}`])
  // qemu-io prints a line per write; keep argument lists bounded.
  for (let i = 0; i < cmds.length; i += 400) mustTool('qemu-io', ['-f', 'qcow2', ...cmds.slice(i, i + 400)], path)
}

/** Default granularity QEMU picks (cluster size clamped to 4 KiB..64 KiB). */
export function qemuDefaultGranularity(cs: number): number {
  return Math.min(65536, Math.max(4096, cs))
}

/** Build the image described by `spec` in `dir`. */
export async function buildImage(dir: string, spec: EditImageSpec): Promise<BuiltImage> {
  mkdirSync(dir, { recursive: true })
  const path = join(dir, spec.name)
  const cs = spec.clusterSize
  const companions: string[] = []
  const opts = [`cluster_size=${cs}`]
  if (spec.refcountBits) opts.push(`refcount_bits=${spec.refcountBits}`)
  if (spec.v2) opts.push('compat=0.10')
  if (spec.options) opts.push(...spec.options)
  if (spec.dataFile) { opts.push(`data_file=${spec.name}.data`); companions.push(`${spec.name}.data`) }
  const extra: string[] = []
  if (spec.backing) {
    const base = join(dir, 'base.qcow2')
    if (!existsSync(base)) {
      qemuImgCreate(base, spec.size, ['cluster_size=65536'])
      qemuIoWrites(base, spec.backing.writes, 'data')
    }
    extra.push('-b', 'base.qcow2', '-F', 'qcow2')
    companions.push('base.qcow2')
  }
  qemuImgCreate(path, spec.size, opts, extra)
  let L = Math.floor(spec.size / 512) * 512
  const live: Array<{ spec: BitmapSpec; g: number; enabled: boolean; writes: Write[] }> = []
  const record = (ws: Write[]): void => { for (const b of live) if (b.enabled) b.writes.push(...ws) }
  for (const b of spec.bitmaps) {
    mustTool('qemu-img', ['bitmap', '-f', 'qcow2', '--add', ...(b.granularity ? ['-g', String(b.granularity)] : [])], path, [b.name])
    live.push({ spec: b, g: b.granularity ?? qemuDefaultGranularity(cs), enabled: true, writes: [] })
    if (b.writes?.length) { qemuIoWrites(path, b.writes); record(b.writes) }
    if (b.disabled) {
      mustTool('qemu-img', ['bitmap', '-f', 'qcow2', '--disable'], path, [b.name])
      live[live.length - 1]!.enabled = false
    }
  }
  if (spec.writes?.length) { qemuIoWrites(path, spec.writes); record(spec.writes) }
  let fillSteps = 0
  if (spec.fill) {
    const f = spec.fill
    let cursor = f.from
    for (;;) {
      const bytes = new Uint8Array(readFileSync(path))
      const img = await openImage(new MemoryDevice(bytes))
      if (await f.until(img, bytes)) break
      if (++fillSteps > (f.maxSteps ?? 400)) throw new Error(`calibration of ${spec.name} did not converge`)
      let n = 1
      if (f.coarseTo !== undefined) {
        const rc = await loadRefcounts(img.device, img.header)
        let highest = 0
        for (let c = rc.counts.length - 1; c >= 0; c--) if (rc.counts[c]! > 0) { highest = c; break }
        // Each guest cluster costs about one host cluster plus L2 and refcount overhead.
        n = Math.max(1, Math.floor((f.coarseTo - highest) * 0.9))
      }
      if (cursor + n * cs > L) throw new Error(`calibration of ${spec.name} ran out of disk`)
      const w: Write = [cursor, n * cs]
      cursor += n * cs
      qemuIoWrites(path, [w], 'data')
      record([w])
    }
  }
  const model: ModelBitmap[] = live.map((b) => ({
    name: b.spec.name, granularity: b.g, flags: b.enabled ? ['auto'] : [], extents: writesToExtents(b.writes, b.g, L),
  }))
  if (spec.inUse) {
    const cmds = (spec.inUse.writes ?? [[0, 65536]]).flatMap(([o, l]) => ['-c', `write -P 0x77 ${o} ${l}`])
    if (spec.inUse.truncate) cmds.push('-c', `truncate ${spec.inUse.truncate}`)
    cmds.push('-c', 'sigraise 9')
    const r = tool('qemu-io', ['-f', 'qcow2', ...cmds], path)
    if (r.code === 0) throw new Error(`qemu-io was expected to die by SIGKILL: ${r.stdout}`)
    if (spec.inUse.truncate) L = Math.floor(spec.inUse.truncate / 512) * 512
    for (const m of model) m.flags = [...m.flags, 'in-use'].sort()
  }
  return { spec, dir, path, length: L, model, companions, fillSteps }
}

/** Copy an image (and its backing / data file) into a fresh directory; returns the new path. */
export function copyImage(b: BuiltImage, destDir: string, name = basename(b.path)): string {
  mkdirSync(destDir, { recursive: true })
  const dest = join(destDir, name)
  copyFileSync(b.path, dest)
  for (const c of b.companions) {
    // The data file name is fixed in the header (relative to the cwd): keep it.
    copyFileSync(join(b.dir, c), join(destDir, c))
  }
  return dest
}

/** Write bytes as an image next to the companions of `b` (crash tests). */
export function writeImageLike(b: BuiltImage, destDir: string, name: string, bytes: Uint8Array): string {
  mkdirSync(destDir, { recursive: true })
  const dest = join(destDir, name)
  writeFileSync(dest, bytes)
  for (const c of b.companions) if (!existsSync(join(destDir, c))) copyFileSync(join(b.dir, c), join(destDir, c))
  return dest
}

/** Deterministic pseudo-random writes inside [0, L): `count` writes of 1..maxLen bytes, some unaligned. */
export function randomWrites(seed: number, L: number, count: number, maxLen: number, align = 1): Write[] {
  const r = new Rng(seed)
  const out: Write[] = []
  for (let i = 0; i < count; i++) {
    const len = Math.max(align, Math.floor(r.range(1, maxLen) / align) * align)
    const off = Math.floor(r.int(Math.max(1, L - len)) / align) * align
    out.push([off, len])
  }
  return out
}

/** Highest cluster with a non-zero refcount. */
export async function highestUsedCluster(img: Image): Promise<number> {
  const rc = await loadRefcounts(img.device, img.header)
  for (let c = rc.counts.length - 1; c >= 0; c--) if (rc.counts[c]! > 0) return c
  return 0
}

/** Patch autoclear bit 0 of a file in place. */
export function setAutoclearBit0(path: string, on: boolean): void {
  const b = new Uint8Array(readFileSync(path))
  b[95] = on ? b[95]! | 1 : b[95]! & ~1
  writeFileSync(path, b)
}

/**
 * Set the stored refcount of one cluster of a file in place (`pick` chooses it from the header):
 * a corruption `qemu-img check` reports, for tests of the edit gate.
 */
export async function setClusterRefcount(path: string, pick: (h: Header) => number, value: number): Promise<void> {
  const bytes = new Uint8Array(readFileSync(path))
  const img = await openImage(new MemoryDevice(bytes))
  const h = img.header
  const rc = await loadRefcounts(img.device, h)
  const c = pick(h)
  const block = rc.reftable[Math.floor(c / rc.entriesPerBlock)]!
  setRefcountEntry(bytes.subarray(block, block + h.clusterSize), h.refcountOrder, c % rc.entriesPerBlock, value)
  writeFileSync(path, bytes)
}

/** The model of a bitmap list as qemu-img info prints it (sorted by name). */
export function infoOf(model: ModelBitmap[]): Array<{ name: string; granularity: number; flags: string[] }> {
  return model.map((m) => ({ name: m.name, granularity: m.granularity, flags: [...m.flags].sort() })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}


// ---------------------------------------------------------------------------------------------
// Images whose refcount structures are nearly full

/**
 * 512-byte clusters with 64-bit refcounts: one refcount block covers 64 clusters and the
 * one-cluster refcount table holds 64 blocks (4096 clusters = 2 MiB of file).
 *
 * Every QEMU read-write open re-saves the bitmaps and frees their old clusters, so a QEMU-made
 * image always has a few free clusters ("holes") below its end that an edit fills first. The
 * calibrating edit therefore needs more new clusters than those holes: two new bitmaps of
 * 512-byte granularity (4 data clusters + 1 table each) merged from 'a' and 'c'.
 */
export const EDGE_EDITS: Array<{ op: 'add'; name: string; granularity: number } | { op: 'merge'; name: string; source: string }> = [
  { op: 'add', name: 'n1', granularity: 512 }, { op: 'merge', name: 'n1', source: 'a' },
  { op: 'add', name: 'n2', granularity: 512 }, { op: 'merge', name: 'n2', source: 'c' },
]

export const EDGE_CLI: string[][] = [
  ['bitmap', '--add', '-g', '512', '--merge', 'a', 'IMG', 'n1'],
  ['bitmap', '--add', '-g', '512', '--merge', 'c', 'IMG', 'n2'],
]

/** Whether the planned cluster 0 points to another refcount table. */
export function planMovesReftable(img: Image, header: Uint8Array): boolean {
  const v = new DataView(header.buffer, header.byteOffset, header.byteLength)
  return Number(v.getBigUint64(48)) !== img.header.refcountTableOffset
}

export function planAddsRefblock(writes: Array<{ what: string }>): boolean {
  return writes.some((w) => w.what.startsWith('new refcount block'))
}

/**
 * Spec of an image right below a refcount boundary: 'refblock' = the edits of EDGE_EDITS need
 * a new refcount block (table unchanged), 'reftable' = they must grow and move the table.
 * `plan` plans EDGE_EDITS on an image (passed in to keep this module free of engine edits).
 */
export function edgeSpec(kind: 'refblock' | 'reftable', name: string, plan: (img: Image) => Promise<{ writes: Array<{ what: string }>; header: { data: Uint8Array } }>): EditImageSpec {
  const M = 1024 * 1024
  // Writes in every 2 MiB quarter so that each merge fills all four data clusters.
  const spread: Write[] = [[100 * 1024, 4096], [2 * M + 512, 512], [4 * M + 70000, 3000], [6 * M + 8192, 65536], [8 * M - 512, 512]]
  return {
    name, size: 8 * M, clusterSize: 512, refcountBits: 64,
    bitmaps: [
      { name: 'a', granularity: 64 * 1024, writes: spread },
      { name: 'c', granularity: 1024 * 1024, writes: [[M, 512], [3 * M, 512], [5 * M, 512], [7 * M, 512]], disabled: true },
    ],
    fill: {
      from: 8 * 1024,
      coarseTo: kind === 'reftable' ? 4096 - 40 : 1024 + 20,
      maxSteps: 200,
      until: async (img) => {
        const p = await plan(img)
        const moved = planMovesReftable(img, p.header.data)
        return kind === 'reftable' ? moved : planAddsRefblock(p.writes) && !moved
      },
    },
  }
}
