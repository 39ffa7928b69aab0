/**
 * "Download edited copy": the original file's slices with the plan's writes laid over them,
 * as one Blob (no copy of the untouched bytes is made in memory).
 */
import type { Plan } from '../engine/index.js'

interface Segment { start: number; end: number; data: Uint8Array }

/** Resolve writes in commit order (later ones win) into sorted, non-overlapping segments. */
export function overlay(writes: ReadonlyArray<{ offset: number; data: Uint8Array }>): Segment[] {
  let segs: Segment[] = []
  for (const w of writes) {
    const s = w.offset
    const e = w.offset + w.data.length
    const next: Segment[] = []
    for (const x of segs) {
      if (x.end <= s || x.start >= e) { next.push(x); continue }
      if (x.start < s) next.push({ start: x.start, end: s, data: x.data.subarray(0, s - x.start) })
      if (x.end > e) next.push({ start: e, end: x.end, data: x.data.subarray(e - x.start) })
    }
    next.push({ start: s, end: e, data: w.data })
    segs = next.sort((a, b) => a.start - b.start)
  }
  return segs
}

export function planWritesInOrder(plan: Plan): Array<{ offset: number; data: Uint8Array }> {
  return [...plan.writes, plan.header, ...plan.frees]
}

export function patchedBlob(original: Blob, plan: Plan, type = 'application/octet-stream'): Blob {
  const segs = overlay(planWritesInOrder(plan))
  const parts: BlobPart[] = []
  let pos = 0
  for (const s of segs) {
    if (s.start > pos) parts.push(original.slice(pos, Math.min(s.start, original.size)))
    if (s.start > Math.max(pos, original.size)) parts.push(new Uint8Array(s.start - Math.max(pos, original.size)))
    parts.push(s.data as Uint8Array<ArrayBuffer>)
    pos = s.end
  }
  if (pos < original.size) parts.push(original.slice(pos))
  return new Blob(parts, { type })
}
