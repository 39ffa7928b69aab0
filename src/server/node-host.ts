/**
 * The SessionHost of `qbm serve`: images are the catalog's (src/host/catalog.ts), named by id and
 * reopened only as the very file the scan found; QEMU's locks are read at every open and before
 * every write; edits go through the CLI's in-place path (src/host/edit.ts: the same check gate,
 * write order, positioned writes and flushes), refused unless the server was started with
 * --write. One host serves every connection; commits to one image are serialized.
 */
import { realpathSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { basename, dirname, isAbsolute, join } from 'node:path'
import { type Image, AbortError, ConstraintError, checkImage, openImage } from '../engine/index.js'
import { type Catalog, type CatalogEntry, buildCatalog, openEntry } from '../host/catalog.js'
import { type FileIdentity, ImageHeldError, commitInPlace, heldLabel, identityOf } from '../host/edit.js'
import { CheckpointIndex, type LibvirtCheckpoints, readCheckpointDir } from '../host/libvirt.js'
import { holderText, readLockTable } from '../host/locks.js'
import { buildOverview, checkResult } from '../host/overview.js'
import type { NodeFileDevice } from '../io/node-file.js'
import type { HolderInfo, HostInfo, HostOverview, OpenSource } from '../session/api.js'
import type { OpenedSource, SessionHost } from '../session/host.js'
import type { CheckResult } from '../session/overview.js'
import { PacedDevice } from './paced-device.js'

export interface NodeHostOptions {
  /** the PATHs of the command line */
  paths: string[]
  recursive: boolean
  /** started with --write */
  writable: boolean
  /** libvirt's checkpoint directory to read, when any */
  checkpointDir?: string
  version: string
}

export const READ_ONLY = 'this server is read-only: start qbm serve with --write to edit images'

/** A host opened image: the catalog entry, and what the file was when the session decoded it. */
interface HostOpened extends OpenedSource {
  entry: CatalogEntry
  identity?: FileIdentity
}

export class NodeHost implements SessionHost {
  private catalog: Catalog = { entries: [], errors: [] }
  private byId = new Map<string, CatalogEntry>()
  /** when the PATHs were last walked because of an unknown id */
  private lastMissRescan = 0
  /** commits in flight, by real path: one at a time per image */
  private readonly commits = new Map<string, Promise<void>>()

  constructor(private readonly opts: NodeHostOptions) {
    this.rescan()
  }

  /** Walk the PATHs again (ids are stable: a hash of the real path). */
  rescan(): Catalog {
    this.catalog = buildCatalog(this.opts.paths, { recursive: this.opts.recursive })
    this.byId = new Map(this.catalog.entries.map((e) => [e.id, e]))
    return this.catalog
  }

  get entries(): readonly CatalogEntry[] {
    return this.catalog.entries
  }

  private entry(id: string): CatalogEntry {
    let e = this.byId.get(id)
    // An id the last walk did not know may be a new image: walk again, at most once a second.
    if (!e && Date.now() - this.lastMissRescan > 1000) {
      this.lastMissRescan = Date.now()
      this.rescan()
      e = this.byId.get(id)
    }
    if (!e) throw new ConstraintError(`there is no image '${id}' under the paths this server was given`)
    return e
  }

  async open(source: OpenSource): Promise<OpenedSource> {
    if (source.kind !== 'host') throw new ConstraintError('this server opens only the images it lists (by id)')
    const entry = this.entry(source.id)
    const device: NodeFileDevice = openEntry(entry, 'r')
    const holder = readLockTable().holderOf(device.stat())
    const heldBy: HolderInfo | undefined = holder ? { ...holder, text: holderText(holder) } : undefined
    const writable = this.opts.writable && !holder
    const opened: HostOpened = {
      // Paced: the session's long reads let a cancel or a closed socket in (paced-device.ts).
      device: new PacedDevice(device),
      entry,
      name: entry.path,
      fileName: basename(entry.path),
      writable,
      ...(!this.opts.writable ? { readOnlyReason: READ_ONLY } : holder ? { readOnlyReason: heldLabel(holder) } : {}),
      ...(holder ? { editsRefused: new ImageHeldError(holder).message, heldBy } : {}),
      writeMode: 'in-place',
      // What a later commit must find unchanged; a read-only server or a held image never commits.
      ...(writable ? { afterOpen: async (img: Image) => { opened.identity = await identityOf(device, img) } } : {}),
    }
    return opened
  }

  resolveBacking(of: OpenSource, backingFile: string): OpenSource | undefined {
    if (of.kind !== 'host') return undefined
    const e = this.byId.get(of.id)
    if (!e) return undefined
    let real: string
    try {
      real = realpathSync(isAbsolute(backingFile) ? backingFile : join(dirname(e.realPath), backingFile))
    } catch {
      return undefined
    }
    // Only an image of the catalog: stat and realpath above open nothing.
    const st = statSync(real)
    const b = this.catalog.entries.find((x) => x.realPath === real && x.dev === st.dev && x.ino === st.ino)
    return b ? { kind: 'host', id: b.id, name: b.path } : undefined
  }

  editsRefused(): string | undefined {
    return this.opts.writable ? undefined : READ_ONLY
  }

  async commit(source: OpenSource, opened: OpenedSource, plan: Parameters<SessionHost['commit']>[2], onProgress: Parameters<SessionHost['commit']>[3]): Promise<void> {
    if (!this.opts.writable) throw new ConstraintError(READ_ONLY)
    const o = opened as HostOpened
    if (source.kind !== 'host' || !o.entry || !o.identity) throw new ConstraintError('this image was not opened through this server')
    const key = o.entry.realPath
    const before = this.commits.get(key) ?? Promise.resolve()
    const run = before.catch(() => undefined).then(() => commitInPlace(o.entry.realPath, plan, { expect: o.identity!, onProgress }))
    const tail = run.catch(() => undefined)
    this.commits.set(key, tail)
    try {
      await run
    } finally {
      if (this.commits.get(key) === tail) this.commits.delete(key)
    }
  }

  info(): HostInfo {
    return { hostname: hostname(), writable: this.opts.writable, paths: [...this.opts.paths], version: this.opts.version }
  }

  async overview(signal: { readonly aborted: boolean } | undefined, onProgress: (done: number, total: number) => void, ids?: string[]): Promise<HostOverview> {
    const catalog = ids ? this.catalog : this.rescan()
    const entries = ids ? ids.map((id) => this.entry(id)) : catalog.entries
    let libvirt: LibvirtCheckpoints | undefined
    if (this.opts.checkpointDir !== undefined) {
      try {
        libvirt = readCheckpointDir(this.opts.checkpointDir)
      } catch (e) {
        libvirt = { dir: this.opts.checkpointDir, files: [], errors: [{ path: this.opts.checkpointDir, message: (e as Error).message }] }
      }
    }
    // The check runs per row, on demand (check()): a host's images can be hundreds of GiB.
    const rows = await buildOverview(entries, {
      check: false,
      locks: readLockTable(),
      ...(libvirt ? { checkpoints: new CheckpointIndex(libvirt) } : {}),
      ...(signal ? { signal } : {}),
      onProgress: (d, t) => onProgress(d, t),
    })
    return {
      rows,
      errors: catalog.errors,
      ...(libvirt ? { libvirt: { dir: libvirt.dir, checkpoints: libvirt.files.length, errors: libvirt.errors } } : {}),
      scannedAt: Date.now(),
    }
  }

  async check(id: string, signal: { readonly aborted: boolean } | undefined): Promise<CheckResult> {
    const e = this.entry(id)
    const dev = openEntry(e, 'r')
    try {
      const holder = readLockTable().holderOf(dev.stat())
      if (holder) return { status: 'skipped', corruptions: 0, leaks: 0, checkErrors: 0, message: `open in ${holderText(holder)}: its metadata changes under a check` }
      const img = await openImage(new PacedDevice(dev), signal ? { signal } : {})
      return checkResult(await checkImage(img, signal ? { signal } : {}))
    } catch (err) {
      if (err instanceof AbortError) throw err
      return { status: 'failed', corruptions: 0, leaks: 0, checkErrors: 1, message: (err as Error).message }
    } finally {
      dev.close()
    }
  }
}
