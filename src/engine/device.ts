/**
 * BlockDevice: everything the engine knows about storage. Implementations live in src/io.
 *
 * Contract (after Go's io.ReaderAt): `read` returns exactly `length` bytes or throws a
 * DeviceError; there is no shared position; concurrent reads are allowed. Writes and flush
 * exist only on writable devices; the committer is the only engine code that calls them.
 */
export interface BlockDevice {
  /** Current size of the file in bytes. */
  readonly size: number
  /**
   * Optional: false when the storage cannot grow past `size` (a block device such as a loop
   * device or an LVM logical volume), so a write past the end fails. Absent or true: a file,
   * which grows when written past its end. The edit path refuses, before its first write, a
   * plan that writes past the end of a device that cannot grow (edits/capacity.ts).
   */
  readonly growable?: boolean
  /** Read exactly `length` bytes at absolute `offset`. */
  read(offset: number, length: number): Promise<Uint8Array>
  /**
   * Optional: read exactly `target.length` bytes at absolute `offset` into `target` (same
   * contract as `read`, but no buffer is allocated). Hot loops (the bitmap scan) use it to read
   * straight into a reused buffer or the scan kernel's memory; devices without it are read with
   * `read` and copied.
   */
  readInto?(offset: number, target: Uint8Array): Promise<void>
  /** Write `data` at absolute `offset`, growing the file if needed. */
  write?(offset: number, data: Uint8Array): Promise<void>
  /** Make every earlier write durable before any later one. */
  flush?(): Promise<void>
}

/** A device that can be edited. */
export interface WritableBlockDevice extends BlockDevice {
  write(offset: number, data: Uint8Array): Promise<void>
  flush(): Promise<void>
}

/** True when `d` has the write and flush methods an edit needs. */
export function isWritable(d: BlockDevice): d is WritableBlockDevice {
  return typeof d.write === 'function' && typeof d.flush === 'function'
}
