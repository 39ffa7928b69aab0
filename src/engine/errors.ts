/**
 * Error types of the engine. Every error about the file names the structure, the spec's
 * field name, the absolute byte offset and, when useful, the bad value (STYLE.md §1).
 *
 * Every error carries a `code` (ErrorCode) so that callers decide without reading the words: the
 * CLI adds its flag names to a refused edit, the UI its own words and buttons. The engine's
 * messages name no CLI flag.
 */

/**
 * Why an edit is refused (ConstraintError.code). A caller that offers a way out keys it on these:
 * - `bitmaps-in-use`: some bitmaps are in use, so the image may be open in a running QEMU; the
 *   edit goes ahead only when the user confirms that no VM has the image open (PlanOptions.force).
 * - `image-check-failed`: the image fails its check (corruptions, or it cannot be checked) for
 *   reasons outside its bitmaps; repair it with other tools first.
 * - `bitmap-metadata-broken`: the image fails its check only because of its bitmap metadata;
 *   the drop-all-bitmaps repair removes the bitmaps safely.
 * - `bitmap-metadata-invalid`: QEMU refuses the bitmap metadata; only a repair is possible (drop
 *   all bitmaps).
 * - `bitmaps-untrusted`: autoclear bit 0 is clear; the re-trust or drop-all-bitmaps repair.
 * - `image-not-editable`: qcow2 v2, the dirty or corrupt bit, or unknown incompatible features.
 * - `refcounts-damaged`: the refcount table or blocks cannot be trusted for allocation.
 * - `bitmap-not-found`, `name-taken`, `name-invalid`, `granularity-invalid`, `disk-empty`.
 * - `bitmap-inconsistent`: the bitmap is in use, and QEMU refuses this operation on it.
 * - `bitmap-not-in-use`: clearing in_use of a bitmap that does not have it.
 * - `stored-bits-unusable`: the in-use bitmap's stored bits cannot be kept; mark every bit dirty
 *   or clear them instead.
 * - `limit-exceeded`: one of QEMU's limits (bitmap count, directory size, refcount table, cluster 0).
 * - `size-mismatch`, `source-unusable`: a merge from another image.
 * - `nothing-to-repair`: the repair asked for has nothing to act on.
 * - `invalid-edit`: the edit itself is malformed.
 * - `ConstraintError`: any other refusal.
 */
export type ConstraintCode =
  | 'bitmaps-in-use' | 'image-check-failed' | 'bitmap-metadata-broken' | 'bitmap-metadata-invalid' | 'bitmaps-untrusted'
  | 'image-not-editable' | 'refcounts-damaged' | 'bitmap-not-found' | 'name-taken' | 'name-invalid'
  | 'granularity-invalid' | 'disk-empty' | 'bitmap-inconsistent' | 'bitmap-not-in-use' | 'stored-bits-unusable'
  | 'limit-exceeded' | 'size-mismatch' | 'source-unusable' | 'nothing-to-repair' | 'invalid-edit' | 'disk-ambiguous' | 'ConstraintError'

/**
 * The code of every engine error: the class name where the class says it all (a FormatError is
 * about the file, an AbortError a cancellation: these are the codes the worker boundary has
 * always carried), and the reason of a refused edit.
 */
export type ErrorCode = 'FormatError' | 'UnsupportedError' | 'DeviceError' | 'AbortError' | ConstraintCode

function hex(n: number | bigint): string {
  return '0x' + n.toString(16)
}

function showValue(v: bigint | number | string | undefined): string {
  if (v === undefined) return ''
  if (typeof v === 'string') return ` (${v})`
  return ` (${v.toString()}${v >= 10 ? ', ' + hex(v) : ''})`
}

/** The image violates the qcow2 format or one of QEMU's limits. */
export class FormatError extends Error {
  override readonly name = 'FormatError'
  readonly code: ErrorCode = 'FormatError'
  constructor(
    /** what holds the field, e.g. 'bitmaps extension', "bitmap directory entry 2 'b0'" */
    readonly structure: string,
    /** the spec's name of the field, e.g. 'bitmap_table_size' */
    readonly field: string,
    /** absolute byte offset of the field in the image */
    readonly offset: number,
    /** what is wrong, in plain words */
    readonly problem: string,
    readonly value?: bigint | number | string,
  ) {
    super(`${structure} at ${hex(offset)}: ${field} ${problem}${showValue(value)}`)
  }
}

