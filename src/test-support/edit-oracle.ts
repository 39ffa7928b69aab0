/**
 * Oracles for edit tests: what QEMU says about an image (qemu-img check / info, nbdinfo --map
 * of every bitmap, QMP sha256) and what qbm's engine reads back, plus the small extent algebra
 * that expected states are computed with. Every QEMU tool runs in the image's directory, so
 * relative backing and data file names resolve (QEMU resolves a data file against the cwd).
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import { allExtents, bitmapSha256, openImage, type BlockDevice, type Image } from '../engine/index.js'
import { readable, readerFor } from '../engine/describe.js'
import { MemoryDevice } from '../io/memory.js'
import { NodeFileDevice } from '../io/node-file.js'
import { type QmpBitmapInfo, qmpBitmaps, qmpBitmapsAsync } from './qmp.js'
import { requireTool, run } from './tools.js'

export interface Extent { offset: number; length: number }

/** A tool run in the image's directory with the image's base name as the last argument. */
export function tool(cmd: string, argsBeforeImage: string[], image: string, argsAfterImage: string[] = []): { code: number; stdout: string; stderr: string } {
  requireTool(cmd)
  return run(cmd, [...argsBeforeImage, basename(image), ...argsAfterImage], { cwd: dirname(image) })
}

export function mustTool(cmd: string, argsBeforeImage: string[], image: string, argsAfterImage: string[] = []): string {
  const r = tool(cmd, argsBeforeImage, image, argsAfterImage)
  if (r.code !== 0) throw new Error(`${cmd} ${[...argsBeforeImage, image, ...argsAfterImage].join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`)
  return r.stdout
}

/** Like `run`, without blocking: lets the QEMU queries of one verification run side by side. */
export function runAsync(cmd: string, args: string[], opts: { cwd?: string; input?: string; timeout?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  requireTool(cmd)
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeout ?? 120_000)
    p.stdout!.on('data', (d: Buffer) => out.push(d))
    p.stderr!.on('data', (d: Buffer) => err.push(d))
    p.on('error', (e) => { clearTimeout(timer); reject(e) })
    p.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') })
    })
    if (opts.input !== undefined && p.stdin) {
      // A tool that exits without reading its input closes the pipe: that is not a test failure.
      p.stdin.on('error', () => undefined)
      p.stdin.end(opts.input)
    }
  })
}

export function checkImage(image: string): { code: number; output: string } {
  const r = tool('qemu-img', ['check'], image)
  return { code: r.code, output: (r.stdout + r.stderr).trim() }
}

export interface InfoBitmap { name: string; granularity: number; flags: string[] }

export interface QemuInfo {
  bitmaps: InfoBitmap[]
  corrupt: boolean
  json: Record<string, unknown>
}

