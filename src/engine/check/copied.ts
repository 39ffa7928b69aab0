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

  /** Stored refcount of the cluster at `offset`, or undefined when QEMU cannot read it. */
  private async refcount(offset: number): Promise<{ rc: number; exact: () => Promise<string> } | undefined> {
    // a cluster at or past 2^53 lies past the end of the file: no refcount block covers it
    if (offset >= FAR) return { rc: 0, exact: async () => '0' }
    const c = Math.floor(offset / this.clusterSize)
    const rc = await this.stored.get(c)
    return rc === undefined ? undefined : { rc, exact: () => this.stored.exact(c) }
  }

  /** An active L1 entry (words hi, lo) at `offset`, index `index`. */
  async l1Entry(index: number, hi: number, lo: number, offset: number): Promise<void> {
    const l2 = entryOffset(hi, lo)
    if (l2 === 0) return
    const r = await this.refcount(l2)
    if (!r) { this.skipped.add(l2); return }
    if ((r.rc === 1) === isCopied(hi)) return
    this.findings.error(`ERROR OFLAG_COPIED L2 cluster: l1_index=${index} l1_entry=${hex(entryU64(hi, lo))} refcount=${await r.exact()}`, { offset })
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
   * once per reference). `tableOffset` locates the finding.
   */
  async l2Entry(hi: number, lo: number, type: ClusterType, times: number, tableOffset: number): Promise<void> {
    if (times === 0 || (type !== 'normal' && type !== 'zero-alloc')) return
    const r = this.externalData ? { rc: 1, exact: async () => '1' } : await this.refcount(entryOffset(hi, lo))
    if (!r || (r.rc === 1) === isCopied(hi)) return
    this.findings.error(`ERROR OFLAG_COPIED data cluster: l2_entry=${hex(entryU64(hi, lo))} refcount=${await r.exact()}`, { offset: tableOffset }, times)
  }
}