/**
 * Something the reader found in the image, with where it is when that is known. A `refusal` is
 * a reason QEMU's open fails; a `warning` is something QEMU accepts that qbm points out (a
 * stricter finding, or a state worth knowing). `message` is the display form.
 */
export interface Finding {
  readonly severity: 'refusal' | 'warning'
  readonly message: string
  /** what holds the field, e.g. "bitmap directory entry 2 'b0'" */
  readonly structure?: string
  /** the spec's name of the field */
  readonly field?: string
  /** absolute byte offset of the field in the image */
  readonly offset?: number
  readonly value?: string
  /** refusals: QEMU's own words for it, when QEMU has a message of its own (what qemu-img prints) */
  readonly qemu?: string
  /** refusals: whether the bitmap metadata is to blame (a repair that drops the bitmaps removes it) */
  readonly cause?: 'container' | 'bitmaps'
  /** refusals: only QEMU's normal open refuses it, not its check open (docs/format.md §6.1) */
  readonly normalOnly?: boolean
}

/** A finding from a FormatError, keeping its structure, field, offset and value. */
export function findingFrom(e: FormatError, severity: Finding['severity'], extra: Pick<Finding, 'cause' | 'normalOnly' | 'qemu'> = {}): Finding {
  return {
    severity, message: e.message, structure: e.structure, field: e.field, offset: e.offset,
    ...(e.value !== undefined ? { value: e.value.toString() } : {}),
    ...extra,
  }
}

/** A finding known only by its words (QEMU's own message, no single field to point at). */
export function plainFinding(severity: Finding['severity'], message: string, extra: Pick<Finding, 'cause' | 'normalOnly' | 'offset' | 'field' | 'structure' | 'qemu'> = {}): Finding {
  return { severity, message, ...extra }
}

/** A valid image that uses something qbm does not handle. */
export class UnsupportedError extends Error {
  override readonly name = 'UnsupportedError'
  readonly code: ErrorCode = 'UnsupportedError'
}

/** An edit is refused (it would break one of QEMU's rules, or the image is not safe to write); nothing was written. */
export class ConstraintError extends Error {
  override readonly name = 'ConstraintError'
  constructor(message: string, readonly code: ConstraintCode = 'ConstraintError', readonly field?: string) {
    super(message)
  }
}

/** The storage failed: short read, write refused, file changed under us. */
export class DeviceError extends Error {
  override readonly name = 'DeviceError'
  readonly code: ErrorCode = 'DeviceError'
  constructor(message: string, readonly offset?: number) {
    super(message)
  }
}

/** The caller cancelled a long operation. */
export class AbortError extends Error {
  override readonly name = 'AbortError'
  readonly code: ErrorCode = 'AbortError'
  constructor(message = 'operation cancelled') {
    super(message)
  }
}

/** Minimal AbortSignal shape, so the engine needs no DOM or Node types. */
export interface AbortSignalLike {
  readonly aborted: boolean
}

/** Throw AbortError when the signal says the caller cancelled. */
export function throwIfAborted(signal: AbortSignalLike | undefined): void {
  if (signal?.aborted) throw new AbortError()
}

/** Plain-data form of an engine error, for the worker boundary and JSON output. */
export interface ErrorInfo {
  /** an ErrorCode for engine errors; other errors give their name ('Error', 'NotAllowedError', ...) */
  code: ErrorCode | string
  message: string
  structure?: string
  field?: string
  offset?: number
  value?: string
}

/** The plain-data form of any error: code, message, and structure, field, offset and value when known. */
export function toErrorInfo(e: unknown): ErrorInfo {
  if (e instanceof FormatError) {
    return {
      code: e.code,
      message: e.message,
      structure: e.structure,
      field: e.field,
      offset: e.offset,
      ...(e.value !== undefined ? { value: e.value.toString() } : {}),
    }
  }
  if (e instanceof ConstraintError) return { code: e.code, message: e.message, ...(e.field ? { field: e.field } : {}) }
  if (e instanceof DeviceError) return { code: e.code, message: e.message, ...(e.offset !== undefined ? { offset: e.offset } : {}) }
  if (e instanceof UnsupportedError || e instanceof AbortError) return { code: e.code, message: e.message }
  if (e instanceof Error) return { code: e.name, message: e.message }
  return { code: 'Error', message: String(e) }
}