/** qemu-img info --output=json; throws when QEMU cannot open the image. */
export function qemuInfo(image: string): QemuInfo {
  const out = mustTool('qemu-img', ['info', '--output=json', '-f', 'qcow2'], image)
  const json = JSON.parse(out) as { 'format-specific'?: { data?: { bitmaps?: InfoBitmap[]; corrupt?: boolean } } }
  const data = json['format-specific']?.data ?? {}
  return {
    bitmaps: (data.bitmaps ?? []).map((b) => ({ name: b.name, granularity: b.granularity, flags: [...b.flags].sort() }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    corrupt: data.corrupt === true,
    json: json as Record<string, unknown>,
  }
}

/** Dirty extents (merged) of one bitmap through qemu-nbd + nbdinfo --map. */
export function nbdMap(image: string, name: string): Extent[] {
  requireTool('qemu-nbd')
  requireTool('nbdinfo')
  const r = run('nbdinfo', [`--map=qemu:dirty-bitmap:${name}`, '--json', '--', '[', 'qemu-nbd', '-r', '-f', 'qcow2', '-B', name, basename(image), ']'], { cwd: dirname(image) })
  if (r.code !== 0) throw new Error(`nbdinfo --map of '${name}' in ${image} failed: ${r.stderr.trim()}`)
  const rows = JSON.parse(r.stdout) as Array<{ offset: number; length: number; type: number }>
  return normalize(rows.filter((x) => (x.type & 1) === 1).map((x) => ({ offset: x.offset, length: x.length })))
}

export async function nbdMapAsync(image: string, name: string): Promise<Extent[]> {
  requireTool('qemu-nbd')
  const r = await runAsync('nbdinfo', [`--map=qemu:dirty-bitmap:${name}`, '--json', '--', '[', 'qemu-nbd', '-r', '-f', 'qcow2', '-B', name, basename(image), ']'], { cwd: dirname(image) })
  if (r.code !== 0) throw new Error(`nbdinfo --map of '${name}' in ${image} failed: ${r.stderr.trim()}`)
  const rows = JSON.parse(r.stdout) as Array<{ offset: number; length: number; type: number }>
  return normalize(rows.filter((x) => (x.type & 1) === 1).map((x) => ({ offset: x.offset, length: x.length })))
}

export interface QemuSnapshot {
  check: number
  checkOutput: string
  bitmaps: InfoBitmap[]
  /** nbdinfo maps of every bitmap that is not in use */
  maps: Record<string, Extent[]>
  /** QMP sha256 of every bitmap (in-use ones hash zeros) */
  sha: Record<string, string>
  /** what QEMU reports about its dirty bitmaps (dirty byte count, recording, inconsistent) */
  qemuBitmaps?: QmpBitmapInfo[]
}

/**
 * Everything QEMU says about the bitmaps of an image, with the queries run concurrently:
 * qemu-img check, qemu-img info, nbdinfo --map of every usable bitmap, QMP sha256 of all.
 */
export async function qemuSnapshotAsync(image: string, opts: { sha?: boolean; maps?: boolean } = {}): Promise<QemuSnapshot> {
  const [c, info] = await Promise.all([
    runAsync('qemu-img', ['check', basename(image)], { cwd: dirname(image) }),
    runAsync('qemu-img', ['info', '--output=json', '-f', 'qcow2', basename(image)], { cwd: dirname(image) }),
  ])
  if (info.code !== 0) throw new Error(`qemu-img info ${image} failed: ${info.stderr.trim()}`)
  const json = JSON.parse(info.stdout) as { 'format-specific'?: { data?: { bitmaps?: InfoBitmap[] } } }
  const bitmaps = (json['format-specific']?.data?.bitmaps ?? []).map((b) => ({ name: b.name, granularity: b.granularity, flags: [...b.flags].sort() }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const usable = opts.maps === false ? [] : bitmaps.filter((b) => !b.flags.includes('in-use'))
  const [mapList, qmp] = await Promise.all([
    Promise.all(usable.map((b) => nbdMapAsync(image, b.name))),
    opts.sha !== false && bitmaps.length > 0 ? qmpBitmapsAsync(image, bitmaps.map((b) => b.name)) : Promise.resolve(undefined),
  ])
  if (qmp && Object.keys(qmp.errors).length > 0) throw new Error(`QEMU refused sha256 in ${image}: ${JSON.stringify(qmp.errors)}`)
  const maps: Record<string, Extent[]> = {}
  usable.forEach((b, i) => { maps[b.name] = mapList[i]! })
  return { check: c.code, checkOutput: (c.stdout + c.stderr).trim(), bitmaps, maps, sha: qmp?.sums ?? {}, ...(qmp ? { qemuBitmaps: qmp.bitmaps } : {}) }
}

/** Everything QEMU says about the bitmaps of an image. */
export function qemuSnapshot(image: string, opts: { sha?: boolean; maps?: boolean } = {}): QemuSnapshot {
  const c = checkImage(image)
  const info = qemuInfo(image)
  const maps: Record<string, Extent[]> = {}
  if (opts.maps !== false) for (const b of info.bitmaps) if (!b.flags.includes('in-use')) maps[b.name] = nbdMap(image, b.name)
  let sha: Record<string, string> = {}
  if (opts.sha !== false && info.bitmaps.length > 0) {
    const q = qmpBitmaps(image, info.bitmaps.map((b) => b.name))
    if (Object.keys(q.errors).length > 0) throw new Error(`QEMU refused sha256 in ${image}: ${JSON.stringify(q.errors)}`)
    sha = q.sums
  }
  return { check: c.code, checkOutput: c.output, bitmaps: info.bitmaps, maps, sha }
}

export interface QbmBitmapState {
  name: string
  granularity: number
  flags: string[]
  status: string
  extents: Extent[] | null
}

export interface QbmState {
  bitmaps: QbmBitmapState[]
  bitmapsError?: string
  invalid: string[]
  hasExtension: boolean
  autoclearBit0: boolean
  trusted: boolean
  reftable: { offset: number; clusters: number }
  sha: Record<string, string>
}

/** What qbm's engine reads back from an image (file path, bytes or device). */
export async function qbmState(src: string | Uint8Array | BlockDevice, opts: { sha?: boolean } = {}): Promise<QbmState> {
  if (typeof src === 'string') {
    const dev = NodeFileDevice.open(src, 'r')
    try { return await stateOf(await openImage(dev), opts) } finally { dev.close() }
  }
  const dev: BlockDevice = src instanceof Uint8Array ? new MemoryDevice(src) : src
  return stateOf(await openImage(dev), opts)
}

export async function stateOf(img: Image, opts: { sha?: boolean } = {}): Promise<QbmState> {
  const bitmaps: QbmBitmapState[] = []
  const sha: Record<string, string> = {}
  for (const b of img.bitmaps) {
    let extents: Extent[] | null = null
    if (readable(b)) {
      const r = readerFor(img, b)
      extents = []
      for await (const e of allExtents(r)) extents.push(e)
      if (opts.sha) sha[b.name] = await bitmapSha256(r)
    }
    bitmaps.push({ name: b.name, granularity: b.granularity, flags: flagWords(b.flags), status: b.status, extents })
  }
  return {
    bitmaps,
    ...(img.bitmapsError ? { bitmapsError: img.bitmapsError.message } : {}),
    invalid: img.bitmaps.filter((b) => b.status === 'invalid').map((b) => `${b.name}: ${b.problems[0]}`),
    hasExtension: img.bitmapsExtension !== undefined,
    autoclearBit0: (img.header.autoclearFeatures & 1n) === 1n,
    trusted: img.bitmapsTrusted,
    reftable: { offset: img.header.refcountTableOffset, clusters: img.header.refcountTableClusters },
    sha,
  }
}

export function flagWords(flags: number): string[] {
  return [...(flags & 2 ? ['auto'] : []), ...(flags & 1 ? ['in-use'] : [])].sort()
}

// ---------------------------------------------------------------------------------------------
// Extent algebra

/** Sort and coalesce touching or overlapping extents; drop empty ones. */
export function normalize(list: Extent[]): Extent[] {
  const s = list.filter((e) => e.length > 0).sort((a, b) => a.offset - b.offset)
  const out: Extent[] = []
  for (const e of s) {
    const last = out[out.length - 1]
    if (last && e.offset <= last.offset + last.length) last.length = Math.max(last.length, e.offset + e.length - last.offset)
    else out.push({ offset: e.offset, length: e.length })
  }
  return out
}

/** The granules of size g (clipped to the disk length L) touched by each extent. */
export function roundToGranules(list: Extent[], g: number, L: number): Extent[] {
  return normalize(list.map((e) => {
    const a = Math.floor(e.offset / g) * g
    const b = Math.min(Math.ceil((e.offset + e.length) / g) * g, L)
    return { offset: a, length: b - a }
  }))
}

export function union(...lists: Extent[][]): Extent[] {
  return normalize(lists.flat())
}

/** Extents of byte writes "write OFF LEN" as dirtied into a bitmap of granularity g. */
export function writesToExtents(writes: Array<[number, number]>, g: number, L: number): Extent[] {
  return roundToGranules(writes.map(([o, l]) => ({ offset: o, length: l })), g, L)
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

export function sha256Bytes(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}
