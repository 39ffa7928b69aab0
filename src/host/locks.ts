/**
 * Which QEMU process has an image open (Linux, Node only). QEMU takes OFD locks on single bytes
 * of every image it opens (block/file-posix.c, raw_apply_lock_bytes): byte 100 + bit for each
 * permission it holds and 200 + bit for each permission it does not share, with the bits of
 * include/block/block-common.h (BLK_PERM_CONSISTENT_READ 0, WRITE 1, WRITE_UNCHANGED 2,
 * RESIZE 3). `qemu-nbd IMG` holds 100 101 103 201 203; `qemu-nbd -r IMG` holds 100 201 203.
 *
 * The kernel lists every lock in /proc/locks (fs/locks.c, lock_get_status): an OFD lock has no
 * owner pid there (-1), so the holder is found through the `lock:` lines of
 * /proc/PID/fdinfo/FD, which name the same MAJ:MIN:INODE. Where /proc/locks does not exist
 * (not Linux), every holder is null: QEMU's locks cannot be seen, and nothing is reported.
 */
import * as fs from 'node:fs'
import { majorMinor } from '../io/node-file.js'

/** QEMU's lock byte bases (block/file-posix.c RAW_LOCK_PERM_BASE, RAW_LOCK_SHARED_BASE). */
export const RAW_LOCK_PERM_BASE = 100
export const RAW_LOCK_SHARED_BASE = 200
/** QEMU's permission bits are a uint64_t: lock bytes run from a base to base + 63. */
const PERM_BITS = 64
/** BLK_PERM_WRITE's bit (include/block/block-common.h) */
const BLK_PERM_WRITE_BIT = 1

/** A QEMU process that has an image open. */
export interface LockHolder {
  pid?: number
  program?: string
  /** QEMU holds the write permission (lock byte 101) */
  write: boolean
  /** QEMU lock bytes seen, e.g. [100, 101, 103, 201, 203] */
  lockBytes: number[]
}

/** Looks up the QEMU process holding a file, from one read of /proc/locks. */
export interface LockTable {
  /** The QEMU process holding the file with this stat's dev and ino, or null. */
  holderOf(st: { dev: number | bigint; ino: number | bigint }): LockHolder | null
}

/** One line of /proc/locks (or a `lock:` line of /proc/PID/fdinfo/FD). */
export interface LockLine {
  /** OFDLCK, POSIX, FLOCK, LEASE, DELEG, ... */
  kind: string
  /** READ, WRITE, UNLCK, ... */
  type: string
  /** owner pid; -1 for OFD locks, which belong to an open file, not a process */
  pid: number
  /** 'MAJ:MIN:INODE' with the device numbers in decimal, the form fileKey builds */
  key: string
  start: number
  /** last byte locked (inclusive); Infinity for EOF */
  end: number
}

/** The key /proc/locks lines are matched by, from a stat's dev and ino. */
export function fileKey(dev: number | bigint, ino: number | bigint): string {
  const { major, minor } = majorMinor(dev)
  return `${major}:${minor}:${BigInt(ino)}`
}

/**
 * Parse one line of /proc/locks: `1: OFDLCK ADVISORY  READ -1 fe:00:2146353 100 101`. The
 * device numbers are printed in hex ("%02x:%02x"), the inode in decimal; a `lock:\t` prefix
 * (fdinfo) is accepted. Null for blocked waiters (`1: -> POSIX ...`), lines without an inode
 * (`<none>:0`) and anything else that is not a held lock.
 */
export function parseLockLine(line: string): LockLine | null {
  const t = line.replace(/^lock:\s*/, '').trim().split(/\s+/)
  if (t.length < 8 || !/^\d+:$/.test(t[0]!) || t[1] === '->') return null
  const at = t.findIndex((x, i) => i > 1 && /^[0-9a-f]+:[0-9a-f]+:\d+$/i.test(x))
  if (at < 3 || at + 2 >= t.length) return null
  const [maj, min, ino] = t[at]!.split(':') as [string, string, string]
  const start = Number(t[at + 1])
  const end = t[at + 2] === 'EOF' ? Infinity : Number(t[at + 2])
  const pid = Number(t[at - 1])
  if (!Number.isSafeInteger(start) || !(end >= start) || !Number.isInteger(pid)) return null
  return { kind: t[1]!, type: t[at - 2]!, pid, key: `${parseInt(maj, 16)}:${parseInt(min, 16)}:${BigInt(ino)}`, start, end }
}

