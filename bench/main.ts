/**
 * `npm run bench`: issue 5's benchmark (targets re-based in issue 12). Builds images A-D in a
 * temp dir, proves D valid, runs qbm and QEMU's tools on the same images in one run, and
 * Chromium on the app (browser.ts), prints a table of medians and ratios (`--json` for
 * machine-readable output) and deletes the images. Each section pushes its Rows (rows.ts); a
 * new bench module returns Rows and is called from main() in the order the table should show.
 *
 * Options: --json  --runs N (timed runs per process figure, default 5)  --views N (random
 * heatmap zooms, default 50)  --keep (keep the temp dir)  --images DIR (reuse images a --keep
 * run left, skipping the build)  --tmp DIR (where to make the temp dir).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BITMAP, buildImages, validateD, type Images } from './images.js'
import { browserFigures, type BrowserFigures } from './browser.js'
import { benchMap2d } from './map2d.js'
import { benchScan } from './scan.js'
import { benchServeEdit } from './serve-edit.js'
import { benchServeLatency } from './serve-latency.js'
import { type Row, formatTable, mib, ms, r2 } from './rows.js'
import { MiB, type Series, elapsedSeconds, interleaved, log, max, median, requireTools, run, series, tempDir, timed } from './util.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const QBM_BIN = join(ROOT, 'bin', 'qbm.cjs')
const QBM_CLI = join(ROOT, 'dist-cli', 'qbm.cjs')
const INPROC = join(ROOT, 'bench-out', 'inproc.mjs')
const NODE = process.execPath

interface Args { json: boolean; runs: number; views: number; keep: boolean; images?: string; tmp?: string }

function parseArgs(argv: string[]): Args {
  const a: Args = { json: false, runs: 5, views: 50, keep: false }
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!
    if (x === '--json') a.json = true
    else if (x === '--keep') a.keep = true
    else if (x === '--runs') a.runs = Number(argv[++i])
    else if (x === '--views') a.views = Number(argv[++i])
    else if (x === '--images') a.images = argv[++i]!
    else if (x === '--tmp') a.tmp = argv[++i]!
    else throw new Error(`bench: unknown option ${x} (see bench/README.md)`)
  }
  if (!(a.runs >= 1)) throw new Error('--runs must be >= 1')
  return a
}

function machine(): Record<string, string> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? 'unknown'
  const first = (c: string, a: string[]): string => { try { return run(c, a).stdout.split('\n')[0]!.trim() } catch { return 'unknown' } }
  return {
    nproc: String(availableParallelism()),
    cpu: model,
    node: process.version,
    qemuImg: first('qemu-img', ['--version']),
    nbdinfo: first('nbdinfo', ['--version']),
    kernel: first('uname', ['-sr']),
    memory: `${Math.round(Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 1024)} MiB`,
    load: loadavg().map((x) => x.toFixed(2)).join(' '),
  }
}

const qbm = (args: string[], okCodes?: number[]) => timed(NODE, [QBM_BIN, ...args], { keepStdout: false, ...(okCodes ? { okCodes } : {}) })
const mMs = (s: Series): number => median(s.ms)
const mRss = (s: Series): number => median(s.rssKiB)
const maxRss = (s: Series): number => max(s.rssKiB)

function inproc(args: string[]): Record<string, any> {
  const r = run(NODE, [INPROC, ...args])
  return JSON.parse(r.stdout) as Record<string, any>
}

/** Dirty-only merged extents from nbdinfo --json output. */
function nbdDirty(json: string): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const x of JSON.parse(json) as Array<{ offset: number; length: number; type: number }>) {
    if ((x.type & 1) !== 1) continue
    const l = out[out.length - 1]
    if (l && l[0] + l[1] === x.offset) l[1] += x.length
    else out.push([x.offset, x.length])
  }
  return out
}

/** qbm info --output=json, for the bytes of bitmap data each bitmap costs to read. */
function qbmDataBytes(img: string): number {
  const s = JSON.parse(run(NODE, [QBM_BIN, 'info', '--output=json', img]).stdout) as { bitmaps: Array<{ dataBytes: number }> }
  return s.bitmaps.reduce((a, b) => a + b.dataBytes, 0)
}

