/**
 * Issue 11's map figures, measured in Chromium: the disk map on a 256 TiB image with a 64 KiB-
 * granularity bitmap (2^32 bits, 512 MiB of bitmap data, written by qbm's engine like image D
 * and checked by qemu-img check) and on a 2 TiB image. The measuring is e2e/big-map.spec.ts,
 * run here through Playwright with Debian's Chromium (never a downloaded browser), which
 * writes its numbers to a file this module turns into bench rows:
 *  - the first map appears while the scan runs (a preview from the block index built so far);
 *  - after the scan, a zoom or scroll step repaints in ≤ 16 ms at p95 (input to repaint);
 *  - the page's main thread never runs a task over 50 ms (CPU time from Chromium's trace);
 *  - 2 TiB: drop to the first whole map ≤ 300 ms.
 *
 * Called from bench/main.ts: `rows.push(...benchMap2d({ root: ROOT }))`. Needs qemu-img,
 * qemu-io and Chromium (CHROMIUM_PATH or /usr/bin/chromium); builds the app itself (the spec's
 * web server runs `vite build`).
 */
import type { Row } from './rows.js'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { log } from './util.js'

/** A row of the bench table. */
export type Map2dBenchRow = Row

/** Where the repository is, how many drops, which port. */
export interface Map2dBenchOptions {
  /** the repository's root (where e2e/ and package.json are) */
  root: string
  /** drops of the 2 TiB image (default 5) */
  runs?: number
  /** the port the spec's web server listens on (default 4318, beside the e2e suite's 4317) */
  port?: number
}

const ms = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x < 10 ? 2 : 1)} ms`)
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[s.length >> 1]! : NaN }

/** Run the spec, collect its numbers, make the rows. Throws when the spec fails. */
export function benchMap2d(opts: Map2dBenchOptions): Map2dBenchRow[] {
  const dir = mkdtempSync(join(tmpdir(), 'qbm-bench-map2d-'))
  const out = join(dir, 'metrics.jsonl')
  try {
    log('map2d: 256 TiB and 2 TiB images in Chromium (e2e/big-map.spec.ts)')
    const r = spawnSync(process.execPath, [join(opts.root, 'node_modules', '@playwright', 'test', 'cli.js'), 'test', '-c', 'e2e/playwright.config.ts', 'e2e/big-map.spec.ts', '--reporter=line'], {
      cwd: opts.root,
      encoding: 'utf8',
      maxBuffer: 1 << 26,
      env: { ...process.env, QBM_MAP_BENCH_OUT: out, QBM_MAP_BENCH_RUNS: String(opts.runs ?? 5), QBM_E2E_PORT: String(opts.port ?? 4318) },
    })
    for (const line of `${r.stdout}`.split('\n')) if (/^(256|2) TiB/.test(line.trim())) log(`map2d: ${line.trim()}`)
    if (!existsSync(out)) throw new Error(`map2d: the spec reported nothing (exit ${r.status}): ${(r.stdout + r.stderr).slice(-2000)}`)
    const m = new Map<string, unknown>()
    for (const line of readFileSync(out, 'utf8').trim().split('\n')) {
      const { name, value } = JSON.parse(line) as { name: string; value: unknown }
      m.set(name, value)
    }
    if (r.status !== 0) log(`map2d: the spec failed (exit ${r.status}); its numbers are reported as measured`)
    return rows(m)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function rows(m: Map<string, unknown>): Map2dBenchRow[] {
  const num = (k: string): number | null => (typeof m.get(k) === 'number' ? m.get(k) as number : null)
  const scan = num('bigmap.scanMs')
  const preview = num('bigmap.firstPreviewMs')
  const paints = num('bigmap.previewPaints')
  const p95 = num('bigmap.stepP95')
  const cpu = num('bigmap.maxTaskCpuMs')
  const first2t = (m.get('map2t.firstMapMs') as number[] | undefined) ?? []
  const exact2t = (m.get('map2t.firstExactMs') as number[] | undefined) ?? []
  const out: Map2dBenchRow[] = [
    {
      figure: '2-D map, 256 TiB / 64 KiB granules (512 MiB of bitmap): first map while the scan runs (after the drop)',
      qbm: preview === null ? 'none before the scan ended' : `${ms(preview)}, ${paints} repaints as it reads`,
      baseline: `scan ${ms(scan)}`, ratio: '', target: 'before the scan ends',
      met: preview !== null && (paints ?? 0) > 1,
      data: { firstPreviewMs: preview, previewPaints: paints, scanMs: scan, firstMapMs: num('bigmap.firstMapMs'), firstExactMs: num('bigmap.firstExactMs') },
    },
    {
      figure: `2-D map, 256 TiB: zoom or scroll step, input to repaint (p50 / p95 / max of ${num('bigmap.steps') ?? '?'})`,
      qbm: `${ms(num('bigmap.stepP50'))} / ${ms(p95)} / ${ms(num('bigmap.stepMax'))}`,
      baseline: '', ratio: '', target: '≤ 16 ms at p95', met: p95 === null ? null : p95 <= 16,
      data: { p50: num('bigmap.stepP50'), p95, max: num('bigmap.stepMax') },
    },
    {
      figure: '  (the exact cells of the new view, input to repaint: p50 / p95)',
      qbm: `${ms(num('bigmap.exactP50'))} / ${ms(num('bigmap.exactP95'))}`,
      baseline: '', ratio: '', target: '', met: null,
    },
    {
      figure: '2-D map, 256 TiB: longest main-thread task from scan start to the last step (CPU / wall)',
      qbm: `${ms(cpu)} / ${ms(num('bigmap.maxTaskWallMs'))}`,
      baseline: `Long Tasks API: ${JSON.stringify(m.get('bigmap.longTasks') ?? [])}`, ratio: '', target: '≤ 50 ms', met: cpu === null ? null : cpu <= 50,
    },
    {
      figure: `2-D map, 2 TiB / 64 KiB granules (5,000 random writes): drop to first whole map (median of ${first2t.length})`,
      qbm: ms(median(first2t)), baseline: `exact cells: ${ms(median(exact2t))}`, ratio: '', target: '≤ 300 ms',
      met: first2t.length ? median(first2t) <= 300 : null, data: { firstMapMs: first2t, firstExactMs: exact2t },
    },
  ]
  return out
}
