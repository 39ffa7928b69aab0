/**
 * libvirt checkpoints (`virsh checkpoint-dumpxml`) against the bitmaps of an image: which
 * checkpoint's bitmap is present and healthy, present but in use, broken or missing, and which
 * bitmaps no checkpoint refers to — with the fix each case needs.
 */
import type { Image } from '../image.js'

export interface CheckpointDisk {
  /** target name, e.g. 'vda' */
  name: string
  /** 'bitmap' or 'no' */
  checkpoint: string
  /** bitmap name (defaults to the checkpoint's name) */
  bitmap?: string
  /** the disk's source file from the embedded <domain>, when present */
  source?: string
}

export interface Checkpoint {
  name: string
  parent?: string
  creationTime?: number
  disks: CheckpointDisk[]
}

function unescapeXml(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&')
}

function attrs(tag: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const m of tag.matchAll(/([\w:-]+)\s*=\s*(?:'([^']*)'|"([^"]*)")/g)) out[m[1]!] = unescapeXml(m[2] ?? m[3] ?? '')
  return out
}

/** Parse one `<domaincheckpoint>` document. Throws Error naming what is missing. */
export function parseCheckpointXml(xml: string): Checkpoint {
  const body = /<domaincheckpoint\b[^>]*>([\s\S]*)<\/domaincheckpoint>/.exec(xml)?.[1]
  if (body === undefined) throw new Error('not a libvirt checkpoint: no <domaincheckpoint> element')
  const domain = /<domain\b[\s\S]*<\/domain>/.exec(body)?.[0] ?? ''
  const own = body.replace(/<domain\b[\s\S]*<\/domain>/, '')
  const parentBlock = /<parent>([\s\S]*?)<\/parent>/.exec(own)?.[1]
  const top = own.replace(/<parent>[\s\S]*?<\/parent>/, '')
  const name = /<name>([\s\S]*?)<\/name>/.exec(top)?.[1]?.trim()
  if (!name) throw new Error('libvirt checkpoint without <name>')
  const ct = /<creationTime>\s*(\d+)\s*<\/creationTime>/.exec(top)?.[1]
  const sources = new Map<string, string>()
  for (const m of domain.matchAll(/<disk\b[^>]*>([\s\S]*?)<\/disk>/g)) {
    const src = /<source\b([^>]*)\/?>/.exec(m[1]!)
    const tgt = /<target\b([^>]*)\/?>/.exec(m[1]!)
    if (src && tgt) {
      const a = attrs(src[1]!)
      const t = attrs(tgt[1]!)
      if (t.dev && (a.file ?? a.name)) sources.set(t.dev, (a.file ?? a.name)!)
    }
  }
  const disks: CheckpointDisk[] = []
  const disksBlock = /<disks>([\s\S]*?)<\/disks>/.exec(top)?.[1] ?? ''
  for (const m of disksBlock.matchAll(/<disk\b([^>]*?)\/?>/g)) {
    const a = attrs(m[1]!)
    if (!a.name) continue
    const checkpoint = a.checkpoint ?? 'bitmap'
    disks.push({
      name: a.name,
      checkpoint,
      ...(checkpoint === 'bitmap' ? { bitmap: a.bitmap ?? name } : {}),
      ...(sources.has(a.name) ? { source: sources.get(a.name)! } : {}),
    })
  }
  const parent = parentBlock ? /<name>([\s\S]*?)<\/name>/.exec(parentBlock)?.[1]?.trim() : undefined
  return { name, ...(parent ? { parent } : {}), ...(ct ? { creationTime: Number(ct) } : {}), disks }
}

export type CheckpointState = 'healthy' | 'in-use' | 'broken' | 'missing' | 'untrusted'

export interface CheckpointFinding {
  checkpoint: string
  disk: string
  bitmap: string
  state: CheckpointState
  /** what to do about it, in plain words */
  fix: string
}

export interface CheckpointReport {
  disk: string
  findings: CheckpointFinding[]
  /** bitmaps of the image no checkpoint refers to */
  orphans: Array<{ bitmap: string; fix: string }>
}

/** Pick the disk of the checkpoints that this image is: by explicit name, by source file name, or the only one. */
export function pickDisk(cps: Checkpoint[], imagePath: string, disk?: string): string {
  if (disk) return disk
  const base = imagePath.split('/').pop()
  const all = new Set<string>()
  for (const cp of cps) for (const d of cp.disks) {
    all.add(d.name)
    if (d.source && d.source.split('/').pop() === base) return d.name
  }
  const withBitmaps = new Set(cps.flatMap((c) => c.disks.filter((d) => d.checkpoint === 'bitmap').map((d) => d.name)))
  if (withBitmaps.size === 1) return [...withBitmaps][0]!
  throw new Error(`cannot tell which disk this image is (${[...all].join(', ') || 'none'}): name it with --disk`)
}

/** Cross-check checkpoints against the image's bitmaps for one disk. */
export function crossCheck(img: Image, cps: Checkpoint[], disk: string): CheckpointReport {
  const findings: CheckpointFinding[] = []
  const referenced = new Set<string>()
  const sorted = [...cps].sort((a, b) => (a.creationTime ?? 0) - (b.creationTime ?? 0))
  for (const cp of sorted) {
    const d = cp.disks.find((x) => x.name === disk)
    if (!d || d.checkpoint !== 'bitmap' || !d.bitmap) continue
    referenced.add(d.bitmap)
    const b = img.bitmaps.find((x) => x.name === d.bitmap)
    let state: CheckpointState
    let fix: string
    if (!b) {
      state = 'missing'
      fix = `the bitmap is gone: the next backup from checkpoint '${cp.name}' must be a full backup; then delete the checkpoint metadata (virsh checkpoint-delete --metadata)`
    } else if (b.status === 'in-use') {
      state = 'in-use'
      fix = 'in use: if no VM has the image open, its writer crashed: clear in_use with mode "dirty" (next backup full) or remove it and take a full backup'
    } else if (b.status === 'invalid') {
      state = 'broken'
      fix = `broken (${b.problems[0]}): remove it (or repair --drop-all-bitmaps) and take a full backup`
    } else if (b.status === 'untrusted') {
      state = 'untrusted'
      fix = 'QEMU ignores every bitmap of this image (autoclear bit 0 clear): repair --retrust (next backup full) or --drop-all-bitmaps'
    } else {
      state = 'healthy'
      fix = 'nothing to do'
    }
    findings.push({ checkpoint: cp.name, disk, bitmap: d.bitmap, state, fix })
  }
  const orphans = img.bitmaps
    .filter((b) => !referenced.has(b.name))
    .map((b) => ({ bitmap: b.name, fix: 'no checkpoint refers to it: remove it if nothing else (e.g. a backup tool) uses it' }))
  return { disk, findings, orphans }
}
