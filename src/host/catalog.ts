/**
 * The host catalog: the set of images a host tool (`qbm scan`, `qbm serve`) may touch, built
 * from the PATHs on its command line. Nothing outside them is ever opened, through symlinks
 * included; an entry is reopened only as the very file (device and inode) the scan found.
 *
 * - A PATH that is a file or a block device is an image (it must start with qcow2's magic).
 *   A PATH may itself be a symlink: its target is what was asked for.
 * - A PATH that is a directory contributes the qcow2 files in it, recognised by their magic
 *   `QFI\xfb` (not their extension): one level deep, or every level with `recursive`. A symlink
 *   in it that resolves outside the directory's realpath is skipped and listed in `errors`;
 *   directories already walked (symlink loops, bind mounts) are not walked again.
 * - Ids are a hash of the realpath: stable across rescans and restarts, and no path.
 */
import { createHash } from 'node:crypto'
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs'
import { join, sep } from 'node:path'
import { NodeFileDevice, blockDeviceSize } from '../io/node-file.js'

/** One image of the catalog. */
export interface CatalogEntry {
  /** stable id: a short hash of the realpath */
  id: string
  /** path as found under the given PATH, for display */
  path: string
  realPath: string
  dev: number
  ino: number
  kind: 'file' | 'block'
  sizeBytes: number
}

/** The images found, and every PATH or directory entry that was refused or could not be read. */
export interface Catalog {
  entries: CatalogEntry[]
  errors: Array<{ path: string; message: string }>
}

/** How far a walk may go. */
export interface CatalogOptions {
  /** descend into subdirectories of directory PATHs */
  recursive: boolean
  /** deepest directory level walked below a PATH (default 32; 1 without `recursive`) */
  maxDepth?: number
  /** most directory entries examined over the whole walk (default 200,000) */
  maxEntries?: number
}

/** qcow2's magic, the first 4 bytes of every qcow2 image (spec §2.1). */
const QCOW2_MAGIC = 0x514649fb

const DEFAULT_MAX_DEPTH = 32
const DEFAULT_MAX_ENTRIES = 200_000

const errText = (e: unknown): string => {
  const x = e as NodeJS.ErrnoException
  return x.code === 'ELOOP' ? 'symlink loop' : x.code === 'ENOENT' ? 'no such file (dangling symlink?)' : x.code === 'EACCES' ? 'permission denied' : x.message
}

/** The stable id of an image: the first 16 hex digits of SHA-256 over its realpath. */
export function entryId(realPath: string): string {
  return createHash('sha256').update(realPath).digest('hex').slice(0, 16)
}

