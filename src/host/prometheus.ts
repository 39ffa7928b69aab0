/**
 * The overview in Prometheus' text exposition format, as node_exporter's textfile collector
 * reads it (`*.prom`): `# HELP` and `# TYPE` before each family, the samples of a family
 * together, label values escaped (`\\`, `\"`, `\n`), no timestamps (the collector refuses
 * them). Every metric is a gauge prefixed `qbm_`; images are labelled by `path`, bitmaps by
 * `path` and `bitmap`.
 */
import { type OverviewRow, needsAttention } from './overview.js'

/** Facts about the scan itself. */
export interface ScanInfo {
  /** when the scan ended, ms since the epoch */
  endedAtMs: number
  durationSeconds: number
  /** PATHs and directory entries the catalog refused or could not read */
  catalogErrors: number
  /** the libvirt checkpoint directory read, if any */
  checkpointDir?: string
  checkpointFiles?: number
  checkpointErrors?: number
}

type Labels = Record<string, string>

interface Family {
  name: string
  help: string
  samples: Array<[Labels, number]>
}

/** Escape a label value: backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** Escape HELP text: backslash and newline. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function sampleLine(name: string, labels: Labels, value: number): string {
  const ls = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')
  const num = Number.isNaN(value) ? 'NaN' : value === Infinity ? '+Inf' : value === -Infinity ? '-Inf' : String(value)
  return `${name}${ls ? `{${ls}}` : ''} ${num}\n`
}

class Families {
  private readonly list: Family[] = []
  private readonly byName = new Map<string, Family>()
  declare(name: string, help: string): void {
    const f: Family = { name, help, samples: [] }
    this.list.push(f)
    this.byName.set(name, f)
  }
  add(name: string, labels: Labels, value: number): void {
    this.byName.get(name)!.samples.push([labels, value])
  }
  format(): string {
    let out = ''
    for (const f of this.list) {
      out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} gauge\n`
      for (const [l, v] of f.samples) out += sampleLine(f.name, l, v)
    }
    return out
  }
}

const b01 = (x: boolean): number => (x ? 1 : 0)

/** The overview and the scan's own figures as a textfile-collector file. */
export function formatPrometheus(rows: OverviewRow[], scan: ScanInfo): string {
  const F = new Families()
  F.declare('qbm_image_info', 'One series per qcow2 image found under the scanned PATHs (value 1)')
  F.declare('qbm_image_readable', 'Whether qbm could read the image (0: see qbm scan for the error)')
  F.declare('qbm_image_needs_attention', 'Whether the image needs attention: unreadable, refused by QEMU, a bitmap in use or broken, held by QEMU, check errors or leaks, checkpoint mismatches')
  F.declare('qbm_image_virtual_size_bytes', 'Virtual disk size of the image')
  F.declare('qbm_image_file_size_bytes', 'Size of the image file or block device')
  F.declare('qbm_image_bitmaps', 'Persistent dirty bitmaps in the image')
  F.declare('qbm_image_bitmaps_in_use', 'Bitmaps with the in-use flag (stale unless a QEMU process holds the image)')
  F.declare('qbm_image_max_dirty_ratio', 'Largest dirty fraction of the virtual disk over the readable bitmaps')
  F.declare('qbm_image_lock_held', "Whether a process holds QEMU's image locks on the image (it is open in QEMU)")
  F.declare('qbm_image_lock_holder_info', 'The process holding the image (value 1), when known')
  F.declare('qbm_image_check_completed', 'Whether the qemu-img check equivalent ran to the end')
  F.declare('qbm_image_check_errors', 'Corruptions plus internal errors found by the check (qemu-img check exit 2 when nonzero)')
  F.declare('qbm_image_check_leaks', 'Leaked clusters found by the check')
  F.declare('qbm_image_checkpoint_mismatches', 'libvirt checkpoint findings that need a fix: missing, in-use, broken or untrusted bitmaps, and bitmaps no checkpoint refers to')
  F.declare('qbm_checkpoint_mismatch', 'One libvirt checkpoint finding that needs a fix (value 1); state missing means "bitmap not found in backing chain", no-checkpoint means "Bitmap already exists"')
  F.declare('qbm_bitmap_dirty_bytes', 'Dirty bytes of the bitmap (of its stored data: stale when in use)')
  F.declare('qbm_bitmap_granularity_bytes', 'Granularity of the bitmap')
  F.declare('qbm_bitmap_in_use', 'Whether the bitmap has the in-use flag')
  F.declare('qbm_bitmap_enabled', 'Whether the bitmap is enabled (the auto flag)')
  F.declare('qbm_bitmap_status', 'Bitmap status as QEMU sees it (value 1): ok, in-use, untrusted or invalid')
  F.declare('qbm_scan_images', 'Images scanned')
  F.declare('qbm_scan_catalog_errors', 'PATHs and directory entries the scan refused or could not read')
  F.declare('qbm_scan_duration_seconds', 'How long the scan took')
  F.declare('qbm_scan_timestamp_seconds', 'When the scan ended, Unix time')
  if (scan.checkpointDir !== undefined) {
    F.declare('qbm_scan_checkpoint_files', 'libvirt checkpoint files read')
    F.declare('qbm_scan_checkpoint_errors', 'libvirt checkpoint files that could not be read or parsed')
  }

  for (const r of rows) {
    const img = { path: r.path }
    F.add('qbm_image_info', { path: r.path, id: r.id, kind: r.kind }, 1)
    F.add('qbm_image_readable', img, b01(r.error === null))
    F.add('qbm_image_needs_attention', img, b01(needsAttention(r)))
    F.add('qbm_image_file_size_bytes', img, r.fileSize)
    F.add('qbm_image_lock_held', img, b01(r.holder !== null))
    if (r.holder) {
      F.add('qbm_image_lock_holder_info', {
        path: r.path, program: r.holder.program ?? '', pid: r.holder.pid !== undefined ? String(r.holder.pid) : '', mode: r.holder.write ? 'write' : 'read',
      }, 1)
    }
    if (r.error !== null) continue
    F.add('qbm_image_virtual_size_bytes', img, r.virtualSize ?? 0)
    F.add('qbm_image_bitmaps', img, r.bitmapCount)
    F.add('qbm_image_bitmaps_in_use', img, r.inUseCount)
    if (r.maxDirtyPercent !== null) F.add('qbm_image_max_dirty_ratio', img, r.maxDirtyPercent / 100)
    if (r.check && r.check.status !== 'skipped') {
      F.add('qbm_image_check_completed', img, b01(r.check.status !== 'failed'))
      F.add('qbm_image_check_errors', img, r.check.corruptions + r.check.checkErrors)
      F.add('qbm_image_check_leaks', img, r.check.leaks)
    }
    if (scan.checkpointDir !== undefined) F.add('qbm_image_checkpoint_mismatches', img, r.checkpointMismatches)
    for (const c of r.checkpoints) {
      for (const m of c.mismatches) {
        F.add('qbm_checkpoint_mismatch', { path: r.path, domain: m.domain, disk: m.disk, checkpoint: m.checkpoint ?? '', bitmap: m.bitmap, state: m.state }, 1)
      }
    }
    // A series must be unique: a second bitmap of the same name (a corrupt directory) is left out;
    // the image is flagged by qbm_image_needs_attention.
    const seen = new Set<string>()
    for (const b of r.bitmaps) {
      if (seen.has(b.name)) continue
      seen.add(b.name)
      const bl = { path: r.path, bitmap: b.name }
      if (b.dirtyBytes !== null) F.add('qbm_bitmap_dirty_bytes', bl, b.dirtyBytes)
      F.add('qbm_bitmap_granularity_bytes', bl, b.granularity)
      F.add('qbm_bitmap_in_use', bl, b01(b.flags.includes('in-use')))
      F.add('qbm_bitmap_enabled', bl, b01(b.enabled))
      F.add('qbm_bitmap_status', { ...bl, status: b.status }, 1)
    }
  }

  F.add('qbm_scan_images', {}, rows.length)
  F.add('qbm_scan_catalog_errors', {}, scan.catalogErrors)
  F.add('qbm_scan_duration_seconds', {}, scan.durationSeconds)
  F.add('qbm_scan_timestamp_seconds', {}, scan.endedAtMs / 1000)
  if (scan.checkpointDir !== undefined) {
    F.add('qbm_scan_checkpoint_files', {}, scan.checkpointFiles ?? 0)
    F.add('qbm_scan_checkpoint_errors', {}, scan.checkpointErrors ?? 0)
  }
  return F.format()
}
