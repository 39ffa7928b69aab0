/**
 * Bitmap algebra at byte resolution: A ∪ B, A ∩ B, A ∖ B, A ⊕ B over two streams of merged
 * dirty extents (different granularities and images of the same size allowed: a byte is dirty
 * in A when its granule in A is set). Streaming sweep: memory stays constant.
 */
import type { Extent } from './extents.js'

export type SetOp = 'union' | 'intersect' | 'minus' | 'xor'

export const SET_OPS: readonly SetOp[] = ['union', 'intersect', 'minus', 'xor']

function apply(op: SetOp, a: boolean, b: boolean): boolean {
  switch (op) {
    case 'union': return a || b
    case 'intersect': return a && b
    case 'minus': return a && !b
    case 'xor': return a !== b
  }
}

/** Merged extents of `op` over two sorted streams of merged extents. */
export async function* combineExtents(
  as: AsyncIterable<Extent> | Iterable<Extent>, bs: AsyncIterable<Extent> | Iterable<Extent>, op: SetOp,
): AsyncGenerator<Extent> {
  const ia = iter(as)
  const ib = iter(bs)
  let ea = await ia.next()
  let eb = await ib.next()
  let pos = Math.min(ea?.offset ?? Infinity, eb?.offset ?? Infinity)
  let out: Extent | undefined
  while (ea || eb) {
    const aEnd = ea ? ea.offset + ea.length : Infinity
    const bEnd = eb ? eb.offset + eb.length : Infinity
    const inA = !!ea && ea.offset <= pos
    const inB = !!eb && eb.offset <= pos
    let next = Infinity
    for (const x of [ea && (inA ? aEnd : ea.offset), eb && (inB ? bEnd : eb.offset)]) if (x && x > pos && x < next) next = x
    if (next === Infinity) break
    if (apply(op, inA, inB) && next > pos) {
      if (out && out.offset + out.length === pos) out.length += next - pos
      else { if (out) yield out; out = { offset: pos, length: next - pos } }
    }
    pos = next
    if (ea && aEnd <= pos) ea = await ia.next()
    if (eb && bEnd <= pos) eb = await ib.next()
  }
  if (out) yield out
}

function iter(src: AsyncIterable<Extent> | Iterable<Extent>): { next(): Promise<Extent | undefined> } {
  const it = Symbol.asyncIterator in src ? (src as AsyncIterable<Extent>)[Symbol.asyncIterator]() : (src as Iterable<Extent>)[Symbol.iterator]()
  return {
    async next() {
      const r = await it.next()
      return r.done ? undefined : { offset: r.value.offset, length: r.value.length }
    },
  }
}

/** Dirty bytes per cell over [start, end) from a stream of extents (same cell rule as heatmap). */
export async function heatmapFromExtents(
  extents: AsyncIterable<Extent> | Iterable<Extent>, start: number, end: number, cells: number,
  boundaries: Float64Array,
): Promise<Float64Array> {
  const out = new Float64Array(cells)
  let cell = 0
  for await (const e of extents as AsyncIterable<Extent>) {
    let a = Math.max(e.offset, start)
    const b = Math.min(e.offset + e.length, end)
    if (e.offset >= end) break
    while (a < b) {
      while (cell < cells - 1 && boundaries[cell + 1]! <= a) cell++
      const stop = Math.min(b, boundaries[cell + 1]!)
      if (stop <= a) break
      out[cell]! += stop - a
      a = stop
    }
  }
  return out
}