/**
 * The QEMU lock bytes a lock covers, or [] when it is not one of QEMU's: an OFD lock (or a POSIX
 * lock, QEMU's fallback where OFD locks are missing) lying within 100-163 or 200-263. The kernel
 * merges adjacent ranges of one open file, so `100 101` is the two bytes 100 and 101.
 */
export function qemuLockBytes(l: LockLine): number[] {
  if (l.kind !== 'OFDLCK' && l.kind !== 'POSIX') return []
  for (const base of [RAW_LOCK_PERM_BASE, RAW_LOCK_SHARED_BASE]) {
    if (l.start >= base && l.end < base + PERM_BITS) {
      return Array.from({ length: l.end - l.start + 1 }, (_, i) => l.start + i)
    }
  }
  return []
}

/** QEMU's locks by file key, from the text of /proc/locks. */
export function qemuLocksByFile(text: string): Map<string, LockLine[]> {
  const m = new Map<string, LockLine[]>()
  for (const line of text.split('\n')) {
    const l = parseLockLine(line)
    if (!l || qemuLockBytes(l).length === 0) continue
    const list = m.get(l.key) ?? []
    list.push(l)
    m.set(l.key, list)
  }
  return m
}

const sortedBytes = (lines: LockLine[]): number[] => [...new Set(lines.flatMap(qemuLockBytes))].sort((a, b) => a - b)

function holderFrom(lines: LockLine[], pid?: number, program?: string): LockHolder {
  const lockBytes = sortedBytes(lines)
  return {
    ...(pid !== undefined ? { pid } : {}), ...(program !== undefined ? { program } : {}),
    write: lockBytes.includes(RAW_LOCK_PERM_BASE + BLK_PERM_WRITE_BIT), lockBytes,
  }
}

function readText(path: string): string | undefined {
  try { return fs.readFileSync(path, 'utf8') } catch { return undefined }
}

function listDir(path: string): string[] {
  try { return fs.readdirSync(path) } catch { return [] }
}

function programOf(pid: number): string | undefined {
  return readText(`/proc/${pid}/comm`)?.trim() || undefined
}

/** Processes, QEMU's first (comm qemu-*, kvm): the holder is almost always one of them. */
function pidsQemuFirst(): number[] {
  const pids = listDir('/proc').filter((d) => /^\d+$/.test(d)).map(Number)
  const qemuLike = (pid: number): boolean => /^(qemu|kvm)/.test(programOf(pid) ?? '')
  const first = pids.filter(qemuLike)
  return [...first, ...pids.filter((p) => !first.includes(p))]
}

/** The file an fd of a process refers to is `st` (stat through the /proc/PID/fd link). */
function fdIs(pid: number, fd: string, st: FileId): boolean {
  try {
    const s = fs.statSync(`/proc/${pid}/fd/${fd}`, { bigint: true })
    return s.dev === BigInt(st.dev) && s.ino === BigInt(st.ino)
  } catch {
    return false
  }
}

/**
 * The processes holding QEMU locks on a file whose /proc/locks key is one of `keys`, through
 * the `lock:` lines of their /proc/PID/fdinfo/FD files (Linux 4.x and later list an open file's
 * locks there). With `verify`, the fd must also refer to that file (see holderOf). The search
 * stops once the holders found account for every byte in `bytes`. Processes we may not
 * inspect (another user's, without root) are passed over.
 */