/** The path the kernel gives an open descriptor (Linux /proc/self/fd), or undefined elsewhere. */
function openedPath(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`)
  } catch {
    return undefined
  }
}

/**
 * Read the first 4 bytes of `realPath` (no symlink followed) and return the opened file's
 * identity when it is a qcow2 image, or why not. Only regular files and block devices get here.
 */
function probe(realPath: string): { st: Stats; qcow2: boolean; head: string } {
  const fd = openSync(realPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  try {
    // O_NOFOLLOW guards the last component only: a directory above swapped for a symlink since
    // realpath would lead elsewhere. The kernel's name for the open file says where we are.
    const opened = openedPath(fd)
    if (opened !== undefined && opened !== realPath) throw new Error(`changed during the scan: ${realPath} now opens ${opened}`)
    const st = fstatSync(fd)
    const buf = Buffer.alloc(4)
    const n = readSync(fd, buf, 0, 4, 0)
    const qcow2 = n === 4 && buf.readUInt32BE(0) === QCOW2_MAGIC
    return { st, qcow2, head: n === 0 ? 'is empty' : `starts with ${buf.subarray(0, n).toString('hex')}` }
  } finally {
    closeSync(fd)
  }
}

const inside = (path: string, root: string): boolean => path === root || path.startsWith(root.endsWith(sep) ? root : root + sep)

class Walk {
  readonly entries: CatalogEntry[] = []
  readonly errors: Catalog['errors'] = []
  private readonly seenFiles = new Set<string>()
  private readonly seenDirs = new Set<string>()
  private budget: number
  private budgetReported = false
  private readonly maxDepth: number

  constructor(private readonly opts: CatalogOptions) {
    this.budget = opts.maxEntries ?? DEFAULT_MAX_ENTRIES
    this.maxDepth = opts.recursive ? (opts.maxDepth ?? DEFAULT_MAX_DEPTH) : 1
  }

  addPath(path: string): void {
    let st: Stats
    let real: string
    try {
      st = statSync(path)
      real = realpathSync(path)
    } catch (e) {
      this.errors.push({ path, message: errText(e) })
      return
    }
    if (st.isDirectory()) {
      this.seenDirs.add(`${st.dev}:${st.ino}`)
      this.walkDir(path, real, path, real, 1)
    } else if (st.isFile() || st.isBlockDevice()) {
      this.addImage(path, real, true)
    } else {
      this.errors.push({ path, message: 'not an image file, a directory or a block device' })
    }
  }

  private addImage(path: string, realPath: string, explicit: boolean): void {
    let p: ReturnType<typeof probe>
    try {
      p = probe(realPath)
    } catch (e) {
      this.errors.push({ path, message: errText(e) })
      return
    }
    if (!p.qcow2) {
      // In a directory, other files are simply not images; a PATH named explicitly is reported.
      if (explicit) this.errors.push({ path, message: `not a qcow2 image (it ${p.head}, not QFI\\xfb)` })
      return
    }
    const key = `${p.st.dev}:${p.st.ino}`
    if (this.seenFiles.has(key)) return
    this.seenFiles.add(key)
    const block = p.st.isBlockDevice()
    // fstat says 0 for a block device: its size is in sysfs.
    const sizeBytes = block ? blockDeviceSize(p.st.rdev) : p.st.size
    if (sizeBytes === undefined) {
      this.errors.push({ path, message: 'cannot tell the size of the block device (no /sys/dev/block entry)' })
      return
    }
    this.entries.push({ id: entryId(realPath), path, realPath, dev: p.st.dev, ino: p.st.ino, kind: block ? 'block' : 'file', sizeBytes })
  }

  /** Walk `dirReal` (shown as `dirShown`), which lies inside the PATH `root` (realpath `rootReal`). */
  private walkDir(root: string, rootReal: string, dirShown: string, dirReal: string, depth: number): void {
    let names: string[]
    try {
      names = readdirSync(dirReal).sort()
    } catch (e) {
      this.errors.push({ path: dirShown, message: errText(e) })
      return
    }
    for (const name of names) {
      if (this.budget-- <= 0) {
        if (!this.budgetReported) this.errors.push({ path: dirShown, message: `stopped: more than ${this.opts.maxEntries ?? DEFAULT_MAX_ENTRIES} directory entries examined` })
        this.budgetReported = true
        return
      }
      const shown = join(dirShown, name)
      let real = join(dirReal, name)
      let st: Stats
      try {
        st = lstatSync(real)
        if (st.isSymbolicLink()) {
          real = realpathSync(real)
          if (!inside(real, rootReal)) {
            this.errors.push({ path: shown, message: `skipped: a symlink to ${real}, outside ${root}` })
            continue
          }
          st = statSync(real)
        }
      } catch (e) {
        this.errors.push({ path: shown, message: `skipped: ${errText(e)}` })
        continue
      }
      if (st.isDirectory()) {
        if (depth >= this.maxDepth) continue
        const key = `${st.dev}:${st.ino}`
        if (this.seenDirs.has(key)) {
          if (real !== join(dirReal, name)) this.errors.push({ path: shown, message: `skipped: a symlink to ${real}, which is already walked (a loop or a second way in)` })
          continue
        }
        this.seenDirs.add(key)
        this.walkDir(root, rootReal, shown, real, depth + 1)
      } else if (st.isFile() || st.isBlockDevice()) {
        this.addImage(shown, real, false)
      }
    }
  }
}

/** Build the catalog of the images under `paths` (see the module comment for the rules). */
export function buildCatalog(paths: string[], opts: CatalogOptions): Catalog {
  const w = new Walk(opts)
  for (const p of paths) w.addPath(p)
  return { entries: w.entries, errors: w.errors }
}

/** Open an entry: the realPath with O_NOFOLLOW, then fstat must match the entry's dev/ino, else throw. */
export function openEntry(e: CatalogEntry, mode: 'r' | 'rw'): NodeFileDevice {
  const flags = (mode === 'rw' ? constants.O_RDWR : constants.O_RDONLY) | constants.O_NOFOLLOW
  const fd = openSync(e.realPath, flags)
  try {
    const st = fstatSync(fd)
    const kindOk = e.kind === 'block' ? st.isBlockDevice() : st.isFile()
    if (!kindOk || st.dev !== e.dev || st.ino !== e.ino) {
      throw new Error(`${e.path} is no longer the file the scan found (device ${e.dev}, inode ${e.ino}): rescan`)
    }
  } catch (err) {
    closeSync(fd)
    throw err
  }
  return NodeFileDevice.fromFd(fd, e.path, mode === 'rw') // closes fd if it throws
}
