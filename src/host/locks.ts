/**
 * Which QEMU process has an image open (Linux, Node only). QEMU takes OFD locks on single bytes
 * of every image it opens (block/file-posix.c, raw_apply_lock_bytes): byte 100 + bit for each
 * permission it holds and 200 + bit for each permission it does not share, with the bits of
 * include/block/block-common.h (BLK_PERM_CONSISTENT_READ 0, WRITE 1, WRITE_UNCHANGED 2,
 * RESIZE 3). `qemu-nbd IMG` holds 100 101 103 201 203; `qemu-nbd -r IMG` holds 100 201 203.
 *
 * The kernel lists every lock in /proc/locks (fs/locks.c, lock_get_status): an OFD lock has no
 * owner pid there (-1), so the holder is found through the `lock:` lines of
 * /proc/PID/fdinfo/FD, which name the same MAJ:MIN:INODE. A lock is on an inode: a block device
 * QEMU opened through another node (libvirt gives each QEMU a private /dev) is recognised by
 * its device number, through a stat of the holder's /proc/PID/fd/FD link. Where /proc/locks
 * does not exist (not Linux), every holder is null: QEMU's locks cannot be seen, and nothing is
 * reported.
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
import type { LockHolder } from '../session/overview.js'
export type { LockHolder } from '../session/overview.js'

/** Looks up the QEMU process holding a file, from one read of /proc/locks. */
export interface LockTable {
  /**
   * The QEMU process holding the file with this stat's dev and ino, or null. Pass a whole stat
   * (with mode and rdev) for a block device: QEMU may hold it through another device node.
   */
  holderOf(st: StatLike): LockHolder | null
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

/** An open file of a process that holds QEMU locks: where to stat it, and its lock lines. */
export interface LockedFd {
  pid: number
  /** /proc/PID/fd/FD: stat through it reaches the file, even in another mount namespace */
  link: string
  /** its QEMU locks (fdinfo `lock:` lines) */
  lines: LockLine[]
}

/** The fds holding QEMU locks in the processes `pids`, from their /proc/PID/fdinfo/FD files. */
function scanFds(pids: number[]): LockedFd[] {
  const out: LockedFd[] = []
  for (const pid of pids) {
    if (pid === process.pid) continue
    for (const fd of listDir(`/proc/${pid}/fdinfo`)) {
      const info = readText(`/proc/${pid}/fdinfo/${fd}`)
      if (!info || !info.includes('lock:')) continue
      const lines: LockLine[] = []
      for (const row of info.split('\n')) {
        if (!row.startsWith('lock:')) continue
        const l = parseLockLine(row)
        if (l && qemuLockBytes(l).length > 0) lines.push(l)
      }
      if (lines.length > 0) out.push({ pid, link: `/proc/${pid}/fd/${fd}`, lines })
    }
  }
  return out
}

/**
 * The fds holding QEMU locks, found through the `lock:` lines of /proc/PID/fdinfo/FD (Linux
 * 4.x and later list an open file's locks there), scanned at most once per table: QEMU's
 * processes first (comm qemu-*, kvm), the others only when those do not hold what is asked
 * for. Processes we may not inspect (another user's, without root) are passed over.
 */
export function procFdIndex(): (wanted: (f: LockedFd) => boolean) => LockedFd[] {
  let qemu: LockedFd[] | undefined
  let rest: LockedFd[] | undefined
  let pids: { qemu: number[]; rest: number[] } | undefined
  const split = (): { qemu: number[]; rest: number[] } => {
    if (pids) return pids
    const all = listDir('/proc').filter((d) => /^\d+$/.test(d)).map(Number)
    const isQemu = new Set(all.filter((pid) => /^(qemu|kvm)/.test(programOf(pid) ?? '')))
    pids = { qemu: all.filter((p) => isQemu.has(p)), rest: all.filter((p) => !isQemu.has(p)) }
    return pids
  }
  return (wanted) => {
    qemu ??= scanFds(split().qemu)
    const hits = qemu.filter(wanted)
    if (hits.length > 0) return hits
    rest ??= scanFds(split().rest)
    return rest.filter(wanted)
  }
}

/** Holders from the fds that hold a file's locks, one per process; the writer first. */
function holdersFrom(fds: LockedFd[], keys: ReadonlySet<string>): LockHolder[] {
  const byPid = new Map<number, LockLine[]>()
  for (const f of fds) byPid.set(f.pid, [...(byPid.get(f.pid) ?? []), ...f.lines.filter((l) => keys.has(l.key))])
  const hs = [...byPid].map(([pid, lines]) => holderFrom(lines, pid, programOf(pid)))
  // Several holders (e.g. two `qemu-nbd -r`): name the writer if there is one.
  return hs.sort((a, b) => Number(b.write) - Number(a.write))
}

/** Stat through a /proc/PID/fd link (null when it is gone or not ours to see). */
function statLink(link: string): fs.BigIntStats | null {
  try { return fs.statSync(link, { bigint: true }) } catch { return null }
}

/** Read /proc/locks once; undefined where it does not exist (not Linux) or cannot be read. */
function readProcLocks(): string | undefined {
  return readText('/proc/locks')
}

/** What holderOf needs of a stat: dev and ino; mode and rdev to recognise a block device. */
export interface StatLike {
  dev: number | bigint
  ino: number | bigint
  mode?: number | bigint
  rdev?: number | bigint
}

const S_IFMT = 0o170000n
const S_IFBLK = 0o060000n
const isBlock = (st: StatLike): boolean => st.mode !== undefined && (BigInt(st.mode) & S_IFMT) === S_IFBLK

/** A lock table from the text of /proc/locks (undefined: no /proc/locks, no holders). */
export function lockTableFrom(text: string | undefined, fdsHolding: (wanted: (f: LockedFd) => boolean) => LockedFd[] = procFdIndex()): LockTable {
  const byFile = text === undefined ? new Map<string, LockLine[]>() : qemuLocksByFile(text)
  const cache = new Map<string, LockHolder | null>()
  const lookup = (st: StatLike): LockHolder | null => {
    const key = fileKey(st.dev, st.ino)
    const lines = byFile.get(key)
    if (lines) {
      // POSIX locks (QEMU's fallback) name their owner; OFD locks need the fdinfo search.
      const posixPid = lines.find((l) => l.kind === 'POSIX')?.pid
      if (posixPid !== undefined) return holderFrom(lines, posixPid, programOf(posixPid))
      const keys = new Set([key])
      return holdersFrom(fdsHolding((f) => f.lines.some((l) => l.key === key)), keys)[0] ?? holderFrom(lines)
    }
    // The same file under another key: only a holder whose fd stats as this file counts.
    // - btrfs: stat gives a subvolume's device number, /proc/locks the superblock's.
    // - a block device opened through another node (libvirt gives QEMU a private /dev with its
    //   own nodes): another inode, the same device number (rdev).
    const ino = `:${BigInt(st.ino)}`
    const block = isBlock(st) && st.rdev !== undefined
    const keys = new Set([...byFile.keys()].filter((k) => block || k.endsWith(ino)))
    if (keys.size === 0) return null
    const same = (s: fs.BigIntStats | null): boolean => s !== null && (
      (s.dev === BigInt(st.dev) && s.ino === BigInt(st.ino)) || (block && s.isBlockDevice() && s.rdev === BigInt(st.rdev!)))
    return holdersFrom(fdsHolding((f) => f.lines.some((l) => keys.has(l.key)) && same(statLink(f.link))), keys)[0] ?? null
  }
  return {
    holderOf(st) {
      const id = `${fileKey(st.dev, st.ino)}/${isBlock(st) ? String(st.rdev) : ''}`
      if (!cache.has(id)) cache.set(id, lookup(st))
      return cache.get(id)!
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
