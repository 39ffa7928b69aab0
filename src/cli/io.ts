/** Output helpers: stdout writes that respect back-pressure for big outputs. */
import { writeSync } from 'node:fs'

let pending = ''

/** Buffered stdout; flushed every 1 MiB and at exit. */
export function out(s: string): void {
  pending += s
  if (pending.length > 1 << 20) flushOut()
}

/** Write out everything `out` has buffered (synchronously; a closed pipe drops it). */
export function flushOut(): void {
  let buf = Buffer.from(pending)
  pending = ''
  while (buf.length > 0) {
    try {
      const n = writeSync(1, buf)
      buf = buf.subarray(n)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue
      if ((e as NodeJS.ErrnoException).code === 'EPIPE') return
      throw e
    }
  }
}

/** Write `s` to stderr at once. */
export function err(s: string): void {
  writeSync(2, s)
}
