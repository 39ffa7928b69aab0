/**
 * Issue 9's scan figure: `qbm scan` over 1,000 images (copies of one small QEMU-made fixture
 * with two bitmaps) against a shell loop of `qemu-img info --output=json` over the same files,
 * both whole processes, timed in the same run. Target: the scan takes at most 1/3 of the loop.
 *
 * Called from bench/main.ts: `rows.push(...benchScan({ dir: tmp.path, qbmBin: QBM_BIN, runs: N }))`.
 * The scan runs with its defaults (every image also checked like `qemu-img check`); the
 * `--no-check` and Prometheus variants are reported beside it.
 */
import type { Row } from './rows.js'
import { copyFileSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { type Series, log, median, max, run, series, timed } from './util.js'

/** A row of the bench table. */
export type ScanBenchRow = Row

/** Where and how long. */
export interface ScanBenchOptions {
  /** a temp dir the bench owns: the images go to DIR/scan-images and are deleted after */
  dir: string
  /** bin/qbm.cjs */
  qbmBin: string
  /** timed runs per figure (default 3; each qemu-img loop takes 1,000 process starts) */
  runs?: number
  /** images (default 1000) */
  images?: number
}

const ms = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`)
const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`
const r3 = (x: number): string => x.toFixed(3)

/** The fixture: 64 MiB virtual, 64 KiB clusters, bitmaps at 64 KiB and 4 KiB, a few writes. */
function makeFixture(path: string): void {
  run('qemu-img', ['create', '-q', '-f', 'qcow2', path, '64M'])
  run('qemu-img', ['bitmap', '--add', path, 'daily'])
  run('qemu-img', ['bitmap', '--add', '-g', '4096', path, 'fine'])
  run('qemu-io', ['-f', 'qcow2', '-c', 'write -q 0 64k', '-c', 'write -q 5M 300k', '-c', 'write -q 40M 4k', path])
}

/** Build the images, prove qbm reads them as qemu-img does, time both, return the rows. */
export function benchScan(opts: ScanBenchOptions): ScanBenchRow[] {
  const count = opts.images ?? 1000
  const runs = opts.runs ?? 3
  const dir = join(opts.dir, 'scan-images')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir)
  try {
    const t = performance.now()
    const fixture = join(opts.dir, 'scan-fixture.qcow2')
    makeFixture(fixture)
    for (let i = 0; i < count; i++) copyFileSync(fixture, join(dir, `img-${String(i).padStart(4, '0')}.qcow2`))
    log(`scan: fixture and ${count} copies made in ${ms(performance.now() - t)} (${dir})`)

    // Proof first: qbm sees every image, with qemu-img's bitmaps.
    const j = JSON.parse(run(process.execPath, [opts.qbmBin, 'scan', dir, '--output=json']).stdout) as {
      images: Array<{ bitmaps: Array<{ name: string; granularity: number; flags: string[] }>; check: { status: string } | null; error: string | null }>
    }
    const info = JSON.parse(run('qemu-img', ['info', '--output=json', fixture]).stdout) as { 'format-specific': { data: { bitmaps: unknown[] } } }
    const want = JSON.stringify(info['format-specific'].data.bitmaps)
    const agrees = j.images.length === count && j.images.every((r) => r.error === null && r.check?.status === 'clean' &&
      JSON.stringify(r.bitmaps.map((b) => ({ flags: b.flags, name: b.name, granularity: b.granularity }))) === want)
    if (!agrees) throw new Error(`qbm scan does not see the ${count} images as qemu-img info does`)

    const node = process.execPath
    const loopScript = 'for f in "$1"/*.qcow2; do qemu-img info --output=json "$f" >/dev/null || exit 1; done'
    log(`scan: a shell loop of qemu-img info --output=json over ${count} images vs qbm scan (${runs} runs each)`)
    const loop = series(runs, 1, () => timed('bash', ['-c', loopScript, 'loop', dir], { keepStdout: false }))
    const scan = series(runs, 1, () => timed(node, [opts.qbmBin, 'scan', dir, '--output=json'], { keepStdout: false }))
    const noCheck = series(runs, 0, () => timed(node, [opts.qbmBin, 'scan', dir, '--output=json', '--no-check'], { keepStdout: false }))
    const prom = series(runs, 0, () => timed(node, [opts.qbmBin, 'scan', dir, '--output=prometheus'], { keepStdout: false }))
    const m = (s: Series): number => median(s.ms)
    const ratio = m(scan) / m(loop)
    return [
      {
        figure: `\`qbm scan\` over ${count} images (bitmaps, dirty bytes, check), whole process`,
        qbm: ms(m(scan)), baseline: `${ms(m(loop))} (shell loop of qemu-img info --output=json)`,
        ratio: r3(ratio), target: '≤ 1/3 (0.333)', met: ratio <= 1 / 3,
        data: { qbmMs: scan.ms, loopMs: loop.ms, images: count, perImageMs: m(scan) / count, loopPerImageMs: m(loop) / count },
      },
      {
        figure: '  (`--no-check`: bitmaps and dirty bytes only; `--output=prometheus`)',
        qbm: `${ms(m(noCheck))}; ${ms(m(prom))}`, baseline: ms(m(loop)),
        ratio: `${r3(m(noCheck) / m(loop))}; ${r3(m(prom) / m(loop))}`, target: '', met: null,
        data: { noCheckMs: noCheck.ms, prometheusMs: prom.ms },
      },
      {
        figure: `  (peak RSS of \`qbm scan\` over ${count} images: memory is bounded by one image at a time)`,
        qbm: mib(max(scan.rssKiB)), baseline: '', ratio: '', target: '', met: null, data: { rssKiB: scan.rssKiB },
      },
    ]
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
