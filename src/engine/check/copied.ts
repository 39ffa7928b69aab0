/**
 * QEMU's check_oflag_copied (qcow2-refcount.c; docs/format.md §6.6): the COPIED flag (bit 63) of
 * every active L1 entry and of every active L2 entry of a normal or preallocated zero cluster must
 * be set exactly when the cluster it points to has refcount 1. Each mismatch is a corruption;
 * clusters whose refcount cannot be read are skipped silently, as in QEMU.
 *
 * QEMU walks the active tables a second time for this, after comparing the refcounts. The
 * stored refcounts do not change in between (the check repairs nothing), so qbm makes the same
 * comparisons during the reference walk's one read of each table (check/references.ts), and the
 * check adds the findings after the comparison, where QEMU prints them.
 */
import { FAR } from '../bytes.js'
import { type ClusterType, entryOffset, entryU64, isCopied } from '../qcow2/mapping.js'
import { Findings } from './findings.js'
import { hex } from '../padded.js'
import type { StoredRefcounts } from './stored.js'

/** Collects OFLAG_COPIED corruptions while the references are walked. */
export class CopiedCheck {
  /** the corruptions found, kept apart until the refcount comparison has added its own */
  readonly findings: Findings
  /** L2 tables whose own refcount QEMU cannot read: it skips their entries */
  private readonly skipped = new Set<number>()

  constructor(
    private readonly stored: StoredRefcounts,
    private readonly clusterSize: number,
    /** with an external data file QEMU takes every data cluster's refcount as 1 */
    private readonly externalData: boolean,
    findingLimit: number,
  ) {
    this.findings = new Findings(findingLimit)
  }

  /**
   * Stored refcount of the cluster at `offset` if known without a read: the refcount, undefined
   * when QEMU cannot read it, null when its refcount block has to be read first (`read`).
   */
  private peek(offset: number): number | undefined | null {
    // a cluster at or past 2^53 lies past the end of the file: no refcount block covers it
    return offset >= FAR ? 0 : this.stored.peek(Math.floor(offset / this.clusterSize))
  }

  private async read(offset: number): Promise<number | undefined> {
    return offset >= FAR ? 0 : this.stored.get(Math.floor(offset / this.clusterSize))
  }

  /** The stored refcount at `offset`, exact, for messages. */
  private async exact(offset: number): Promise<string> {
    return offset >= FAR ? '0' : this.stored.exact(Math.floor(offset / this.clusterSize))
  }

  /**
   * An active L1 entry (words hi, lo) at `offset`, index `index`. Returns a promise only when it
   * has to read (a refcount block, or the exact refcount for a message): await it then. The
   * walk calls this for every entry, and almost always the answer is at hand.
   */
  l1Entry(index: number, hi: number, lo: number, offset: number): Promise<void> | undefined {
    const l2 = entryOffset(hi, lo)
    if (l2 === 0) return undefined
    const rc = this.peek(l2)
    return rc === null ? this.l1Read(index, hi, lo, offset, l2) : this.l1Verdict(index, hi, lo, offset, l2, rc)
  }

  private async l1Read(index: number, hi: number, lo: number, offset: number, l2: number): Promise<void> {
    await this.l1Verdict(index, hi, lo, offset, l2, await this.read(l2))
  }

  private l1Verdict(index: number, hi: number, lo: number, offset: number, l2: number, rc: number | undefined): Promise<void> | undefined {
    if (rc === undefined) { this.skipped.add(l2); return undefined }
    if ((rc === 1) === isCopied(hi)) return undefined
    return this.exact(l2).then((x) => { this.findings.error(`ERROR OFLAG_COPIED L2 cluster: l1_index=${index} l1_entry=${hex(entryU64(hi, lo))} refcount=${x}`, { offset }) })
  }

  /**
   * Whether QEMU's pass reads the L2 table at `tableOffset`: not when its L1 entries carry no
   * offset (the reference walk still reads "offset 0", the header), nor when the table's own
   * refcount cannot be read.
   */
  visits(tableOffset: number): boolean {
    return tableOffset !== 0 && !this.skipped.has(tableOffset)
  }

  /**
   * An L2 entry of type `type` in a table the active L1 references `times` times (QEMU walks it
   * once per reference). `tableOffset` locates the finding. Returns a promise only when it has
   * to read, as l1Entry.
   */
  l2Entry(hi: number, lo: number, type: ClusterType, times: number, tableOffset: number): Promise<void> | undefined {
    if (times === 0 || (type !== 'normal' && type !== 'zero-alloc')) return undefined
    if (this.externalData) return this.l2Verdict(hi, lo, times, tableOffset, 0, 1)
    const off = entryOffset(hi, lo)
    const rc = this.peek(off)
    return rc === null ? this.l2Read(hi, lo, times, tableOffset, off) : this.l2Verdict(hi, lo, times, tableOffset, off, rc)
  }

  private async l2Read(hi: number, lo: number, times: number, tableOffset: number, off: number): Promise<void> {
    await this.l2Verdict(hi, lo, times, tableOffset, off, await this.read(off))
  }

  private l2Verdict(hi: number, lo: number, times: number, tableOffset: number, off: number, rc: number | undefined): Promise<void> | undefined {
    if (rc === undefined || (rc === 1) === isCopied(hi)) return undefined
    // with an external data file QEMU takes every data cluster's refcount as 1
    const exact = this.externalData ? Promise.resolve('1') : this.exact(off)
    return exact.then((x) => { this.findings.error(`ERROR OFLAG_COPIED data cluster: l2_entry=${hex(entryU64(hi, lo))} refcount=${x}`, { offset: tableOffset }, times) })
  }
}
