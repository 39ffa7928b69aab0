/**
 * Bench plumbing: running a process under /usr/bin/time (wall clock from hrtime, peak RSS from
 * GNU time's %M), medians, a seeded PRNG and a log that goes to stderr so stdout stays the table.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** GNU time, for peak RSS. */
export const TIME = '/usr/bin/time'

const t0 = performance.now()
/** Progress lines on stderr, stamped with seconds since the bench started. */
export function log(msg: string): void {
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`)
}

/** Seconds since the bench started. */
export function elapsedSeconds(): number {
  return (performance.now() - t0) / 1000
}

/** One timed process. */
export interface ProcResult {
  /** wall clock of the whole process, ms (hrtime around spawn; includes exec of /usr/bin/time, ~1 ms) */
  ms: number
  /** peak RSS in KiB from GNU time %M (the largest of the process and the children it waited for) */
  rssKiB: number
  code: number
  stdout: string
  stderr: string
}

/** Run `cmd args` once under GNU time; throws when it exits non-zero unless `okCodes` allows it. */
export function timed(cmd: string, args: string[], opts: { okCodes?: number[]; input?: string; cwd?: string; keepStdout?: boolean } = {}): ProcResult {
  const tmp = mkdtempSync(join(tmpdir(), 'qbm-bench-time-'))
  const tf = join(tmp, 't')
  try {
    const sopts: SpawnSyncOptions = {
      maxBuffer: 1 << 30,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      // Large outputs are read and discarded like a pipe reader would; the bench never needs them
      // except where asked.
      stdio: ['pipe', 'pipe', 'pipe'],
    }
    const s = performance.now()
    const r = spawnSync(TIME, ['-f', '%e %M', '-o', tf, cmd, ...args], sopts)
    const ms = performance.now() - s
    if (r.error) throw r.error
    const code = r.status ?? -1
    const stderr = r.stderr?.toString() ?? ''
    if (!(opts.okCodes ?? [0]).includes(code)) {
      throw new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(0, 2000)}`)
    }
    const line = readFileSync(tf, 'utf8').trim().split('\n').pop() ?? ''
    const rssKiB = Number(line.split(' ')[1])
    return { ms, rssKiB, code, stdout: opts.keepStdout === false ? '' : (r.stdout?.toString() ?? ''), stderr }
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}

/** Run a command, throw on a non-zero exit, return stdout. */
export function run(cmd: string, args: string[], opts: { input?: string | Uint8Array; okCodes?: number[]; cwd?: string; timeoutMs?: number } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, {
    maxBuffer: 1 << 30,
    encoding: 'utf8',
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
  })
  if (r.error) throw r.error
  const code = r.status ?? -1
  if (!(opts.okCodes ?? [0]).includes(code)) throw new Error(`${cmd} ${args.join(' ')} exited ${code}: ${(r.stderr ?? '').slice(0, 2000)}`)
  return { code, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
}

/** The median (NaN for none). */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** The largest (-Infinity for none). */
export function max(xs: number[]): number {
  return xs.reduce((a, b) => Math.max(a, b), -Infinity)
}

/** Times and peak RSS of the timed runs of one process. */
export interface Series {
  ms: number[]
  rssKiB: number[]
}

/** `runs` timed runs (after `warm` untimed ones, which also warm the page cache). */
export function series(runs: number, warm: number, f: () => ProcResult): Series {
  for (let i = 0; i < warm; i++) f()
  const out: Series = { ms: [], rssKiB: [] }
  for (let i = 0; i < runs; i++) {
    const r = f()
    out.ms.push(r.ms)
    out.rssKiB.push(r.rssKiB)
  }
  return out
}

/**
 * `runs` rounds of every process in `procs` and every function in `values` (numbers, e.g. an
 * in-process time), one of each per round in order; a warm-up round first. Interleaving puts
 * load changes on a shared machine into every series alike, so their differences stay honest.
 */
export function interleaved<P extends string, V extends string>(
  runs: number, procs: Record<P, () => ProcResult>, values: Record<V, () => number>,
): { procs: Record<P, Series>; values: Record<V, number[]> } {
  const ps = Object.keys(procs) as P[]
  const vs = Object.keys(values) as V[]
  const out = {
    procs: Object.fromEntries(ps.map((k) => [k, { ms: [], rssKiB: [] }])) as unknown as Record<P, Series>,
    values: Object.fromEntries(vs.map((k) => [k, []])) as unknown as Record<V, number[]>,
  }
  for (let i = 0; i <= runs; i++) {
    for (const k of ps) {
      const r = procs[k]()
      if (i > 0) { out.procs[k].ms.push(r.ms); out.procs[k].rssKiB.push(r.rssKiB) }
    }
    for (const k of vs) {
      const v = values[k]()
      if (i > 0) out.values[k].push(v)
    }
  }
  return out
}

/** A fresh temp dir under `base` (default: the OS's) and its cleanup. */
export function tempDir(prefix: string, base?: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(base ?? tmpdir(), prefix))
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) }
}

/** Throw, naming the Debian packages, when a tool the bench runs is missing. */
export function requireTools(tools: string[]): void {
  const missing = tools.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0)
  if (missing.length) throw new Error(`the bench needs ${missing.join(', ')} (Debian: qemu-utils, libnbd-bin, time)`)
  if (!existsSync(TIME)) throw new Error(`the bench needs GNU time at ${TIME} (apt-get install -y time)`)
}

/** splitmix32-seeded xorshift128: fast, reproducible; for offsets and bitmap bytes. */
export class Prng {
  private a: number
  private b: number
  private c: number
  private d: number
  constructor(seed: number) {
    let s = seed >>> 0
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = next() | 1; this.b = next(); this.c = next(); this.d = next()
  }
  u32(): number {
    let t = this.d
    const s = this.a
    this.d = this.c; this.c = this.b; this.b = s
    t ^= t << 11
    t ^= t >>> 8
    this.a = (t ^ s ^ (s >>> 19)) >>> 0
    return this.a
  }
  /** Uniform integer in [0, n), n <= 2^53. */
  int(n: number): number {
    const f = (this.u32() * 2 ** 21 + (this.u32() >>> 11)) / 2 ** 53
    return Math.floor(f * n)
  }
  float(): number {
    return (this.u32() * 2 ** 21 + (this.u32() >>> 11)) / 2 ** 53
  }
  /** Fill with pseudo-random 32-bit words (length a multiple of 4, 4-aligned). */
  fill(buf: Uint8Array): void {
    const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2)
    let a = this.a, b = this.b, c = this.c, d = this.d
    for (let i = 0; i < w.length; i++) {
      let t = d
      const s = a
      d = c; c = b; b = s
      t ^= t << 11
      t ^= t >>> 8
      a = (t ^ s ^ (s >>> 19)) >>> 0
      w[i] = a
    }
    this.a = a; this.b = b; this.c = c; this.d = d
  }
}

/** Binary size units. */
export const MiB = 1024 * 1024
/** Binary size units. */
export const GiB = 1024 * MiB
/** Binary size units. */
export const TiB = 1024 * GiB
