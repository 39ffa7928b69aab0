/**
 * An image whose bitmap takes long to read, in a small file: QEMU makes a 2 TiB image with
 * 4 KiB clusters and a 512-byte-granularity bitmap (2^32 bits, 512 MiB of bitmap data, QEMU's
 * largest), then every one of the 131,072 table entries is pointed at ONE data cluster of
 * 0x55 bytes (every other granule dirty: 2^31 extents). A full scan reads 512 MiB, one 4 KiB
 * read per entry (nothing coalesces), from a 9 MiB file. QEMU's check calls the shared
 * cluster a refcount error; the bitmap readers (scan, sha256) don't care, and this image is only
 * for tests of long jobs (progress, cancel, dropped connections), never for edits.
 */
import { closeSync, fstatSync, openSync, writeSync } from 'node:fs'
import { openImage } from '../engine/index.js'
import { NodeFileDevice } from '../io/node-file.js'
import { run } from './tools.js'

/** What the image holds. */
export interface SlowScanImage {
  path: string
  /** bytes a full scan reads (progress total) */
  dataBytes: number
  dirtyBytes: number
  extentCount: number
}

const CLUSTER = 4096
const SIZE = 2 * 1024 ** 4

/** Make the image at `path` (qemu-img, then the table rewritten in place). */
export async function makeSlowScanImage(path: string): Promise<SlowScanImage> {
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${CLUSTER}`, path, String(SIZE)])
  const add = run('qemu-img', ['bitmap', '--add', '-g', '512', path, 'fine'])
  if (add.code !== 0) throw new Error(`qemu-img bitmap --add failed: ${add.stderr}`)
  const dev = NodeFileDevice.open(path)
  let tableOffset: number
  let tableSize: number
  try {
    const b = (await openImage(dev)).bitmaps[0]!
    tableOffset = b.tableOffset
    tableSize = b.tableSize
  } finally {
    dev.close()
  }
  const fd = openSync(path, 'r+')
  try {
    const data = Math.ceil(fstatSync(fd).size / CLUSTER) * CLUSTER
    writeSync(fd, Buffer.alloc(CLUSTER, 0x55), 0, CLUSTER, data)
    const table = Buffer.alloc(tableSize * 8)
    for (let i = 0; i < tableSize; i++) table.writeBigUInt64BE(BigInt(data), i * 8)
    writeSync(fd, table, 0, table.length, tableOffset)
  } finally {
    closeSync(fd)
  }
  return { path, dataBytes: tableSize * CLUSTER, dirtyBytes: SIZE / 2, extentCount: SIZE / 1024 }
}
