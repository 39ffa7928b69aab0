/**
 * QEMU's image locks: the /proc/locks line parser (table), and lockHolder() against real QEMU
 * processes holding a copy of a fixture: qemu-nbd read-write and read-only (-r), qemu-io, an
 * image on a loop device; the holder's pid must be the process's pid, `write` whether it
 * holds byte 101.
 */
import { copyFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FIXTURE_DIR } from '../test-support/fixtures.js'
import { attachLoop, padTo, roundUp, startQemuIo, startQemuNbd } from '../test-support/host.js'
import { sh, tempDir } from '../test-support/tools.js'
import { type LockedFd, fileKey, holderText, lockHolder, lockTableFrom, parseLockLine, qemuLockBytes, qemuLocksByFile, readLockTable } from './locks.js'

const tmp = tempDir('qbm-locks-')
afterAll(() => tmp.cleanup())

describe('parseLockLine', () => {
  it.each([
    ['OFD lock from qemu-nbd, two bytes', '4: OFDLCK ADVISORY  READ -1 fe:00:2146353 100 101', { kind: 'OFDLCK', type: 'READ', pid: -1, key: '254:0:2146353', start: 100, end: 101 }, [100, 101]],
    ['hex major:minor with letters both sides', '12: OFDLCK ADVISORY  READ -1 fd:1a:18446744073709551615 203 203', { kind: 'OFDLCK', type: 'READ', pid: -1, key: '253:26:18446744073709551615', start: 203, end: 203 }, [203]],
    ['a block device node on devtmpfs', '2: OFDLCK ADVISORY  READ -1 00:06:93 201 201', { kind: 'OFDLCK', type: 'READ', pid: -1, key: '0:6:93', start: 201, end: 201 }, [201]],
    ['POSIX lock: QEMU\'s fallback, owner pid given', '7: POSIX  ADVISORY  READ 4242 08:01:77 100 103', { kind: 'POSIX', type: 'READ', pid: 4242, key: '8:1:77', start: 100, end: 103 }, [100, 101, 102, 103]],
    ['POSIX whole-file lock: not QEMU\'s', '1: POSIX  ADVISORY  WRITE 30740 fe:00:2147633 0 EOF', { kind: 'POSIX', type: 'WRITE', pid: 30740, key: '254:0:2147633', start: 0, end: Infinity }, []],
    ['POSIX lock over QEMU\'s bytes and more: not QEMU\'s', '1: POSIX  ADVISORY  WRITE 5 fe:00:9 0 1000', { kind: 'POSIX', type: 'WRITE', pid: 5, key: '254:0:9', start: 0, end: 1000 }, []],
    ['FLOCK: never QEMU\'s', '3: FLOCK  ADVISORY  WRITE 812 00:1a:4711 0 EOF', { kind: 'FLOCK', type: 'WRITE', pid: 812, key: '0:26:4711', start: 0, end: Infinity }, []],
    ['OFD lock on bytes 300: not QEMU\'s', '5: OFDLCK ADVISORY  WRITE -1 fe:00:1 300 300', { kind: 'OFDLCK', type: 'WRITE', pid: -1, key: '254:0:1', start: 300, end: 300 }, []],
    ['fdinfo lock: line', 'lock:\t1: OFDLCK ADVISORY  READ -1 fe:00:2148188 100 101', { kind: 'OFDLCK', type: 'READ', pid: -1, key: '254:0:2148188', start: 100, end: 101 }, [100, 101]],
  ])('%s', (_, line, want, bytes) => {
    const l = parseLockLine(line)
    expect(l).toEqual(want)
    expect(qemuLockBytes(l!)).toEqual(bytes)
  })

  it.each([
    ['a blocked waiter', '1: -> OFDLCK ADVISORY  WRITE -1 fe:00:2146353 101 101'],
    ['a lock without an inode', '1: POSIX  ADVISORY  WRITE 99 <none>:0 0 EOF'],
    ['an empty line', ''],
    ['garbage', 'pos:\t393216'],
  ])('null for %s', (_, line) => {
    expect(parseLockLine(line)).toBeNull()
  })

  it('groups QEMU\'s locks by file; the table names the process whose fd holds them', () => {
    const text = [
      '1: OFDLCK ADVISORY  READ -1 fe:00:2146353 203 203',
      '2: OFDLCK ADVISORY  READ -1 fe:00:2146353 201 201',
      '3: OFDLCK ADVISORY  READ -1 fe:00:2146353 103 103',
      '4: OFDLCK ADVISORY  READ -1 fe:00:2146353 100 101',
      '5: POSIX  ADVISORY  WRITE 30740 fe:00:2147633 0 EOF',
      '6: OFDLCK ADVISORY  READ -1 fe:00:55 100 100',
      '7: POSIX  ADVISORY  READ 999999999 fe:00:77 100 100',
    ].join('\n')
    const m = qemuLocksByFile(text)
    expect([...m.keys()].sort()).toEqual(['254:0:2146353', '254:0:55', '254:0:77'])
    const fds: LockedFd[] = [
      { pid: 999999991, link: '/nonexistent', lines: [parseLockLine('lock: 1: OFDLCK ADVISORY  READ -1 fe:00:55 100 100')!] },
      { pid: 999999992, link: '/nonexistent', lines: [parseLockLine('lock: 1: OFDLCK ADVISORY  READ -1 fe:00:55 100 100')!] },
      { pid: 999999993, link: '/nonexistent', lines: ['100 101', '103 103', '201 201', '203 203'].map((r) => parseLockLine(`lock: 1: OFDLCK ADVISORY  READ -1 fe:00:2146353 ${r}`)!) },
    ]
    let searches = 0
    const table = lockTableFrom(text, (wanted) => { searches++; return fds.filter(wanted) })
    // dev 0xfe00 = makedev(254, 0)
    const h = table.holderOf({ dev: 0xfe00, ino: 2146353 })
    expect(h).toEqual({ pid: 999999993, write: true, lockBytes: [100, 101, 103, 201, 203] })
    expect(holderText(h!)).toBe('a process (pid 999999993)')
    // two read-only holders: the first
    expect(table.holderOf({ dev: 0xfe00, ino: 55 })).toEqual({ pid: 999999991, write: false, lockBytes: [100] })
    // QEMU's POSIX fallback names its owner in /proc/locks itself
    expect(table.holderOf({ dev: 0xfe00, ino: 77 })).toEqual({ pid: 999999999, write: false, lockBytes: [100] })
    // a whole-file POSIX lock is not QEMU's
    expect(table.holderOf({ dev: 0xfe00, ino: 2147633 })).toBeNull()
    expect(searches).toBe(2)
    table.holderOf({ dev: 0xfe00, ino: 2146353 })
    expect(searches).toBe(2) // cached
    // A lock nobody's fdinfo explains (another user's process, without root): an unknown process.
    expect(lockTableFrom(text, () => []).holderOf({ dev: 0xfe00, ino: 55 })).toEqual({ write: false, lockBytes: [100] })
  })

  it('the same inode under another device counts only when a holder\'s fd stats as the file (btrfs)', () => {
    const file = join(tmp.path, 'btrfs-like')
    writeFileSync(file, 'x')
    const st = statSync(file, { bigint: true })
    const otherDev = '0f:0f'
    const line = `1: OFDLCK ADVISORY  READ -1 ${otherDev}:${st.ino} 100 101`
    const fd = (link: string): LockedFd => ({ pid: 999999994, link, lines: [parseLockLine(line)!] })
    expect(lockTableFrom(line, (w) => [fd(file)].filter(w)).holderOf(st)).toEqual({ pid: 999999994, write: true, lockBytes: [100, 101] })
    expect(lockTableFrom(line, (w) => [fd('/nonexistent')].filter(w)).holderOf(st)).toBeNull()
  })

  it('no /proc/locks (not Linux): no holders', () => {
    expect(lockTableFrom(undefined).holderOf({ dev: 1, ino: 2 })).toBeNull()
  })

  it('fileKey decodes glibc dev_t numbers (majors and minors past 255)', () => {
    expect(fileKey(0xfe00, 12)).toBe('254:0:12')
    // makedev(259, 300): major bits 8-19, minor bits 0-7 and 20-31
    const dev = (BigInt(300 & 0xff)) | (BigInt(259) << 8n) | (BigInt(300 >> 8) << 20n)
    expect(fileKey(dev, 5n)).toBe('259:300:5')
  })
})

