/**
 * The bench's images (issue 5), built fresh in a temp dir with QEMU's tools, except D's data,
 * which qbm's engine writes (bench/write-bitmap.ts). Fixed seeds, so every run builds the same
 * images.
 *
 * A: 2 TiB, 64 KiB granularity, 5,000 random 4 KiB writes.
 * B: 2 TiB, 64 KiB granularity, 524,288 alternating dirty granules (1,048,576 extents).
 * C: 64 TiB, 64 KiB granularity (128 MiB of bitmap), 2,000 random 4 KiB writes.
 * D: 2 TiB, 512 B granularity: 2^32 bits, 512 MiB of dense pseudo-random bitmap data.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fillBitmap } from './write-bitmap.js'
import { Prng, TiB, log, run } from './util.js'

/** Paths of the four bench images. */
export interface Images {
  A: string
  B: string
  C: string
  D: string
}

/** The bitmap of each image, by image. */
export const BITMAP = { A: 'a', B: 'b', C: 'c', D: 'd' } as const

/** Feed qemu-io commands on stdin (quiet writes: the per-write report line is what costs time). */
function qemuIo(img: string, cmds: string[]): void {
  // cache=unsafe only skips fsync; qemu-io still writes every cache back to the file on quit.
  run('qemu-io', ['-t', 'unsafe', '-f', 'qcow2', img], { input: cmds.join('\n') + '\nquit\n' })
}

function randomWrites(seed: number, count: number, diskBytes: number): string[] {
  const rng = new Prng(seed)
  const cmds: string[] = []
  const slots = diskBytes / 4096
  for (let i = 0; i < count; i++) cmds.push(`write -q -P 0x5a ${rng.int(slots) * 4096} 4096`)
  return cmds
}

function create(path: string, size: string, bitmap: string, granularity?: number): void {
  run('qemu-img', ['create', '-q', '-f', 'qcow2', path, size])
  run('qemu-img', ['bitmap', '--add', ...(granularity ? ['-g', String(granularity)] : []), path, bitmap])
}

/** Build images A-D in `dir` (fixed seeds; see bench/README.md). */
export async function buildImages(dir: string): Promise<Images> {
  const img: Images = { A: join(dir, 'A.qcow2'), B: join(dir, 'B.qcow2'), C: join(dir, 'C.qcow2'), D: join(dir, 'D.qcow2') }

  let t = performance.now()
  create(img.A, '2T', BITMAP.A)
  qemuIo(img.A, randomWrites(0xa, 5000, 2 * TiB))
  log(`A built (5,000 random 4 KiB writes) in ${((performance.now() - t) / 1000).toFixed(1)} s`)

  t = performance.now()
  create(img.B, '2T', BITMAP.B)
  // 524,288 dirty granules, every other one: write -z dirties without storing data (docs/format.md §10).
  const cmds: string[] = []
  for (let k = 0; k < 524288; k++) cmds.push(`write -q -z ${2 * k * 65536} 65536`)
  qemuIo(img.B, cmds)
  log(`B built (524,288 alternating granules) in ${((performance.now() - t) / 1000).toFixed(1)} s`)

  t = performance.now()
  create(img.C, '64T', BITMAP.C)
  qemuIo(img.C, randomWrites(0xc, 2000, 64 * TiB))
  log(`C built (64 TiB, 2,000 random 4 KiB writes) in ${((performance.now() - t) / 1000).toFixed(1)} s`)

  t = performance.now()
  create(img.D, '2T', BITMAP.D, 512)
  const rng = new Prng(0xd)
  const r = await fillBitmap(img.D, BITMAP.D, (_off, buf) => rng.fill(buf))
  log(`D built (2^32 bits, ${r.dataBytes / 2 ** 20} MiB of pseudo-random bitmap data written by qbm's engine) in ${((performance.now() - t) / 1000).toFixed(1)} s`)
  return img
}

/**
 * Prove D valid before timing it (issue 5): \`qemu-img check\` is clean, and on a few sub-ranges
 * the dirty extents QEMU serves over NBD equal qbm's. nbdinfo --map cannot be used on D as a
 * whole (libnbd 1.14 collects the entire map, ~2^31 extents here, before printing anything) and
 * qemu-nbd cannot export a sub-range with its bitmap (--offset and a raw wrapper both lose it),
 * so the NBD side is \`qemu-img map --start-offset --max-length\` over the same qemu-nbd -r -B
 * export with x-dirty-bitmap (dirty regions reported as "data": false). The qbm side is the
 * engine's extentsInRange (what \`qbm map\` iterates), in a child process.
 */
export function validateD(D: string, inproc: string, ranges: Array<[number, number]>): { checkMs: number; extentsCompared: number } {
  let t = performance.now()
  const chk = run('qemu-img', ['check', D], { okCodes: [0, 1, 2, 3] })
  if (chk.code !== 0) throw new Error(`qemu-img check D exited ${chk.code}: ${chk.stdout}${chk.stderr}`)
  const checkMs = performance.now() - t
  log(`D: qemu-img check clean (${(checkMs / 1000).toFixed(1)} s)`)
  t = performance.now()
  const dir = mkdtempSync(join(tmpdir(), 'qbm-bench-nbd-'))
  const sock = join(dir, 'nbd.sock')
  const pidFile = join(dir, 'nbd.pid')
  let compared = 0
  try {
    run('qemu-nbd', ['-r', '-f', 'qcow2', '-B', BITMAP.D, '-k', sock, '--persistent', '--fork', '--pid-file', pidFile, D])
    for (const [start, length] of ranges) {
      const m = run('qemu-img', ['map', '--output=json', '--start-offset', String(start), '--max-length', String(length), '--image-opts',
        `driver=nbd,server.type=unix,server.path=${sock},x-dirty-bitmap=qemu:dirty-bitmap:${BITMAP.D}`])
      const rows = JSON.parse(m.stdout) as Array<{ start: number; length: number; data: boolean }>
      const nbd: Array<[number, number]> = []
      for (const x of rows) {
        if (x.data) continue // x-dirty-bitmap reports dirty as not data
        const l = nbd[nbd.length - 1]
        if (l && l[0] + l[1] === x.start) l[1] += x.length
        else nbd.push([x.start, x.length])
      }
      const ours = JSON.parse(run(process.execPath, [inproc, 'extents', D, BITMAP.D, String(start), String(length)]).stdout) as Array<[number, number]>
      if (nbd.length !== ours.length || nbd.some((x, i) => x[0] !== ours[i]![0] || x[1] !== ours[i]![1])) {
        const i = nbd.findIndex((x, k) => !ours[k] || x[0] !== ours[k]![0] || x[1] !== ours[k]![1])
        throw new Error(`D: dirty extents in [${start}, +${length}) differ at #${i}: NBD ${JSON.stringify(nbd[i])} qbm ${JSON.stringify(ours[i])} (${nbd.length} vs ${ours.length})`)
      }
      compared += nbd.length
    }
  } finally {
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim())
      if (pid > 0) { try { process.kill(pid, 'SIGTERM') } catch { /* gone */ } }
    }
    rmSync(dir, { recursive: true, force: true })
  }
  log(`D: ${compared} dirty extents in ${ranges.length} sub-ranges agree between qemu-nbd -B (qemu-img map, x-dirty-bitmap) and qbm (${((performance.now() - t) / 1000).toFixed(1)} s)`)
  return { checkMs, extentsCompared: compared }
}
