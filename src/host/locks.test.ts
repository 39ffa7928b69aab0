/**
 * QEMU's image locks: the /proc/locks line parser (table), and lockHolder() against real QEMU
 * processes holding a copy of a fixture: qemu-nbd read-write and read-only (-r), qemu-io, an
 * image on a loop device; the holder's pid must be the process's pid, `write` whether it
 * holds byte 101.
 */
import { copyFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FIXTURE_DIR } from '../test-support/fixtures.js'
import { attachLoop, padTo, roundUp, startQemuIo, startQemuNbd } from '../test-support/host.js'
import { tempDir } from '../test-support/tools.js'
import { fileKey, holderText, lockHolder, lockTableFrom, parseLockLine, qemuLockBytes, qemuLocksByFile, readLockTable } from './locks.js'

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

  it('groups QEMU\'s locks by file and the table reports the holder found for them', () => {
    const text = [
      '1: OFDLCK ADVISORY  READ -1 fe:00:2146353 203 203',
      '2: OFDLCK ADVISORY  READ -1 fe:00:2146353 201 201',
      '3: OFDLCK ADVISORY  READ -1 fe:00:2146353 103 103',
      '4: OFDLCK ADVISORY  READ -1 fe:00:2146353 100 101',
      '5: POSIX  ADVISORY  WRITE 30740 fe:00:2147633 0 EOF',
      '6: OFDLCK ADVISORY  READ -1 fe:00:55 100 100',
    ].join('\n')
    const m = qemuLocksByFile(text)
    expect([...m.keys()].sort()).toEqual(['254:0:2146353', '254:0:55'])
    const asked: string[][] = []
    const table = lockTableFrom(text, (keys) => { asked.push([...keys]); return [] })
    // dev 0xfe00 = makedev(254, 0)
    const h = table.holderOf({ dev: 0xfe00, ino: 2146353 })
    expect(h).toEqual({ write: true, lockBytes: [100, 101, 103, 201, 203] })
    expect(holderText(h!)).toBe('an unknown process')
    expect(table.holderOf({ dev: 0xfe00, ino: 55 })).toEqual({ write: false, lockBytes: [100] })
    expect(table.holderOf({ dev: 0xfe00, ino: 2147633 })).toBeNull()
    expect(asked).toEqual([['254:0:2146353'], ['254:0:55']])
    // Same inode on another device (btrfs subvolumes): only a holder whose fd is the file counts.
    expect(lockTableFrom(text, () => []).holderOf({ dev: 0x801, ino: 55 })).toBeNull()
    expect(lockTableFrom(text, (keys, verify) => (verify && keys.has('254:0:55') ? [{ pid: 7, program: 'qemu-kvm', write: false, lockBytes: [100] }] : []))
      .holderOf({ dev: 0x801, ino: 55 })).toEqual({ pid: 7, program: 'qemu-kvm', write: false, lockBytes: [100] })
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
})
