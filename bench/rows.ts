/**
 * The bench table: one Row per figure, the number formats every row uses, and the Markdown
 * printer. A bench module (main.ts's sections, browser.ts, ...) returns Rows; main.ts prints them.
 */

/** One line of the table. */
export interface Row {
  figure: string
  qbm: string
  baseline: string
  ratio: string
  target: string
  /** null: not a target, or not measured here */
  met: boolean | null
  /** raw numbers behind the row */
  data?: Record<string, unknown>
}

/** Milliseconds as "12.3 ms" / "1.23 s". */
export const ms = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x < 10 ? 2 : 1)} ms`)
/** KiB as "12.3 MiB". */
export const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`
/** A ratio with 3 significant digits or so. */
export const r2 = (x: number): string => (x >= 10 ? x.toFixed(1) : x.toFixed(x >= 1 ? 2 : 3))

/** The Markdown table with its two header lines. */
export function formatTable(rows: Row[], mach: Record<string, string>, runs: number): string {
  const head = ['figure', 'qbm', 'baseline', 'ratio', 'target', 'met?']
  const cells = rows.map((r) => [r.figure, r.qbm, r.baseline, r.ratio, r.target, r.met === null ? '' : r.met ? 'yes' : 'NO'])
  const lines = [
    `qbm bench: medians of ${runs} runs (in-process figures: see each row); machine: ${mach.nproc} cores, ${mach.cpu}, ${mach.memory}, ${mach.kernel}, node ${mach.node}, ${mach.qemuImg}, ${mach.nbdinfo}${mach.chromium ? `, Chromium ${mach.chromium}` : ''}; load average ${mach.load}`,
    'whole-process times: wall clock around the spawn; peak RSS: GNU time %M',
    '',
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...cells.map((c) => `| ${c.join(' | ')} |`),
  ]
  return lines.join('\n') + '\n'
}
