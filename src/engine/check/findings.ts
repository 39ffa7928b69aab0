/**
 * What a check found, counted the way QEMU's BdrvCheckResult counts it: corruptions, leaks
 * and internal errors ("check_errors"), each usually with the message qemu-img check prints.
 * Counts are always exact; the list of messages is capped so a badly broken image cannot
 * grow memory without limit.
 */

/** error: a corruption (exit 2); leak: a leaked cluster (exit 3); warning: exit code unchanged. */
export type FindingKind = 'error' | 'leak' | 'warning'

/** One message of a check, with the cluster or byte offset it is about when there is one. */
export interface CheckFinding {
  readonly kind: FindingKind
  readonly message: string
  readonly cluster?: number
  readonly offset?: number
}

/** Where a finding points. */
export interface FindingPlace {
  cluster?: number
  offset?: number
}

/** Collects findings and QEMU's counters. */
export class Findings {
  readonly list: CheckFinding[] = []
  /** error and leak messages dropped because the list was full */
  omitted = 0
  corruptions = 0
  leaks = 0
  /** QEMU's check_errors: the check itself could not read something (exit 1) */
  checkErrors = 0
  private capped = 0

  constructor(readonly limit = 10000) {}

  /** `times` corruptions, each with this message. */
  error(message: string, place: FindingPlace = {}, times = 1): void {
    this.corruptions += times
    this.add('error', message, place, times)
  }

  /** A corruption QEMU counts without printing anything. */
  silentCorruption(times = 1): void {
    this.corruptions += times
  }

  leak(message: string, place: FindingPlace = {}): void {
    this.leaks++
    this.add('leak', message, place, 1)
  }

  /** An internal error of the check (QEMU: check_errors). */
  internal(message: string, place: FindingPlace = {}): void {
    this.checkErrors++
    this.add('error', message, place, 1)
  }

  /** Warnings are never capped: there are few of them. */
  warning(message: string, place: FindingPlace = {}): void {
    this.list.push({ kind: 'warning', message, ...place })
  }

  /** Append another collection's findings and counts, respecting this one's cap. */
  absorb(other: Findings): void {
    this.corruptions += other.corruptions
    this.leaks += other.leaks
    this.checkErrors += other.checkErrors
    this.omitted += other.omitted
    for (const item of other.list) {
      if (item.kind === 'warning') { this.list.push(item); continue }
      if (this.capped >= this.limit) { this.omitted++; continue }
      this.capped++
      this.list.push(item)
    }
  }

  private add(kind: FindingKind, message: string, place: FindingPlace, times: number): void {
    for (let i = 0; i < times; i++) {
      if (this.capped >= this.limit) { this.omitted += times - i; return }
      this.capped++
      this.list.push({ kind, message, ...place })
    }
  }
}
