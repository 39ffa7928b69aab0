/**
 * Chromium performance traces read back: the page's main-thread tasks between two performance
 * marks, with their wall and CPU time (a task's CPU time is what the page spent; its wall time
 * also counts moments a loaded machine gave the CPU to another thread).
 */
import { readFileSync } from 'node:fs'

/** One trace event (the fields read here). */
export interface TraceEvent { name: string; ph: string; pid: number; tid: number; ts: number; dur?: number; tdur?: number; cat?: string }

/** Top-level tasks on the page's main thread between two performance marks, from a trace file. */
export function mainThreadTasks(path: string, from: string, to: string): { scanMs: number; maxCpuMs: number; maxWallMs: number; list: Array<{ wallMs: number; cpuMs: number }> } {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as { traceEvents: TraceEvent[] } | TraceEvent[]
  const ev = Array.isArray(raw) ? raw : raw.traceEvents
  const mark = (name: string): TraceEvent => {
    const m = ev.filter((e) => e.name === name && (e.cat ?? '').includes('user_timing')).at(-1)
    if (!m) throw new Error(`performance mark ${name} is not in the trace`)
    return m
  }
  const a = mark(from)
  const b = mark(to)
  const list = ev
    .filter((e) => e.name === 'RunTask' && e.ph === 'X' && e.pid === a.pid && e.tid === a.tid && e.ts + (e.dur ?? 0) > a.ts && e.ts < b.ts)
    .map((e) => ({ wallMs: (e.dur ?? 0) / 1000, cpuMs: (e.tdur ?? e.dur ?? 0) / 1000 }))
  return {
    scanMs: (b.ts - a.ts) / 1000,
    maxCpuMs: Math.max(0, ...list.map((t) => t.cpuMs)),
    maxWallMs: Math.max(0, ...list.map((t) => t.wallMs)),
    list,
  }
}
