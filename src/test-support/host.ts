/**
 * Host fixtures for tests: loop devices (losetup) and QEMU processes holding an image
 * (qemu-nbd, qemu-io). Each returns its own cleanup; callers run it in finally / afterAll, so a
 * failing test never leaves a loop device attached or a qemu-nbd running.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, statSync, truncateSync } from 'node:fs'
import { join } from 'node:path'
import { requireTool, run } from './tools.js'

/** Sleep without an event loop (short waits in synchronous cleanups). */
function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Pad (or cut) a file to `size` bytes: a loop device drops a last partial 512-byte sector. */
export function padTo(path: string, size: number): void {
  truncateSync(path, size)
}

/** `size` rounded up to a multiple of `unit`. */
export function roundUp(size: number, unit: number): number {
  return Math.ceil(size / unit) * unit
}

/** Attach `file` to a free loop device (`losetup -f --show`); the device path and its detach. */
export function attachLoop(file: string): { dev: string; detach: () => void } {
  requireTool('losetup')
  if (statSync(file).size % 512 !== 0) throw new Error(`${file} is not a multiple of 512 bytes: the loop device would drop its end`)
  const r = run('losetup', ['-f', '--show', file])
  if (r.code !== 0) throw new Error(`losetup -f --show ${file} failed (exit ${r.code}): ${r.stderr.trim()}`)
  const dev = r.stdout.trim()
  let attached = true
  return {
    dev,
    detach: () => {
      if (!attached) return
      for (let i = 0; i < 50; i++) {
        // EBUSY while another opener (qemu-nbd being stopped) still has it.
        if (run('losetup', ['-d', dev]).code === 0) { attached = false; return }
        sleepMs(100)
      }
      throw new Error(`losetup -d ${dev} kept failing`)
    },
  }
}

function alive(pid: number): boolean {
  // A zombie has exited (its locks are gone) but stays in /proc until reaped.
  const stat = (() => { try { return readFileSync(`/proc/${pid}/stat`, 'utf8') } catch { return '' } })()
  return stat !== '' && !/^\d+ \(.*\) Z /.test(stat)
}

/** Stop a process: SIGTERM (qemu-nbd then stores its bitmaps and closes), SIGKILL after 10 s. */
function stopPid(pid: number): void {
  try { process.kill(pid, 'SIGTERM') } catch { return }
  for (let i = 0; i < 100 && alive(pid); i++) sleepMs(100)
  if (alive(pid)) {
    try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
    for (let i = 0; i < 50 && alive(pid); i++) sleepMs(100)
  }
}

/** A QEMU process holding an image: its pid, and stop() (idempotent; waits until it has exited). */
export interface Holder { pid: number; stop: () => void }

/**
 * `qemu-nbd -f qcow2 [-r] --socket DIR/nbd.sock --fork --pid-file DIR/nbd.pid IMAGE`: with
 * --fork it returns once the server holds the image (and its locks).
 */
export function startQemuNbd(image: string, dir: string, opts: { readOnly?: boolean } = {}): Holder {
  requireTool('qemu-nbd')
  const sock = join(dir, `nbd-${process.pid}-${Date.now()}.sock`)
  const pidFile = `${sock}.pid`
  const r = run('qemu-nbd', ['-f', 'qcow2', ...(opts.readOnly ? ['-r'] : []), `--socket=${sock}`, '--fork', `--pid-file=${pidFile}`, image])
  if (r.code !== 0) throw new Error(`qemu-nbd failed on ${image} (exit ${r.code}): ${r.stderr.trim()}`)
  const pid = Number(readFileSync(pidFile, 'utf8').trim())
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`qemu-nbd wrote no pid to ${pidFile}`)
  let stopped = false
  return { pid, stop: () => { if (!stopped) { stopPid(pid); stopped = true } } }
}

/**
 * `qemu-io -f qcow2 [-r] IMAGE` kept open on a pipe: it holds the image (and QEMU's locks)
 * until stop(). Resolves once qemu-io has opened the image (answered a first command).
 */
export async function startQemuIo(image: string, opts: { readOnly?: boolean } = {}): Promise<Holder> {
  requireTool('qemu-io')
  const p: ChildProcess = spawn('qemu-io', ['-f', 'qcow2', ...(opts.readOnly ? ['-r'] : []), image], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  p.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  p.stderr!.on('data', (d: Buffer) => { out += d.toString() })
  p.stdin!.write('read 0 512\n')
  for (let i = 0; i < 200 && !/read 512\/512 bytes/.test(out); i++) {
    if (p.exitCode !== null) throw new Error(`qemu-io exited on ${image}: ${out}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  if (!/read 512\/512 bytes/.test(out)) { p.kill('SIGKILL'); throw new Error(`qemu-io did not open ${image}: ${out}`) }
  let stopped = false
  return {
    pid: p.pid!,
    stop: () => {
      if (stopped) return
      stopped = true
      p.stdin!.end('quit\n')
      for (let i = 0; i < 100 && alive(p.pid!); i++) sleepMs(100)
      if (alive(p.pid!)) stopPid(p.pid!)
    },
  }
}