function killWriter(img: string): void {
  // A writer killed without closing leaves every consistent bitmap with in_use set (docs/format.md §10).
  run('qemu-io', ['-f', 'qcow2', '-c', 'write 0 1M', '-c', 'sigraise 9', img], { okCodes: [137, -1, 1, 0] })
  const info = JSON.parse(run('qemu-img', ['info', '--output=json', img]).stdout) as { 'format-specific': { data: { bitmaps: Array<{ name: string; flags: string[] }> } } }
  const b = info['format-specific'].data.bitmaps.find((x) => x.name === BITMAP.C)
  if (!b?.flags.includes('in-use')) throw new Error(`killing the writer did not leave '${BITMAP.C}' in use: ${JSON.stringify(b)}`)
}

function sparseCopy(from: string, to: string): void {
  rmSync(to, { force: true })
  run('cp', ['--sparse=always', from, to])
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  requireTools(['qemu-img', 'qemu-io', 'qemu-nbd', 'nbdinfo', 'cp'])
  if (!existsSync(QBM_CLI) || !existsSync(INPROC)) throw new Error('run the bench through `npm run bench` (it builds dist-cli/ and bench-out/)')
  const mach = machine()
  log(`machine: ${mach.nproc} cores, ${mach.cpu}, node ${mach.node}, ${mach.qemuImg}`)
  const tmp = args.images ? { path: args.images, cleanup: () => undefined } : tempDir('qbm-bench-', args.tmp)
  const rows: Row[] = []
  const N = args.runs
  try {
    let images: Images
    const tBuild = performance.now()
    if (args.images) {
      images = { A: join(tmp.path, 'A.qcow2'), B: join(tmp.path, 'B.qcow2'), C: join(tmp.path, 'C.qcow2'), D: join(tmp.path, 'D.qcow2') }
      log(`reusing images in ${tmp.path}`)
    } else {
      log(`building images in ${tmp.path}`)
      images = await buildImages(tmp.path)
    }
    const T = 2 ** 41
    const validD = validateD(images.D, INPROC, [[0, 2 * MiB], [T / 2 + 12345, 2 * MiB + 777], [T - 2 * MiB - 4097, 2 * MiB + 4097]])
    const buildSeconds = (performance.now() - tBuild) / 1000

    // --- qbm info on C, whole process, vs qemu-img info --------------------------------------
    log('info on C: qemu-img info --output=json vs qbm info --output=json (whole process)')
    const ic = interleaved(N, {
      node: () => timed(NODE, ['-e', '0']),
      qemu: () => timed('qemu-img', ['info', '--output=json', images.C], { keepStdout: false }),
      qbm: () => qbm(['info', '--output=json', images.C]),
    }, {})
    const { node: nodeFloor, qemu: qemuInfo, qbm: qbmInfoC } = ic.procs
    const dataC = qbmDataBytes(images.C)
    const floorRatio = mMs(nodeFloor) / mMs(qemuInfo)
    rows.push({
      figure: '`qbm info` on C (open, list, dirty counts), whole process: time',
      qbm: ms(mMs(qbmInfoC)), baseline: `${ms(mMs(qemuInfo))} (qemu-img info)`,
      ratio: r2(mMs(qbmInfoC) / mMs(qemuInfo)), target: `≤ 0.5 (Node's floor: ${r2(floorRatio)})`, met: mMs(qbmInfoC) <= mMs(qemuInfo) / 2,
      data: { qbmMs: qbmInfoC.ms, qemuImgMs: qemuInfo.ms, nodeStartupMs: nodeFloor.ms },
    })
    rows.push({
      figure: '`qbm info` on C, whole process: peak RSS',
      qbm: mib(mRss(qbmInfoC)), baseline: `${mib(mRss(qemuInfo))} (qemu-img info)`,
      ratio: r2(mRss(qbmInfoC) / mRss(qemuInfo)), target: '≤ 1/4 (0.25)', met: mRss(qbmInfoC) <= mRss(qemuInfo) / 4,
      data: { qbmKiB: qbmInfoC.rssKiB, qemuImgKiB: qemuInfo.rssKiB, nodeStartupKiB: nodeFloor.rssKiB },
    })
    rows.push({
      figure: '  (floor: `node -e 0`, Node start-up alone)',
      qbm: `${ms(mMs(nodeFloor))}, ${mib(mRss(nodeFloor))}`, baseline: '', ratio: `${r2(mMs(nodeFloor) / mMs(qemuInfo))}, ${r2(mRss(nodeFloor) / mRss(qemuInfo))}`, target: '', met: null,
    })

    // --- the same work in-process -------------------------------------------------------------
    log('info on C in-process: openImage + describeImage')
    const desc = inproc(['describe', images.C, String(Math.max(7, N))])
    rows.push({
      figure: 'same work in-process (openImage + describeImage) on C',
      qbm: ms(desc.medianMs), baseline: `${ms(mMs(qemuInfo))} (qemu-img info)`,
      ratio: r2(desc.medianMs / mMs(qemuInfo)), target: `≤ 0.1 (read floor: ${r2(desc.intoMedianMs / mMs(qemuInfo))})`, met: desc.medianMs <= mMs(qemuInfo) / 10,
      data: desc,
    })
    rows.push({
      figure: `  (floor: plain read of the same ${(desc.dataBytes / MiB).toFixed(1)} MiB of bitmap data, in-process: fresh buffers / readInto one reused 1 MiB buffer)`,
      qbm: `${ms(desc.readMedianMs)} / ${ms(desc.intoMedianMs)}`, baseline: '',
      ratio: `${r2(desc.readMedianMs / mMs(qemuInfo))} / ${r2(desc.intoMedianMs / mMs(qemuInfo))}`, target: '', met: null,
    })

    // --- qbm map on B vs nbdinfo --map ---------------------------------------------------------
    log('map on B: nbdinfo --map --json via qemu-nbd -r -B vs qbm map --output=json')
    const nbdArgs = [`--map=qemu:dirty-bitmap:${BITMAP.B}`, '--json', '--', '[', 'qemu-nbd', '-r', '-f', 'qcow2', '-B', BITMAP.B, images.B, ']']
    const nbdOnce = timed('nbdinfo', nbdArgs)
    const qbmOnce = timed(NODE, [QBM_BIN, 'map', '--output=json', images.B, BITMAP.B])
    const want = nbdDirty(nbdOnce.stdout)
    const got = (JSON.parse(qbmOnce.stdout) as Array<{ offset: number; length: number }>).map((x) => [x.offset, x.length] as [number, number])
    const mapAgrees = want.length === got.length && want.every((w, i) => w[0] === got[i]![0] && w[1] === got[i]![1])
    const nbdRows = (JSON.parse(nbdOnce.stdout) as unknown[]).length
    if (!mapAgrees) log(`WARNING: qbm map and nbdinfo disagree on B (${got.length} vs ${want.length} dirty extents)`)
    else log(`B: qbm map equals nbdinfo's dirty extents (${got.length} dirty; nbdinfo prints ${nbdRows} extents)`)
    // Interleaved, one of each per round, so that load changes hit every figure alike; the
    // map's parts each run in a fresh process (cold, as the whole process runs them).
    const part = (name: string) => (): number => inproc(['map-part', images.B, BITMAP.B, name]).ms as number
    const m = interleaved(N, {
      nbd: () => timed('nbdinfo', nbdArgs, { keepStdout: false }),
      map: () => qbm(['map', '--output=json', images.B, BITMAP.B]),
      mapAll: () => qbm(['map', '--output=json', '--all', images.B, BITMAP.B]),
      help: () => qbm(['--help']),
    }, { runs: part('runs'), format: part('format'), devnull: part('devnull') })
    const { nbd: nbdMap, map: qbmMap, mapAll: qbmMapAll, help: qbmHelp } = m.procs
    const parts = m.values as { runs: number[]; format: number[]; devnull: number[] }
    const dataB = qbmDataBytes(images.B)
    rows.push({
      figure: `\`qbm map --output=json\` on B (${got.length} dirty extents)`,
      qbm: ms(mMs(qbmMap)), baseline: `${ms(mMs(nbdMap))} (nbdinfo --map --json, ${nbdRows} extents)`,
      ratio: `${r2(mMs(nbdMap) / mMs(qbmMap))}×`, target: `≥ 5× faster (floor: ${r2(mMs(nbdMap) / mMs(qbmHelp))}×)`, met: mMs(nbdMap) / mMs(qbmMap) >= 5,
      data: { qbmMs: qbmMap.ms, nbdinfoMs: nbdMap.ms, agrees: mapAgrees, bytes: qbmOnce.stdout.length },
    })
    {
      const runsMs = median(parts.runs)
      const fmtMs = median(parts.format) - runsMs
      const nullMs = median(parts.devnull) - median(parts.format)
      const pipeMs = mMs(qbmMap) - mMs(qbmHelp) - median(parts.format)
      const pc = (x: number): string => `${((100 * x) / mMs(qbmMap)).toFixed(0)}%`
      rows.push({
        figure: `  (where it goes, each part cold in a fresh process: start-up + loading the CLI; open + finding the runs; formatting ${(qbmOnce.stdout.length / 1e6).toFixed(1)} MB of JSON; writing it, to /dev/null / the rest of the whole process: the pipe)`,
        qbm: `${ms(mMs(qbmHelp))}; ${ms(runsMs)}; ${ms(fmtMs)}; ${ms(nullMs)} / ${ms(pipeMs)}`, baseline: '',
        ratio: `${pc(mMs(qbmHelp))}; ${pc(runsMs)}; ${pc(fmtMs)}; ${pc(nullMs)} / ${pc(pipeMs)}`, target: '', met: null, data: parts,
      })
    }
    rows.push({
      figure: `  (\`--all\`: clean extents too, the ${nbdRows} extents nbdinfo prints)`,
      qbm: ms(mMs(qbmMapAll)), baseline: ms(mMs(nbdMap)),
      ratio: `${r2(mMs(nbdMap) / mMs(qbmMapAll))}×`, target: '(≥ 5×)', met: null, data: { qbmMs: qbmMapAll.ms },
    })
    rows.push({
      figure: '  (floor: `qbm --help`, Node start-up + loading the CLI; the best ratio a Node CLI can reach)',
      qbm: ms(mMs(qbmHelp)), baseline: ms(mMs(nbdMap)),
      ratio: `${r2(mMs(nbdMap) / mMs(qbmHelp))}×`, target: '', met: null, data: { ms: qbmHelp.ms },
    })

    // --- full scan and zooms on D (in-process) -----------------------------------------------------
    log(`scan of D in-process: sequential read vs scan + heatmap, then ${args.views} random zooms`)
    const sc = inproc(['scan', images.D, BITMAP.D, String(Math.max(3, Math.min(N, 5))), String(args.views), '5'])
    // Baseline: the faster of the two plain reads (fresh 8 MiB buffers, or readInto one reused
    // 1 MiB buffer as the scan now does), so the ratio is against the best plain read measured.
    const readBase = Math.min(sc.readMedianMs, sc.intoMedianMs)
    const thr = readBase / sc.fullMedianMs
    rows.push({
      figure: `full scan (dirty count + 4096-cell heatmap) on D (${(sc.bytes / MiB).toFixed(0)} MiB)`,
      qbm: `${ms(sc.fullMedianMs)} = ${(sc.scanMBps as number).toFixed(0)} MB/s`,
      baseline: `${ms(readBase)} = ${(sc.bytes / 1e6 / (readBase / 1000)).toFixed(0)} MB/s (plain read, the faster of: fresh buffers ${ms(sc.readMedianMs)}, readInto ${ms(sc.intoMedianMs)})`,
      ratio: r2(thr), target: '≥ 1/3 (0.333) of read throughput', met: thr >= 1 / 3,
      data: sc,
    })
    rows.push({
      figure: `heatmap, 4096 cells, random zoom on D after the scan, views as asked (median / max of ${sc.zoom.views})`,
      qbm: `${ms(sc.zoom.medianMs)} / ${ms(sc.zoom.maxMs)}`, baseline: '—', ratio: '', target: '≤ 16 ms', met: sc.zoom.maxMs <= 16,
    })
    rows.push({
      figure: `heatmap, 4096 cells, random zoom on D after the scan, views through the page's \`heatRequest\` (${sc.zoomSnapped.snappedViews} of ${sc.zoom.views} snapped; median / max)`,
      qbm: `${ms(sc.zoomSnapped.medianMs)} / ${ms(sc.zoomSnapped.maxMs)}`, baseline: '—', ratio: '', target: '≤ 16 ms', met: sc.zoomSnapped.maxMs <= 16,
    })

    // --- whole-process qbm commands on D (for time and peak RSS) -------------------------------------
    log('qbm info and qbm heatmap on D, whole process')
    const heavy = Math.max(2, Math.min(N, 3))
    const qbmInfoD = series(heavy, 0, () => qbm(['info', '--output=json', images.D]))
    const qbmHeatD = series(heavy, 0, () => qbm(['heatmap', '--cells', '4096', '--output=json', images.D, BITMAP.D]))
    const dataD = qbmDataBytes(images.D)

    // --- edits on a copy of C -------------------------------------------------------------------
    log('edits on a copy of C: add / remove vs qemu-img bitmap --add / --remove')
    const W = join(tmp.path, 'C-edit.qcow2')
    sparseCopy(images.C, W)
    const ed = { qAdd: [] as number[], qRem: [] as number[], iAdd: [] as number[], iRem: [] as number[], qAddRss: [] as number[], qRemRss: [] as number[] }
    for (let i = 0; i < N + 1; i++) {
      const a = qbm(['bitmap', '--add', W, 'x'])
      const r = qbm(['bitmap', '--remove', W, 'x'])
      const qa = timed('qemu-img', ['bitmap', '--add', W, 'y'])
      const qr = timed('qemu-img', ['bitmap', '--remove', W, 'y'])
      if (i === 0) continue // warm-up
      ed.qAdd.push(a.ms); ed.qRem.push(r.ms); ed.iAdd.push(qa.ms); ed.iRem.push(qr.ms)
      ed.qAddRss.push(a.rssKiB); ed.qRemRss.push(r.rssKiB)
    }
    const chk = run('qemu-img', ['check', W], { okCodes: [0, 2, 3] })
    if (chk.code !== 0) log(`WARNING: qemu-img check after the add/remove runs exited ${chk.code}: ${chk.stdout.slice(0, 500)}`)
    rows.push({
      figure: 'add a bitmap on C', qbm: ms(median(ed.qAdd)), baseline: `${ms(median(ed.iAdd))} (qemu-img bitmap --add)`,
      ratio: r2(median(ed.qAdd) / median(ed.iAdd)), target: '≤ 1/2 (0.5)', met: median(ed.qAdd) <= median(ed.iAdd) / 2, data: ed,
    })
    rows.push({
      figure: 'remove a bitmap on C', qbm: ms(median(ed.qRem)), baseline: `${ms(median(ed.iRem))} (qemu-img bitmap --remove)`,
      ratio: r2(median(ed.qRem) / median(ed.iRem)), target: '≤ 1/2 (0.5)', met: median(ed.qRem) <= median(ed.iRem) / 2,
    })

    log('clear in_use on C (writer killed) vs qemu-img bitmap --remove of the in-use bitmap (QEMU\'s only fix)')
    const ciu = { qbm: [] as number[], qbmRss: [] as number[], qemu: [] as number[] }
    for (let i = 0; i < N + 1; i++) {
      sparseCopy(images.C, W)
      killWriter(W)
      const q = qbm(['bitmap', '--clear-in-use=keep', '--force', W, BITMAP.C])
      sparseCopy(images.C, W)
      killWriter(W)
      const qr = timed('qemu-img', ['bitmap', '--remove', W, BITMAP.C])
      if (i === 0) continue
      ciu.qbm.push(q.ms); ciu.qbmRss.push(q.rssKiB); ciu.qemu.push(qr.ms)
    }
    rows.push({
      figure: 'clear in_use on C (writer killed)', qbm: ms(median(ciu.qbm)), baseline: `${ms(median(ciu.qemu))} (qemu-img bitmap --remove)`,
      ratio: r2(median(ciu.qbm) / median(ciu.qemu)), target: '≤ 1/2 (0.5)', met: median(ciu.qbm) <= median(ciu.qemu) / 2, data: ciu,
    })
    rmSync(W, { force: true })

    // --- peak RSS of every qbm command --------------------------------------------------------
    const rssRow = (what: string, kib: number, dataBytes: number): Row => {
      const bound = 64 * 1024 + dataBytes / 8 / 1024
      return {
        figure: `peak RSS: ${what}`, qbm: mib(kib), baseline: `reads ${(dataBytes / MiB).toFixed(1)} MiB of bitmap data`,
        ratio: r2(kib / bound), target: `≤ 64 MiB + 1/8 of it = ${mib(bound)}`, met: kib <= bound,
      }
    }
    rows.push(rssRow('qbm info C', maxRss(qbmInfoC), dataC))
    rows.push(rssRow('qbm map B', max(qbmMap.rssKiB), dataB))
    rows.push(rssRow('qbm map --all B', max(qbmMapAll.rssKiB), dataB))
    rows.push(rssRow('qbm info D', maxRss(qbmInfoD), dataD))
    rows.push(rssRow('qbm heatmap D (4096 cells)', maxRss(qbmHeatD), dataD))
    rows.push(rssRow('qbm bitmap --add (C)', max(ed.qAddRss), 0))
    rows.push(rssRow('qbm bitmap --remove (C)', max(ed.qRemRss), 0))
    rows.push(rssRow('qbm bitmap --clear-in-use=keep (C)', max(ciu.qbmRss), 0))
    rows.push({ figure: '  (whole process: qbm info D, qbm heatmap D)', qbm: `${ms(mMs(qbmInfoD))}, ${ms(mMs(qbmHeatD))}`, baseline: '', ratio: '', target: '', met: null })

    log('browser: Chromium on the production build (dist/) and the bench page (bench-out/browser/)')
    const br = await browserFigures(ROOT, images.A, images.D, BITMAP.D, N, tmp.path)
    mach.chromium = br.chromium
    rows.push(...browserRows(br))

    // --- issue 11: the disk map in Chromium (e2e/big-map.spec.ts, its own images) ---------------
    log('browser: the 2-D map on 256 TiB and 2 TiB images (Chromium)')
    rows.push(...benchMap2d({ root: ROOT, runs: Math.max(3, N) }))

    // --- issue 9: the host (qbm scan, qbm serve) ---------------------------------------------------
    log('host: qbm scan over 1,000 images vs a loop of qemu-img info')
    rows.push(...benchScan({ dir: tmp.path, qbmBin: QBM_BIN, runs: Math.min(N, 3) }))
    log('host: qbm serve through a proxy adding 25 ms each way (Chromium)')
    rows.push(...await benchServeLatency({ dir: tmp.path, qbmBin: QBM_BIN, runs: Math.min(N, 5) }))
    log('host: in-place edits on 1, 10 and 100 GiB images (qbm serve, qbm bitmap, qemu-img bitmap)')
    rows.push(...await benchServeEdit({ dir: tmp.path, qbmBin: QBM_BIN, runs: Math.min(N, 5) }))

    const total = elapsedSeconds() + Number(process.env.QBM_BENCH_BUILD_MS ?? 0) / 1000
    rows.push({
      figure: 'whole bench (build CLI + images + validation + every figure)', qbm: `${total.toFixed(0)} s`, baseline: `images + D validation: ${buildSeconds.toFixed(0)} s`,
      ratio: '', target: '< 600 s on 2 cores', met: total < 600,
    })
    if (args.json) {
      process.stdout.write(JSON.stringify({ machine: mach, runs: N, validD, rows, totalSeconds: total }, null, 2) + '\n')
    } else {
      process.stdout.write(formatTable(rows, mach, N))
    }
  } finally {
    if (args.keep || args.images) log(`images kept in ${tmp.path}`)
    else tmp.cleanup()
  }
}

