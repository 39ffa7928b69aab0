/**
 * Number formatting for the UI: human sizes in binary units with exact bytes, hex offsets,
 * percentages. humanBytes and hex are the engine's (src/engine/analysis/units.ts, through
 * src/engine/shared.ts): the page and the CLI print sizes the same way.
 */
export { hex, humanBytes } from '../engine/shared.js'

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB']

/** Like humanBytes but always with `decimals` decimals (trailing zeros trimmed): neighbouring
 * offsets in a tooltip stay distinct ('128.01 MiB – 128.25 MiB', not '128 MiB – 128 MiB'). */
export function preciseBytes(n: number, decimals = 2): string {
  if (!Number.isFinite(n)) return '—'
  if (Math.abs(n) < 1024) return `${n} B`
  let u = 0
  let v = Math.abs(n)
  while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++ }
  const s = v.toFixed(decimals).replace(/\.?0+$/, '')
  return `${n < 0 ? '-' : ''}${s} ${UNITS[u]}`
}

/** 1234567 → '1,234,567' */
export function exact(n: number): string {
  return n.toLocaleString('en-US')
}

/** Share of a whole as a percentage with sensible precision: '0%', '<0.01%', '12.5%', '100%'. */
export function percent(part: number, whole: number): string {
  if (whole <= 0) return '—'
  const p = (part / whole) * 100
  if (p === 0) return '0%'
  if (p === 100) return '100%'
  if (p < 0.01) return '<0.01%'
  if (p > 99.99) return '>99.99%'
  return `${p < 1 ? p.toFixed(2) : p < 10 ? p.toFixed(2) : p.toFixed(1)}%`
}

/** Seconds as '0.4 s', '12 s', '3 min 05 s'. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—'
  if (seconds < 10) return `${seconds.toFixed(1)} s`
  if (seconds < 60) return `${Math.round(seconds)} s`
  const m = Math.floor(seconds / 60)
  const s = Math.round(seconds - m * 60)
  return `${m} min ${String(s).padStart(2, '0')} s`
}
