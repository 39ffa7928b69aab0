/**
 * libvirt's checkpoint metadata on a host, as its QEMU driver keeps it (libvirt
 * src/qemu/qemu_checkpoint.c, qemuCheckpointWriteMetadata): one `<domaincheckpoint>` file per
 * checkpoint, `DIR/DOMAIN/NAME.xml`, DIR being the driver's checkpointDir
 * (`/var/lib/libvirt/qemu/checkpoint` for the system instance). Each file embeds the domain
 * definition of its time, whose `<disk><source file=|dev=><target dev=>` says which image each
 * checkpoint disk was; that is how a checkpoint is matched to a catalog image (by device and
 * inode of its source). The cross-check itself is the engine's `crossCheck`.
 */
import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { type Checkpoint, type Image, crossCheck, parseCheckpointXml } from '../engine/index.js'
import type { CheckpointCheck, CheckpointMismatch } from '../session/overview.js'
export type { CheckpointCheck, CheckpointMismatch, CheckpointSymptom } from '../session/overview.js'

/** Where libvirt's system QEMU driver keeps checkpoint metadata. */
export const DEFAULT_CHECKPOINT_DIR = '/var/lib/libvirt/qemu/checkpoint'

/** One checkpoint file, parsed. */
export interface CheckpointFile {
  domain: string
  file: string
  checkpoint: Checkpoint
}

/** Everything read from a checkpoint directory; files that could not be read are in `errors`. */
export interface LibvirtCheckpoints {
  dir: string
  files: CheckpointFile[]
  errors: Array<{ path: string; message: string }>
}

/** A checkpoint file is a few KiB; a larger one is not read. */
const MAX_FILE_BYTES = 8 << 20
const MAX_FILES = 100_000

/**
 * Read `DIR/DOMAIN/*.xml` (libvirt loads every `.xml` file of the domain's directory). A
 * malformed file is listed in `errors` with its line and column; the others still count.
 * Throws only when DIR itself cannot be read.
 */
export function readCheckpointDir(dir: string): LibvirtCheckpoints {
  const out: LibvirtCheckpoints = { dir, files: [], errors: [] }
  const domains = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()
  let count = 0
  for (const domain of domains) {
    let names: string[]
    try {
      names = readdirSync(join(dir, domain)).filter((n) => n.endsWith('.xml')).sort()
    } catch (e) {
      out.errors.push({ path: join(dir, domain), message: (e as Error).message })
      continue
    }
    for (const name of names) {
      const file = join(dir, domain, name)
      if (++count > MAX_FILES) {
        out.errors.push({ path: dir, message: `stopped after ${MAX_FILES} checkpoint files` })
        return out
      }
      try {
        const st = statSync(file)
        if (!st.isFile()) continue
        if (st.size > MAX_FILE_BYTES) throw new Error(`${st.size} bytes: too large for a checkpoint file`)
        out.files.push({ domain, file, checkpoint: parseCheckpointXml(readFileSync(file, 'utf8')) })
      } catch (e) {
        out.errors.push({ path: file, message: (e as Error).message })
      }
    }
  }
  return out
}

/**
 * The directory to read: the one asked for (an error when unreadable), else the default when it
 * exists and is readable, else none.
 */
export function checkpointDirToUse(asked: string | undefined): string | undefined {
  if (asked !== undefined) return asked
  try {
    accessSync(DEFAULT_CHECKPOINT_DIR, constants.R_OK | constants.X_OK)
    return statSync(DEFAULT_CHECKPOINT_DIR).isDirectory() ? DEFAULT_CHECKPOINT_DIR : undefined
  } catch {
    return undefined
  }
}

/** The checkpoints of one domain disk whose source is a given image. */
export interface DiskCheckpoints {
  domain: string
  disk: string
  /** the source path as the domain XML names it */
  source: string
  checkpoints: Checkpoint[]
}

/** Finds, for a catalog image, the domain disks whose checkpoints name it as their source. */
export class CheckpointIndex {
  private readonly byFile = new Map<string, DiskCheckpoints[]>()

  constructor(readonly libvirt: LibvirtCheckpoints) {
    const identity = new Map<string, string | null>()
    const keyOf = (source: string): string | null => {
      let k = identity.get(source)
      if (k === undefined) {
        try {
          const st = statSync(source) // stat and realpath only: nothing outside the PATHs is opened
          k = `${st.dev}:${st.ino}`
        } catch {
          k = null
        }
        identity.set(source, k)
      }
      return k
    }
    const groups = new Map<string, DiskCheckpoints>()
    for (const f of libvirt.files) {
      for (const d of f.checkpoint.disks) {
        // A disk with checkpoint='no' takes part in no checkpoint: its bitmaps are not libvirt's.
        if (!d.source || d.checkpoint !== 'bitmap') continue
        const key = keyOf(d.source)
        if (key === null) continue
        const gk = `${key}\0${f.domain}\0${d.name}`
        let g = groups.get(gk)
        if (!g) {
          g = { domain: f.domain, disk: d.name, source: d.source, checkpoints: [] }
          groups.set(gk, g)
          const list = this.byFile.get(key) ?? []
          list.push(g)
          this.byFile.set(key, list)
        }
        g.checkpoints.push(f.checkpoint)
      }
    }
  }

  /** The domain disks whose checkpoint sources are this file (same device and inode). */
  disksOf(st: { dev: number; ino: number }): DiskCheckpoints[] {
    return this.byFile.get(`${st.dev}:${st.ino}`) ?? []
  }
}

/**
 * Cross-check an image against its checkpoints: the engine's crossCheck per domain disk, with
 * the two failures users hit most named by the message they see — a checkpoint whose bitmap is
 * gone (libvirt: "bitmap not found in backing chain" on checkpoint-delete or the next backup)
 * and a bitmap with no checkpoint (QEMU: "Bitmap already exists" when a checkpoint of that
 * name is created again) — plus in-use (unless `held`: open in QEMU), broken and untrusted bitmaps.
 */
export function checkImageCheckpoints(img: Image, disks: DiskCheckpoints[], opts: { held?: boolean } = {}): CheckpointCheck[] {
  return disks.map((d) => {
    const r = crossCheck(img, d.checkpoints, d.disk)
    const mismatches: CheckpointMismatch[] = []
    for (const f of r.findings) {
      // A running QEMU keeps its bitmaps in use while it has them: that is no mismatch.
      if (f.state === 'healthy' || (f.state === 'in-use' && opts.held)) continue
      mismatches.push({
        domain: d.domain, disk: d.disk, checkpoint: f.checkpoint, bitmap: f.bitmap, state: f.state,
        symptom: f.state === 'missing' ? 'bitmap not found in backing chain' : null, fix: f.fix,
      })
    }
    for (const o of r.orphans) {
      mismatches.push({
        domain: d.domain, disk: d.disk, checkpoint: null, bitmap: o.bitmap, state: 'no-checkpoint',
        symptom: 'Bitmap already exists',
        fix: `no checkpoint of ${d.domain}/${d.disk} refers to it, so a new checkpoint named '${o.bitmap}' fails with "Bitmap already exists": remove the bitmap unless another tool uses it`,
      })
    }
    return { domain: d.domain, disk: d.disk, checkpoints: r.findings.length, healthy: r.findings.length - mismatches.filter((m) => m.checkpoint !== null).length, mismatches }
  })
}
