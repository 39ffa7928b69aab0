/**
 * The fixture corpus (src/engine/testdata/fixtures.json, written by make-fixtures.sh) and the
 * large set generated at test time. See src/engine/testdata/README.md for every field.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TESTDATA, run } from './tools.js'

export interface FixturePatch {
  structure: string
  field: string
  offset: number
  from: string
  to: string
  [k: string]: unknown
}

export interface Fixture {
  name: string
  file: string
  extraFiles?: string[]
  large: boolean
  description: string
  tags: string[]
  qemuOpens: boolean
  qemuError?: string
  qemuWarning?: string
  qemuCheckExit: number
  virtualSize?: number
  clusterSize?: number
  fileSize: number
  patch?: FixturePatch
  bitmaps: Array<{ name: string; granularity: number; flags: string[] }>
  sha256: Record<string, string>
  sha256Errors?: Record<string, string>
  oracleSkipped?: Record<string, string>
  extents?: Record<string, Array<{ offset: number; length: number }>>
  extentsSkipped?: Record<string, string>
  /** directory holding `file` (added by the loader) */
  dir: string
}

export const FIXTURE_DIR = join(TESTDATA, 'images')
export const MANIFEST = join(TESTDATA, 'fixtures.json')
export const MAKE_FIXTURES = join(TESTDATA, 'make-fixtures.sh')

export function loadManifest(path: string, dir: string): Fixture[] {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Array<Omit<Fixture, 'dir'>>
  return raw.map((f) => ({ ...f, dir }))
}

/** The committed small set; throws when the manifest is missing (a test must fail, not skip). */
export function smallFixtures(): Fixture[] {
  if (!existsSync(MANIFEST)) throw new Error(`${MANIFEST} is missing: run npm run fixtures`)
  return loadManifest(MANIFEST, FIXTURE_DIR)
}

/** Build the large set (4 TiB, 64 TiB, 2 MiB clusters) into `dir` and load its manifest. */
export function buildLargeFixtures(dir: string): Fixture[] {
  const r = run('bash', [MAKE_FIXTURES, dir, '--large-only'], { timeout: 900_000 })
  if (r.code !== 0) throw new Error(`make-fixtures.sh --large-only failed (exit ${r.code}): ${r.stderr.slice(-2000)}`)
  return loadManifest(join(dir, 'fixtures.json'), dir)
}

export function fixturePath(f: Fixture): string {
  return join(f.dir, f.file)
}

/**
 * The name QEMU prints for a qbm display name: qbm escapes invalid UTF-8 bytes as \xNN,
 * qemu-img shows each as U+FFFD.
 */
export function qemuStyleName(display: string): string {
  if (!/\\x[0-9a-f]{2}/.test(display)) return display
  const bytes: number[] = []
  const enc = new TextEncoder()
  for (let i = 0; i < display.length;) {
    const m = /^\\x([0-9a-f]{2})/.exec(display.slice(i))
    if (m) { bytes.push(parseInt(m[1]!, 16)); i += 4; continue }
    const cp = display.codePointAt(i)!
    const ch = String.fromCodePoint(cp)
    bytes.push(...enc.encode(ch))
    i += ch.length
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(new Uint8Array(bytes))
}
