/**
 * Shared e2e plumbing: images made with QEMU's tools in a temp dir, what QEMU says about them
 * (qemu-img info, nbdinfo --map through qemu-nbd), opening through the real paths (synthetic
 * drop, real CDP drop, the demo button), the request log and screenshots.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, type Page } from '@playwright/test'
import type { MapRun } from '../src/test-support/reference.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const SHOTS = join(ROOT, 'test-results', 'screenshots')
export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB
export const TiB = 1024 * GiB

const APT: Record<string, string> = { 'qemu-img': 'qemu-utils', 'qemu-io': 'qemu-utils', 'qemu-nbd': 'qemu-utils', nbdinfo: 'libnbd-bin' }

/** Fail (never skip) when a tool is missing. */
export function requireTool(name: string): void {
  if (spawnSync('sh', ['-c', `command -v ${name}`]).status !== 0) {
    throw new Error(`${name} is required by the browser tests: apt-get install -y ${APT[name] ?? name}`)
  }
}

export function tempDir(prefix = 'qbm-e2e-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) }
}

export function sh(script: string, cwd?: string): string {
  return execFileSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8' })
}

export interface ImageSpec {
  size: string
  /** bitmaps to add before the writes: name, granularity (bytes) or undefined for the default */
  bitmaps: Array<{ name: string; granularity?: number }>
  /** qemu-io write commands, e.g. [offset, length] */
  writes: Array<[number, number]>
  /** bitmaps to disable after the writes, then more writes */
  disable?: string[]
  writesAfter?: Array<[number, number]>
}

/** Build a qcow2 image with qemu-img and qemu-io. */
export function makeImage(dir: string, name: string, spec: ImageSpec): string {
  requireTool('qemu-img')
  requireTool('qemu-io')
  const p = join(dir, name)
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  const io = (w: Array<[number, number]>) => (w.length ? `qemu-io -f qcow2 ${w.map(([o, l]) => `-c 'write -P 0x5a ${o} ${l}'`).join(' ')} ${q(p)} >/dev/null` : 'true')
  sh([
    `qemu-img create -q -f qcow2 ${q(p)} ${spec.size}`,
    ...spec.bitmaps.map((b) => `qemu-img bitmap --add ${b.granularity ? `--granularity ${b.granularity}` : ''} ${q(p)} ${q(b.name)}`),
    io(spec.writes),
    ...(spec.disable ?? []).map((n) => `qemu-img bitmap --disable ${q(p)} ${q(n)}`),
    io(spec.writesAfter ?? []),
  ].join('\n'))
  return p
}

export interface QemuBitmap {
  name: string
  granularity: number
  flags: string[]
}

/** The bitmap list `qemu-img info --output=json` reports. */
export function qemuBitmaps(path: string): QemuBitmap[] {
  requireTool('qemu-img')
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', path], { encoding: 'utf8' })) as {
    'format-specific'?: { data?: { bitmaps?: QemuBitmap[] } }
  }
  return info['format-specific']?.data?.bitmaps ?? []
}

/** Merged dirty extents from `nbdinfo --map=qemu:dirty-bitmap:NAME` through `qemu-nbd -r -B NAME`. */
export function nbdDirty(path: string, name: string): Array<{ offset: number; length: number }> {
  requireTool('qemu-nbd')
  requireTool('nbdinfo')
  const out = execFileSync('nbdinfo', [`--map=qemu:dirty-bitmap:${name}`, '--json', '--', '[', 'qemu-nbd', '-r', '-f', 'qcow2', '-B', name, path, ']'], { encoding: 'utf8' })
  const rows = JSON.parse(out) as Array<{ offset: number; length: number; type: number }>
  const merged: Array<{ offset: number; length: number }> = []
  for (const r of rows) {
    if ((r.type & 1) !== 1) continue
    const last = merged[merged.length - 1]
    if (last && last.offset + last.length === r.offset) last.length += r.length
    else merged.push({ offset: r.offset, length: r.length })
  }
  return merged
}

/** Every URL the page (and its workers) requested. */
export function recordRequests(page: Page): string[] {
  const urls: string[] = []
  page.context().on('request', (r) => urls.push(r.url()))
  return urls
}

