/**
 * Which cells to ask `heatmap` for, to draw a view `widthPx` pixels wide: pure arithmetic, no
 * I/O, shared by the page (src/engine/shared.ts) and the benchmarks, so that what is measured
 * is what is shown.
 */
import { BLOCK_BITS } from '../qcow2/bitmaps/data/bits.js'

/** A byte range [start, end) of the virtual disk. */
export interface ByteRange {
  start: number
  end: number
}

/** Cells over [start, end) to ask `heatmap` for. */
export interface HeatRequest {
  start: number
  end: number
  cells: number
  /** on the block grid: every cell boundary a multiple of BLOCK_BITS granules (answered from the block index) */
  snapped: boolean
}

/**
 * Cells for a view: one per granule when the view holds at most `widthPx` whole granules,
 * otherwise one per pixel (never more cells than bytes).
 */
export function cellsFor(v: ByteRange, widthPx: number, granularity: number): number {
  const span = v.end - v.start
  const w = Math.max(1, Math.floor(widthPx))
  if (span <= 0) return 1
  const granules = span / granularity
  if (Number.isInteger(granules) && granules <= w) return Math.max(1, granules)
  return Math.max(1, Math.min(w, span))
}

/**
 * The heatmap request for a view. When a pixel covers at least one index block (BLOCK_BITS
 * granules), the cells are whole blocks: start on a block edge, every cell k blocks, the last
 * cell possibly running past the view (and the disk, where the engine counts nothing). Then
 * every cell boundary falls on a block edge, which the engine answers from its index without
 * reading the file: a 512 MiB bitmap drawn at whole-disk zoom would otherwise read one cluster
 * per pixel, on every zoom and pan (bench/README.md: on a 2^32-bit bitmap a wide view with
 * unaligned boundaries needs 4,097 reads, a snapped one none). Zoomed in further, the cells
 * follow the view exactly (one per pixel, or one per granule), and the few clusters they touch
 * stay cached.
 */
export function heatRequest(v: ByteRange, widthPx: number, granularity: number): HeatRequest {
  const w = Math.max(1, Math.floor(widthPx))
  const block = BLOCK_BITS * granularity
  if (v.end - v.start >= w * block) {
    const start = Math.floor(v.start / block) * block
    const k = Math.ceil((v.end - start) / (w * block))
    const cells = Math.ceil((v.end - start) / (k * block))
    return { start, end: start + cells * k * block, cells, snapped: true }
  }
  return { start: v.start, end: v.end, cells: cellsFor(v, w, granularity), snapped: false }
}