/** The browser rows (browser.ts). */
function browserRows(br: BrowserFigures): Row[] {
  const d = br.dropToHeatmapMs
  const sc = br.scan
  const mbps = (t: number): string => `${(sc.bytes / 1e6 / (t / 1000)).toFixed(0)} MB/s`
  const scanMs = median(sc.scanMs)
  const wasm = sc.kernel === 'wasm'
  return [
    {
      figure: 'browser: drop → first heatmap on A (Chromium, production build, fresh page per run)',
      qbm: `${ms(median(d))} (${ms(Math.min(...d))}–${ms(max(d))})`, baseline: '—', ratio: '', target: '≤ 300 ms', met: median(d) <= 300, data: { ms: d },
    },
    {
      figure: `browser: full scan (dirty count + 4096-cell heatmap) of D (${(sc.bytes / MiB).toFixed(0)} MiB) in a worker, kernel: ${sc.kernel}`,
      qbm: `${ms(scanMs)} = ${mbps(scanMs)}`,
      baseline: `${ms(sc.readBaseMs)} = ${mbps(sc.readBaseMs)} (plain \`File.slice().arrayBuffer()\` of the same bytes in the same worker, the faster of: one at a time ${ms(median(sc.readMs))}, one read ahead ${ms(median(sc.readAheadMs))})`,
      ratio: r2(sc.ratio), target: '≥ 0.8 of read throughput, WebAssembly kernel', met: sc.ratio >= 0.8 && wasm, data: sc as unknown as Record<string, unknown>,
    },
    {
      figure: `browser: longest main-thread task while the app scans D (${br.appScan.tasks} tasks in ${ms(br.appScan.scanMs)}; CPU, wall in parentheses)`,
      qbm: `${ms(br.appScan.maxCpuMs)} (${ms(br.appScan.maxWallMs)})`, baseline: '—', ratio: '', target: '≤ 50 ms', met: br.appScan.maxCpuMs <= 50, data: br.appScan,
    },
  ]
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`)
  process.exit(1)
})

