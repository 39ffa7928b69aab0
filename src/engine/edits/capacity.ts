/**
 * Does a plan fit on storage that cannot grow? A qcow2 image on a block device (an LVM logical
 * volume of oVirt or Proxmox, a loop device) ends where the device ends: QEMU's management
 * extends the volume before the guest needs more, and qbm cannot. The allocator (allocator.ts)
 * first fills free clusters below the end of the device, then appends; a plan whose writes
 * reach past the end must be refused before its first write, since a write there fails half-way
 * through the commit (ENOSPC, as `qemu-img bitmap --add` does on a full device).
 */
import { humanAndExact, hex } from '../analysis/units.js'
import type { Image } from '../image.js'
import { loadRefcounts } from '../qcow2/refcount.js'
import type { Plan } from './types.js'

/** End (exclusive byte offset) of the last byte any write of the plan touches. */
export function planEnd(plan: Plan): number {
  let end = 0
  for (const w of [...plan.writes, plan.header, ...plan.frees]) end = Math.max(end, w.offset + w.data.length)
  return end
}

/** How far a plan reaches past the end of a device that cannot grow. */
export interface Overrun {
  /** end of the plan's last write (planEnd) */
  end: number
  /** bytes past the end of the device: end - deviceSize, > 0 */
  past: number
}

/** null when every write of the plan ends at or below `deviceSize`, else how far it reaches past. */
export function planOverrun(plan: Plan, deviceSize: number): Overrun | null {
  const end = planEnd(plan)
  return end > deviceSize ? { end, past: end - deviceSize } : null
}

/**
 * End of the last cluster with a non-zero refcount (spec §5.1): where the image's clusters end
 * on the device. Reads the refcount structures, so call it for the refusal message only.
 */
export async function usedEnd(img: Image): Promise<number> {
  const rc = await loadRefcounts(img.device, img.header)
  for (let c = rc.counts.length - 1; c >= 0; c--) if (rc.counts[c]! > 0) return (c + 1) * img.header.clusterSize
  return 0
}

/**
 * The refusal for a plan that does not fit, naming the bytes needed and the bytes free, e.g.
 * "the edit needs 192 KiB (196,608 bytes) past the end of the device /dev/loop3, whose size is
 * 64 MiB (67,108,864 bytes): its new clusters need 192 KiB (196,608 bytes) after the last
 * cluster in use (at 0x4000000), where 0 bytes are free. ..."
 * `used` is usedEnd(img) of the image the plan was made from.
 */
export function capacityRefusal(o: Overrun, deviceSize: number, used: number, device: string): string {
  const free = Math.max(0, deviceSize - used)
  const after = Math.max(0, o.end - used)
  return `the edit needs ${humanAndExact(o.past)} past the end of the device ${device}, whose size is ${humanAndExact(deviceSize)}: ` +
    `its new clusters need ${humanAndExact(after)} after the last cluster in use (at ${hex(used)}), where ${humanAndExact(free)} ${free === 1 ? 'is' : 'are'} free. ` +
    'qbm cannot grow a block device: extend it (lvextend for a logical volume) and retry; nothing was written'
}
