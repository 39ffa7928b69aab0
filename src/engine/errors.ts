/**
 * Error types of the engine. Every error about the file names the structure, the spec's
 * field name, the absolute byte offset and, when useful, the bad value (STYLE.md §1).
 */

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
}

/** An edit would break one of QEMU's rules; nothing was written. */
export class ConstraintError extends Error {
  override readonly name = 'ConstraintError'
  constructor(message: string, readonly field?: string) {
    super(message)
  }
}

/** The storage failed: short read, write refused, file changed under us. */
export class DeviceError extends Error {
  override readonly name = 'DeviceError'
  constructor(message: string, readonly offset?: number) {
    super(message)
  }
}

/** The caller cancelled a long operation. */
export class AbortError extends Error {
  override readonly name = 'AbortError'
  constructor(message = 'operation cancelled') {
    super(message)
  }
}

/** Minimal AbortSignal shape, so the engine needs no DOM or Node types. */
export interface AbortSignalLike {
  readonly aborted: boolean
}

export function throwIfAborted(signal: AbortSignalLike | undefined): void {
  if (signal?.aborted) throw new AbortError()
}

/** Plain-data form of an engine error, for the worker boundary and JSON output. */
export interface ErrorInfo {
  code: string
  message: string
  structure?: string
  field?: string
  offset?: number
  value?: string
}

export function toErrorInfo(e: unknown): ErrorInfo {
  if (e instanceof FormatError) {
    return {
      code: e.name,
      message: e.message,
      structure: e.structure,
      field: e.field,
      offset: e.offset,
      ...(e.value !== undefined ? { value: e.value.toString() } : {}),
    }
  }
  if (e instanceof ConstraintError) return { code: e.name, message: e.message, ...(e.field ? { field: e.field } : {}) }
  if (e instanceof DeviceError) return { code: e.name, message: e.message, ...(e.offset !== undefined ? { offset: e.offset } : {}) }
  if (e instanceof Error) return { code: e.name, message: e.message }
  return { code: 'Error', message: String(e) }
}