/** A fresh copy of a fixture with bitmaps, in its own directory. */
function copyOfFixture(name: string): string {
  const p = join(tmp.path, `${name}-${Math.random().toString(36).slice(2)}.qcow2`)
  copyFileSync(join(FIXTURE_DIR, 'granularities.qcow2'), p)
  return p
}

describe('lockHolder() with real QEMU processes', () => {
  it('qemu-nbd read-write: its pid, program, write = true, bytes 100 101 103 201 203', () => {
    const img = copyOfFixture('rw')
    expect(lockHolder(img)).toBeNull()
    const nbd = startQemuNbd(img, tmp.path)
    try {
      const h = lockHolder(img)
      expect(h).not.toBeNull()
      expect(h!.pid).toBe(nbd.pid)
      expect(h!.program).toBe('qemu-nbd')
      expect(h!.write).toBe(true)
      expect(h!.lockBytes).toEqual(expect.arrayContaining([100, 101, 201]))
      expect(holderText(h!)).toBe(`qemu-nbd (pid ${nbd.pid})`)
    } finally {
      nbd.stop()
    }
    expect(lockHolder(img)).toBeNull()
  })

  it('qemu-nbd -r: its pid, write = false (no byte 101)', () => {
    const img = copyOfFixture('ro')
    const nbd = startQemuNbd(img, tmp.path, { readOnly: true })
    try {
      const h = lockHolder(img)
      expect(h!.pid).toBe(nbd.pid)
      expect(h!.write).toBe(false)
      expect(h!.lockBytes).toContain(100)
      expect(h!.lockBytes).not.toContain(101)
      // Another file is not held.
      expect(lockHolder(copyOfFixture('other'))).toBeNull()
    } finally {
      nbd.stop()
    }
  })

  it('qemu-io holding the image read-write', async () => {
    const img = copyOfFixture('io')
    const io = await startQemuIo(img)
    try {
      const h = lockHolder(img)
      expect(h!.pid).toBe(io.pid)
      expect(h!.program).toBe('qemu-io')
      expect(h!.write).toBe(true)
    } finally {
      io.stop()
    }
    expect(lockHolder(img)).toBeNull()
  })

  it('an image on a loop device: QEMU locks the device node, found by the node\'s dev and inode', () => {
    const img = copyOfFixture('loop')
    padTo(img, roundUp(statSync(img).size, 65536))
    const loop = attachLoop(img)
    let nbd: ReturnType<typeof startQemuNbd> | undefined
    try {
      nbd = startQemuNbd(loop.dev, tmp.path, { readOnly: true })
      const h = lockHolder(loop.dev)
      expect(h!.pid).toBe(nbd.pid)
      expect(h!.write).toBe(false)
      // The backing file itself carries no QEMU lock.
      expect(lockHolder(img)).toBeNull()
      // One read of /proc/locks answers for any number of files.
      const t = readLockTable()
      expect(t.holderOf(statSync(loop.dev))!.pid).toBe(nbd.pid)
      expect(t.holderOf(statSync(img))).toBeNull()
    } finally {
      nbd?.stop()
      loop.detach()
    }
  })

  it('a block device held through another node of the same device (libvirt\'s private /dev): found by rdev', () => {
    const img = copyOfFixture('node')
    padTo(img, roundUp(statSync(img).size, 65536))
    const loop = attachLoop(img)
    const node = join(tmp.path, `node-${process.pid}`)
    let nbd: ReturnType<typeof startQemuNbd> | undefined
    try {
      const { rdev } = statSync(loop.dev)
      sh(`mknod ${node} b ${rdev >> 8 & 0xfff} ${(rdev & 0xff) | (rdev >> 12 & ~0xff)}`)
      expect(statSync(node).ino).not.toBe(statSync(loop.dev).ino)
      nbd = startQemuNbd(node, tmp.path)
      const h = lockHolder(loop.dev)
      expect(h!.pid).toBe(nbd.pid)
      expect(h!.write).toBe(true)
      // Without the device numbers (dev and ino only) the other node's locks are not this file's.
      const st = statSync(loop.dev)
      expect(readLockTable().holderOf({ dev: st.dev, ino: st.ino })).toBeNull()
    } finally {
      nbd?.stop()
      loop.detach()
      rmSync(node, { force: true })
    }
  })
})