function findHolders(keys: ReadonlySet<string>, verify?: FileId, bytes: readonly number[] = []): LockHolder[] {
  const found: LockHolder[] = []
  const missing = new Set(bytes)
  for (const pid of pidsQemuFirst()) {
    if (found.length > 0 && missing.size === 0) break
    if (pid === process.pid) continue
    const lines: LockLine[] = []
    for (const fd of listDir(`/proc/${pid}/fdinfo`)) {
      const info = readText(`/proc/${pid}/fdinfo/${fd}`)
      if (!info || !info.includes('lock:')) continue
      const mine: LockLine[] = []
      for (const row of info.split('\n')) {
        if (!row.startsWith('lock:')) continue
        const l = parseLockLine(row)
        if (l && keys.has(l.key) && qemuLockBytes(l).length > 0) mine.push(l)
      }
      if (mine.length > 0 && (!verify || fdIs(pid, fd, verify))) lines.push(...mine)
    }
    if (lines.length === 0) continue
    const h = holderFrom(lines, pid, programOf(pid))
    for (const b of h.lockBytes) missing.delete(b)
    found.push(h)
  }
  return found
}

/** Read /proc/locks once; undefined where it does not exist (not Linux) or cannot be read. */
function readProcLocks(): string | undefined {
  return readText('/proc/locks')
}

type FileId = { dev: number | bigint; ino: number | bigint }

/** How holders are found for a file's lock keys (findHolders; tests pass their own). */
export type HolderFinder = (keys: ReadonlySet<string>, verify?: FileId, bytes?: readonly number[]) => LockHolder[]

/** A lock table from the text of /proc/locks (undefined: no /proc/locks, no holders). */
export function lockTableFrom(text: string | undefined, find: HolderFinder = findHolders): LockTable {
  const byFile = text === undefined ? new Map<string, LockLine[]>() : qemuLocksByFile(text)
  const cache = new Map<string, LockHolder | null>()
  return {
    holderOf(st) {
      const key = fileKey(st.dev, st.ino)
      if (cache.has(key)) return cache.get(key)!
      let h: LockHolder | null = null
      const lines = byFile.get(key)
      if (lines) {
        // POSIX locks (QEMU's fallback) name their owner; OFD locks need the fdinfo search.
        const posixPid = lines.find((l) => l.kind === 'POSIX')?.pid
        const holders = posixPid !== undefined ? [holderFrom(lines, posixPid, programOf(posixPid))] : find(new Set([key]), undefined, sortedBytes(lines))
        // Several holders (e.g. two `qemu-nbd -r`): name the writer if there is one.
        h = holders.find((x) => x.write) ?? holders[0] ?? holderFrom(lines)
      } else {
        // On btrfs, stat gives a subvolume's device number but /proc/locks the superblock's:
        // the same inode under another device is this file only if a holder's fd refers to it.
        const ino = `:${BigInt(st.ino)}`
        const keys = new Set([...byFile.keys()].filter((k) => k.endsWith(ino)))
        if (keys.size > 0) {
          const holders = find(keys, st, sortedBytes([...keys].flatMap((k) => byFile.get(k)!)))
          h = holders.find((x) => x.write) ?? holders[0] ?? null
        }
      }
      cache.set(key, h)
      return h
    },
  }
}

/**
 * One read of /proc/locks; pid/program looked up lazily, only for files that have QEMU locks.
 * Linux only: elsewhere (no /proc/locks) every holderOf is null.
 */
export function readLockTable(): LockTable {
  return lockTableFrom(readProcLocks())
}

/**
 * The QEMU process holding `path` (file or block device node: the node's own dev and inode,
 * which is what QEMU locks), or null when none does or the path cannot be stat'ed. Linux only.
 */
export function lockHolder(path: string): LockHolder | null {
  let st: fs.BigIntStats
  try { st = fs.statSync(path, { bigint: true }) } catch { return null }
  return readLockTable().holderOf(st)
}

/** 'qemu-nbd (pid 1234)' or 'an unknown process' */
export function holderText(h: LockHolder): string {
  if (h.pid === undefined) return 'an unknown process'
  return `${h.program ?? 'a process'} (pid ${h.pid})`
}