/** Requests that left 127.0.0.1 (blob: and data: URLs are local and allowed). */
export function foreignRequests(urls: string[]): string[] {
  return urls.filter((u) => !u.startsWith('http://127.0.0.1:') && !u.startsWith('blob:') && !u.startsWith('data:'))
}

/** A synthetic drop: a DataTransfer with a File and no handle (the read-only path). */
export async function syntheticDrop(page: Page, path: string): Promise<void> {
  const b64 = readFileSync(path).toString('base64')
  const dt = await page.evaluateHandle(({ b64, name }) => {
    const bin = atob(b64)
    const bytes = new Uint8Array(bin.length)
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i)
    const d = new DataTransfer()
    d.items.add(new File([bytes], name, { type: 'application/octet-stream' }))
    return d
  }, { b64, name: basename(path) })
  for (const type of ['dragenter', 'dragover', 'drop']) await page.dispatchEvent('body', type, { dataTransfer: dt })
}

/** A real drop of a file on disk, over CDP: the page gets a real FileSystemFileHandle. */
export async function realDrop(page: Page, path: string): Promise<void> {
  const cdp = await page.context().newCDPSession(page)
  const data = { items: [], files: [path], dragOperationsMask: 1 }
  const vp = page.viewportSize() ?? { width: 800, height: 600 }
  const at = { x: Math.round(vp.width / 2), y: Math.round(vp.height / 2) }
  for (const type of ['dragEnter', 'dragOver', 'drop'] as const) {
    await cdp.send('Input.dispatchDragEvent', { type, ...at, data })
  }
  await cdp.detach()
}

/** Wait until every bitmap row shows its dirty totals (all scans done). */
export async function waitForScans(page: Page, count: number): Promise<void> {
  // only the bitmap table's rows (the checkpoint and extents tables have rows too)
  await expect(page.locator('tbody tr:has(td[data-col="dirty-exact"])')).toHaveCount(count)
  await expect(page.locator('td[data-col="dirty-exact"]:not(:empty)')).toHaveCount(count, { timeout: 30_000 })
}

/** The bitmap table as plain rows. */
export async function tableRows(page: Page): Promise<Array<{ name: string; granularity: string; recording: string; status: string; dirtyExact: number }>> {
  return page.locator('tbody tr:has(td[data-col="dirty-exact"])').evaluateAll((trs) => trs.map((tr) => {
    const td = tr.querySelectorAll('td')
    return {
      name: tr.getAttribute('data-bitmap') ?? '',
      granularity: td[3]?.getAttribute('title') ?? '',
      recording: td[4]?.textContent ?? '',
      status: td[5]?.textContent ?? '',
      dirtyExact: Number((td[7]?.textContent ?? '').replace(/,/g, '')),
    }
  }))
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SHOTS, { recursive: true })
  const p = join(SHOTS, `${name}.png`)
  await page.screenshot({ path: p, fullPage: true })
  return p
}

export function publishScreenshot(from: string, as = 'screenshot.png'): void {
  mkdirSync(join(ROOT, 'docs'), { recursive: true })
  copyFileSync(from, join(ROOT, 'docs', as))
}

export function hex(n: number): string {
  return '0x' + n.toString(16)
}

/** A synthetic drop of several files at once (no handles: the read-only path). */
export async function syntheticDropMany(page: Page, paths: string[]): Promise<void> {
  const files = paths.map((p) => ({ b64: readFileSync(p).toString('base64'), name: basename(p) }))
  const dt = await page.evaluateHandle((files) => {
    const d = new DataTransfer()
    for (const { b64, name } of files) {
      const bin = atob(b64)
      const bytes = new Uint8Array(bin.length)
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i)
      d.items.add(new File([bytes], name, { type: name.endsWith('.xml') ? 'text/xml' : 'application/octet-stream' }))
    }
    return d
  }, files)
  for (const type of ['dragenter', 'dragover', 'drop']) await page.dispatchEvent('body', type, { dataTransfer: dt })
}

export type { MapRun }

/** `qemu-img map --output=json` (through the backing chain, as QEMU resolves it). */
export function qemuMap(path: string): MapRun[] {
  requireTool('qemu-img')
  return JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-U', path], { cwd: dirname(path), encoding: 'utf8' })) as MapRun[]
}

export { setOp, splitByMap, type Split } from '../src/test-support/reference.js'

export const TESTDATA_IMAGES = join(ROOT, 'src', 'engine', 'testdata', 'images')
