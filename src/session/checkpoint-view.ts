/**
 * libvirt checkpoints cross-checked against the images open in a session, per disk: which open
 * image each checkpointed disk is (by its source's file name, or as the only disk with
 * bitmaps), and the engine's crossCheck findings for it.
 */
import { type Checkpoint, type Image, crossCheck } from '../engine/index.js'
import type { CheckpointView } from './api.js'

/** An open image as the cross-check sees it. */
export interface CheckpointImage {
  id: number
  /** its file name, matched against a disk's source */
  fileName: string
  name: string
  image: Image
}

function baseName(p: string): string {
  return p.split(/[\\/]/).pop() ?? p
}

/** Cross-check parsed checkpoints against `images`; `currentId` is the image shown. */
export function checkpointView(
  cps: Array<{ cp: Checkpoint; file: string }>, errors: CheckpointView['errors'], images: CheckpointImage[], currentId: number | null,
): CheckpointView {
  const list = cps.map((x) => x.cp)
  const disks = new Map<string, string | undefined>()
  for (const cp of list) for (const d of cp.disks) if (!disks.has(d.name) || d.source) disks.set(d.name, d.source ?? disks.get(d.name))
  const withBitmaps = [...new Set(list.flatMap((c) => c.disks.filter((d) => d.checkpoint === 'bitmap').map((d) => d.name)))]
  const out: CheckpointView['disks'] = []
  for (const [disk, source] of disks) {
    if (!withBitmaps.includes(disk)) continue
    let img: CheckpointImage | undefined
    let matchedBy: 'source' | 'only-disk' | null = null
    if (source) {
      img = images.find((s) => s.fileName === baseName(source))
      if (img) matchedBy = 'source'
    }
    if (!img && withBitmaps.length === 1 && currentId !== null) {
      img = images.find((s) => s.id === currentId)
      if (img) matchedBy = 'only-disk'
    }
    const rep = img ? crossCheck(img.image, list, disk) : undefined
    out.push({
      disk,
      ...(source ? { source } : {}),
      imageId: img?.id ?? null,
      imageName: img?.name ?? null,
      matchedBy,
      findings: rep
        ? rep.findings.map((f) => ({ checkpoint: f.checkpoint, bitmap: f.bitmap, state: f.state, fix: f.fix }))
        : list.flatMap((cp) => cp.disks.filter((d) => d.name === disk && d.checkpoint === 'bitmap' && d.bitmap).map((d) => ({
          checkpoint: cp.name, bitmap: d.bitmap!, state: 'missing' as const, fix: 'no open image is this disk: open its qcow2 file together with the others to check it',
        }))),
      orphans: rep ? rep.orphans : [],
    })
  }
  return {
    errors,
    checkpoints: cps.map(({ cp, file }) => ({ name: cp.name, file, ...(cp.parent ? { parent: cp.parent } : {}), ...(cp.creationTime !== undefined ? { creationTime: cp.creationTime } : {}) })),
    disks: out,
  }
}
