/**
 * The gate in front of every write: an image that fails its check is never written to.
 *
 * Bitmap edits need the whole image to pass `qemu-img check` as QEMU would run it (no
 * corruptions, no failure). Leaked clusters are allowed — QEMU writes to leaky images too, and
 * qbm never hands out a cluster whose refcount is not zero — and reported as a warning.
 *
 * Repairs exist for images whose bitmap metadata is broken, so they are checked as if the image
 * had no bitmaps: everything else must be sound, and the clusters that other metadata (L1/L2,
 * refcount structures, snapshots, the encryption header) still references are protected — a
 * corrupt bitmap table that points at an L2 table must not make `--drop-all-bitmaps` free it.
 */
import { type ConstraintCode, ConstraintError } from '../errors.js'
import type { Image } from '../image.js'
import { type CheckReport, checkImage } from '../check/check.js'
import type { AbortSignalLike } from '../errors.js'

export interface EditVerdict {
  readonly report: CheckReport
  /** plain-word warnings (leaks) to show next to the plan */
  readonly warnings: string[]
  /**
   * References per cluster from everything but the bitmaps (repair only): a cluster with any is
   * never freed by the plan.
   */
  readonly referencesTo?: (cluster: number) => number
}

export interface VerifyOptions {
  /** check for a repair: bitmaps ignored, other references protected */
  repair?: boolean
  signal?: AbortSignalLike
  onProgress?: (done: number, total: number, phase: string) => void
}

/**
 * Run the check an edit needs; throws ConstraintError naming the first problem when it fails:
 * code `bitmap-metadata-broken` when the image passes without its bitmaps (dropping them is the
 * way out), `image-check-failed` otherwise.
 */
export async function verifyForEdit(img: Image, opts: VerifyOptions = {}): Promise<EditVerdict> {
  const repair = opts.repair === true
  let referencesTo: ((c: number) => number) | undefined
  const report = await checkImage(img, {
    ignoreBitmaps: repair,
    findingLimit: 20,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    onReferences: (f) => { referencesTo = f },
  })
  const verb = repair ? 'cannot repair' : 'cannot edit'
  const scope = repair ? ' outside its bitmaps' : ''
  if (report.exitCode === 1 || report.corruptions > 0) {
    const what = report.exitCode === 1
      ? `the image cannot be checked${scope} (${report.failure ?? 'check failed'})`
      : `the image fails its check with ${report.corruptions} corruption${report.corruptions > 1 ? 's' : ''}${scope}${firstError(report)}`
    let fix = 'repair that first (e.g. `qemu-img check -r all`); nothing was written'
    let code: ConstraintCode = 'image-check-failed'
    if (!repair) {
      // Is the bitmap metadata to blame? Then dropping the bitmaps is the way out.
      const without = await checkImage(img, { ignoreBitmaps: true, findingLimit: 1, ...(opts.signal ? { signal: opts.signal } : {}) })
      if (without.exitCode === 0 || without.exitCode === 3) {
        code = 'bitmap-metadata-broken'
        fix = 'the problem is in the bitmap metadata: the repair that drops every bitmap removes them safely; nothing was written'
      } else {
        fix = 'the check lists every problem; repair them first (e.g. `qemu-img check -r all`); nothing was written'
      }
    }
    throw new ConstraintError(`${verb}: ${what}; ${fix}`, code)
  }
  const warnings: string[] = []
  if (report.leaks > 0 && !repair) {
    warnings.push(`the image has ${report.leaks} leaked cluster${report.leaks > 1 ? 's' : ''} (harmless; \`qemu-img check -r leaks\` reclaims them); they stay as they are`)
  }
  return {
    report,
    warnings,
    ...(repair && referencesTo ? { referencesTo } : {}),
  }
}

function firstError(r: CheckReport): string {
  const first = r.findings.find((f) => f.kind === 'error')
  return first ? ` (first: ${first.message})` : ''
}
