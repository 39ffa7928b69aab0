/**
 * libvirt checkpoints (`virsh checkpoint-dumpxml`) against the bitmaps of an image: which
 * checkpoint's bitmap is present and healthy, present but in use, broken or missing, and which
 * bitmaps no checkpoint refers to — with the fix each case needs.
 */
import { SaxesParser } from 'saxes'
import { ConstraintError } from '../errors.js'
import type { Image } from '../image.js'

export interface CheckpointDisk {
  /** target name, e.g. 'vda' */
  name: string
  /** 'bitmap' or 'no' */
  checkpoint: string
  /** bitmap name (defaults to the checkpoint's name) */
  bitmap?: string
  /** the disk's source (`file=`, `dev=`, else `name=`) from the embedded <domain>, when present */
  source?: string
}

export interface Checkpoint {
  name: string
  parent?: string
  creationTime?: number
  disks: CheckpointDisk[]
}

/** XML that is not well-formed, or too large or deep to be a checkpoint; line and column count from 1. */
export class XmlError extends Error {
  override readonly name = 'XmlError'
  constructor(readonly line: number, readonly column: number, readonly problem: string) {
    super(`malformed XML at line ${line}, column ${column}: ${problem}`)
  }
}

/** libvirt's own checkpoint files are a few KiB (the domain XML dominates); this bounds memory. */
const MAX_XML_CHARS = 8 << 20
const MAX_DEPTH = 256

/** An element of the parsed document: what the checkpoint reader needs of it, nothing more. */
interface XmlElement {
  name: string
  attrs: Record<string, string>
  children: XmlElement[]
  text: string
}

/**
 * Parse a document with saxes, a conforming non-validating XML 1.0 parser: it refuses what is
 * not well-formed, resolves the predefined entities and character references (`&amp;`,
 * `&#38;`, `&#x26;`) and expands no DTD entities. Pure JavaScript, so it runs in the worker.
 */
function parseXml(xml: string): XmlElement {
  if (xml.length > MAX_XML_CHARS) throw new XmlError(1, 1, `document too large (${xml.length} characters; a checkpoint is at most ${MAX_XML_CHARS})`)
  const parser = new SaxesParser<{ position: true; xmlns: false }>({ position: true, xmlns: false })
  const stack: XmlElement[] = []
  let root: XmlElement | undefined
  const fail = (problem: string): never => { throw new XmlError(parser.line, parser.column + 1, problem) }
  parser.on('error', (e) => fail(e.message.replace(/^\d+:\d+: /, '')))
  parser.on('opentag', (tag) => {
    if (stack.length >= MAX_DEPTH) fail(`elements nested deeper than ${MAX_DEPTH}`)
    const el: XmlElement = { name: tag.name, attrs: Object.assign(Object.create(null) as Record<string, string>, tag.attributes), children: [], text: '' }
    const top = stack[stack.length - 1]
    if (top) top.children.push(el)
    else root = el
    stack.push(el)
  })
  parser.on('closetag', () => { stack.pop() })
  const addText = (t: string): void => { const top = stack[stack.length - 1]; if (top) top.text += t }
  parser.on('text', addText)
  parser.on('cdata', addText)
  parser.write(xml).close()
  if (!root) throw new XmlError(parser.line, parser.column + 1, 'no root element')
  return root
}

const child = (el: XmlElement | undefined, name: string): XmlElement | undefined => el?.children.find((c) => c.name === name)
const children = (el: XmlElement | undefined, name: string): XmlElement[] => el?.children.filter((c) => c.name === name) ?? []

/**
 * The disk sources of the embedded `<domain>`, by target: each `<devices><disk>`'s own
 * `<source>` (not those of its `<backingStore>` chain).
 */
function domainSources(domain: XmlElement | undefined): Map<string, string> {
  const sources = new Map<string, string>()
  for (const d of children(child(domain, 'devices'), 'disk')) {
    const src = child(d, 'source')?.attrs
    const dev = child(d, 'target')?.attrs.dev
    const path = src?.file ?? src?.dev ?? src?.name
    if (dev && path) sources.set(dev, path)
  }
  return sources
}

/**
 * Parse one `<domaincheckpoint>` document (libvirt's checkpoint_conf.c format: `<name>`,
 * `<parent><name>`, `<creationTime>`, `<disks><disk name= checkpoint= bitmap=/>`, the embedded
 * `<domain>`). Throws XmlError (line, column) for malformed XML, Error naming what is missing.
 */
export function parseCheckpointXml(xml: string): Checkpoint {
  const root = parseXml(xml)
  if (root.name !== 'domaincheckpoint') throw new Error(`not a libvirt checkpoint: no <domaincheckpoint> element (the root is <${root.name}>)`)
  // libvirt reads these with XPath string(./name): the text exactly, whitespace included.
  const name = child(root, 'name')?.text
  if (!name) throw new Error('libvirt checkpoint without <name>')
  const parent = child(child(root, 'parent'), 'name')?.text
  const ct = child(root, 'creationTime')?.text.trim()
  if (ct !== undefined && !/^\d+$/.test(ct)) throw new Error(`libvirt checkpoint '${name}': <creationTime> is not a number of seconds ('${ct}')`)
  const sources = domainSources(child(root, 'domain'))
  const disks: CheckpointDisk[] = []
  for (const d of children(child(root, 'disks'), 'disk')) {
    const a = d.attrs
    if (!a.name) continue
    // checkpoint_conf.c: no checkpoint= attribute means a bitmap; no bitmap= means the checkpoint's name.
    const checkpoint = a.checkpoint ?? 'bitmap'
    disks.push({
      name: a.name,
      checkpoint,
      ...(checkpoint === 'bitmap' ? { bitmap: a.bitmap ?? name } : {}),
      ...(sources.has(a.name) ? { source: sources.get(a.name)! } : {}),
    })
  }
  return { name, ...(parent ? { parent } : {}), ...(ct !== undefined ? { creationTime: Number(ct) } : {}), disks }
}

export type CheckpointState = 'healthy' | 'in-use' | 'broken' | 'missing' | 'untrusted'

export interface CheckpointFinding {
  checkpoint: string
  disk: string
  bitmap: string
  state: CheckpointState
  /** what to do about it, in plain words (no tool's flags: the CLI adds its own, keyed on `state`) */
  fix: string
}

export interface CheckpointReport {
  disk: string
  findings: CheckpointFinding[]
  /** bitmaps of the image no checkpoint refers to */
  orphans: Array<{ bitmap: string; fix: string }>
}

/**
 * Pick the disk of the checkpoints that this image is: by explicit name, by source file name, or
 * the only one with bitmaps; otherwise a ConstraintError 'disk-ambiguous' (the caller says how to name it).
 */
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
  throw new ConstraintError(`cannot tell which disk this image is (${[...all].join(', ') || 'none'})`, 'disk-ambiguous')
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
      fix = `broken (${b.problems[0]}): remove it (or drop every bitmap, a repair) and take a full backup`
    } else if (b.status === 'untrusted') {
      state = 'untrusted'
      fix = 'QEMU ignores every bitmap of this image (autoclear bit 0 clear): re-trust them (a repair; the next backup is full) or drop them all'
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
