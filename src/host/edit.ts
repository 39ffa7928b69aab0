/**
 * The one in-place edit path on the host (Node only), used by every editing command of the CLI
 * and by `qbm serve`: the same check gate, write order, positioned writes and flushes for both.
 *
 * - editInPlace: open read-write, refuse if QEMU has the image open, plan (the planner runs the
 *   image check first), commit. One open, so the plan matches the file it writes (the CLI).
 * - commitInPlace: commit a plan made earlier from a read-only open (the server, after the user
 *   reviewed it), once the file is proven to be the one the plan was made from.
 *
 * Both refuse when a QEMU process holds the image (locks.ts), before planning and again right
 * before the first write, and refuse a plan that writes past the end of a block device before
 * its first write. `--force` overrides neither: it only lets an edit past bitmaps marked in use.
 */
import { createHash } from 'node:crypto'
import {
  type Image, type Plan, type CommitOptions, capacityRefusal, commitPlan, constants, openImage, planOverrun, usedEnd,
} from '../engine/index.js'
import { NodeFileDevice } from '../io/node-file.js'
import { type LockHolder, holderText, readLockTable } from './locks.js'

/** QEMU has the image open: editing it now would corrupt it. Nothing was written. */
export class ImageHeldError extends Error {
  override readonly name = 'ImageHeldError'
  constructor(readonly holder: LockHolder) {
    super(`open in ${holderText(holder)}${holder.write ? '' : ', read-only'}: editing an image QEMU has open corrupts it ` +
      (holder.write
        ? '(QEMU keeps the bitmaps in memory and writes its own over the file when it closes the image). '
        : '(QEMU works from the metadata it loaded when it opened the image, and may reopen it read-write, e.g. for a block commit). ') +
      'Stop it, or change the bitmaps through QEMU (QMP block-dirty-bitmap-*), then retry; --force does not override this')
  }
}

/** The edit does not fit on a block device, which cannot grow. Nothing was written. */
export class CapacityError extends Error {
  override readonly name = 'CapacityError'
}

/** The file is not the one a plan was made from any more. Nothing was written. */
export class StalePlanError extends Error {
  override readonly name = 'StalePlanError'
}

/** The line a read of a held image is labelled with (CLI info, server overview). */
export function heldLabel(h: LockHolder): string {
  return `open in ${holderText(h)}${h.write ? '' : ', read-only'}: the live bitmaps are in QEMU's memory; the file holds the last saved ones`
}

/** The QEMU process holding the open file (by its descriptor's dev and inode), or null. */
export function heldBy(dev: NodeFileDevice): LockHolder | null {
  return readLockTable().holderOf(dev.stat())
}

/** Throw ImageHeldError when a QEMU process holds the open file. */
export function refuseIfHeld(dev: NodeFileDevice): void {
  const h = heldBy(dev)
  if (h) throw new ImageHeldError(h)
}

/**
 * What a plan was made from: the file (device and inode), its size and times, and a SHA-256 of
 * every metadata structure an edit plan depends on (cluster 0 with the header and its
 * extensions, the refcount table and blocks, the bitmap directory and tables). The digest is
 * what proves a block device unchanged: writes through a device node leave its times alone.
 */
export interface FileIdentity {
  dev: bigint
  ino: bigint
  size: number
  mtimeNs: bigint
  ctimeNs: bigint
  metadataSha256: string
}

/** The identity of the image open on `dev` (img: the image opened through it). */
export async function identityOf(dev: NodeFileDevice, img: Image): Promise<FileIdentity> {
  const st = dev.stat()
  return { dev: st.dev, ino: st.ino, size: dev.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, metadataSha256: await metadataDigest(img) }
}

async function metadataDigest(img: Image): Promise<string> {
  const dev = img.device
  const h = img.header
  const cs = h.clusterSize
  const hash = createHash('sha256')
  const add = async (what: string, offset: number, length: number): Promise<void> => {
    const n = Math.max(0, Math.min(length, dev.size - offset))
    hash.update(`${what}@${offset}+${n}\n`)
    if (n > 0) hash.update(await dev.read(offset, n))
  }
  await add('cluster 0', 0, Math.min(cs, dev.size))
  const rtBytes = Math.min(h.refcountTableClusters * cs, constants.MAX_REFTABLE_BYTES)
  const rtLength = Math.max(0, Math.min(rtBytes, dev.size - h.refcountTableOffset))
  const rt = rtLength > 0 ? await dev.read(h.refcountTableOffset, rtLength) : new Uint8Array(0)
  hash.update(`refcount table@${h.refcountTableOffset}\n`).update(rt)
  const view = new DataView(rt.buffer, rt.byteOffset, rt.byteLength)
  for (let i = 0; i + 8 <= rt.length; i += 8) {
    const off = Number(view.getBigUint64(i) & constants.REFT_OFFSET_MASK)
    if (off > 0 && off < dev.size) await add('refcount block', off, cs)
  }
  const ext = img.bitmapsExtension
  if (ext) await add('bitmap directory', ext.bitmapDirectoryOffset, ext.bitmapDirectorySize)
  for (const b of img.bitmaps) if (b.tableOffset > 0) await add(`bitmap table ${b.index}`, b.tableOffset, b.tableSize * 8)
  return hash.digest('hex')
}

/** Why `now` is not `expect`, or undefined when they are the same file in the same state. */
export function identityChange(expect: FileIdentity, now: FileIdentity): string | undefined {
  if (now.dev !== expect.dev || now.ino !== expect.ino) return 'the path names another file now'
  if (now.size !== expect.size) return `its size changed (${expect.size} -> ${now.size} bytes)`
  if (now.metadataSha256 !== expect.metadataSha256) return 'its metadata changed'
  if (now.mtimeNs !== expect.mtimeNs || now.ctimeNs !== expect.ctimeNs) return 'it was modified'
  return undefined
}

/**
 * Why `plan` does not fit on the device the image `img` was opened from (a block device, which
 * cannot grow), or undefined when it fits. The server shows it when the plan is reviewed; the
 * commit refuses with it (CapacityError) before its first write.
 */
export async function capacityProblem(dev: NodeFileDevice, img: Image, plan: Plan): Promise<string | undefined> {
  if (dev.growable) return undefined
  const o = planOverrun(plan, dev.size)
  return o ? capacityRefusal(o, dev.size, await usedEnd(img), dev.path) : undefined
}

/** Options of the in-place edit path. */
export interface InPlaceOptions {
  onProgress?: CommitOptions['onProgress']
}

/**
 * Commit `plan` on the open image: refuse if the plan writes past the end of a device that
 * cannot grow (naming the bytes needed and free), then commitPlan, which checks for QEMU's
 * locks right before its first write (callers check once more before this, see below).
 */
async function commitOnDevice(dev: NodeFileDevice, img: Image, plan: Plan, opts: InPlaceOptions): Promise<void> {
  const full = await capacityProblem(dev, img, plan)
  if (full) throw new CapacityError(full)
  await commitPlan(dev, plan, {
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    beforeFirstWrite: async () => refuseIfHeld(dev),
  })
}

/**
 * Open `path` read-write, refuse if QEMU holds it, plan with `makePlan` (the planner runs the
 * image check first: an image that fails it is refused), commit with commitOnDevice. The edit
 * path of every CLI editing command. Returns the plan that was committed.
 */
export async function editInPlace(path: string, makePlan: (img: Image) => Promise<Plan>, opts: InPlaceOptions = {}): Promise<Plan> {
  const dev = NodeFileDevice.open(path, 'rw')
  try {
    refuseIfHeld(dev)
    const img = await openImage(dev)
    const plan = await makePlan(img)
    await commitOnDevice(dev, img, plan, opts)
    return plan
  } finally {
    dev.close()
  }
}

/**
 * Commit a plan made earlier (from a read-only open whose identityOf is `expect`) in place to
 * `path`. Refuses with StalePlanError unless the file is still the same file in the same state
 * (same device and inode, size, times and metadata digest), then with ImageHeldError if QEMU
 * holds it, then as editInPlace: capacity check, and the lock check again before the first write.
 */
export async function commitInPlace(path: string, plan: Plan, opts: InPlaceOptions & { expect: FileIdentity }): Promise<void> {
  const dev = NodeFileDevice.open(path, 'rw')
  try {
    let img: Image
    try {
      img = await openImage(dev)
    } catch (e) {
      throw new StalePlanError(`the image changed since the edit was planned: it no longer opens (${(e as Error).message}); nothing was written`)
    }
    const why = identityChange(opts.expect, await identityOf(dev, img))
    if (why) throw new StalePlanError(`the image changed since the edit was planned (${why}); nothing was written: plan the edit again`)
    refuseIfHeld(dev)
    await commitOnDevice(dev, img, plan, opts)
  } finally {
    dev.close()
  }
}
