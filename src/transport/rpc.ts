/**
 * The engine API over a message channel, with birpc (the RPC layer Vitest itself uses): one
 * side serves a session, the other calls it. Both transports — the Web Worker (structured
 * clone) and the WebSocket of `qbm serve` (MessagePack, binary frames) — are a Channel.
 */
import { type BirpcReturn, createBirpc } from 'birpc'
import type { ClientEvents, EngineApi } from '../session/api.js'

/** The methods a transport carries: exactly EngineApi's, and nothing else is callable. */
export const ENGINE_METHODS = [
  'open', 'openSet', 'activate', 'scan', 'heatmap', 'heatmapPreview', 'extentPage', 'extentIndex', 'extentWindow', 'extentsInRange',
  'exportExtents', 'sha256', 'overlay', 'extentSplits', 'estimate', 'algebra', 'algebraHeat', 'algebraPage',
  'algebraWindow', 'dropAlgebra', 'checkpoints', 'planEdits', 'commitPlan', 'editedCopy', 'dropPlan', 'cancel',
  'close', 'hostInfo', 'hostOverview', 'hostCheck',
] as const satisfies ReadonlyArray<keyof EngineApi>

// Every EngineApi method is listed (a compile error names the one missing).
type Missing = Exclude<keyof EngineApi, (typeof ENGINE_METHODS)[number]>
const _allListed: Missing extends never ? true : Missing = true
void _allListed

/** A message channel: how one side posts and hears raw messages. */
export interface Channel {
  post(data: unknown): void
  on(fn: (data: unknown) => void): void
  off?(fn: (data: unknown) => void): void
  serialize?(msg: unknown): unknown
  deserialize?(data: unknown): unknown
}

/** The page's handle on a remote session. */
export type EngineRemote = BirpcReturn<EngineApi, ClientEvents>
/** The session side's handle on the page. */
export type PageRemote = BirpcReturn<ClientEvents, EngineApi>

/** Only the listed methods of `session`, bound, on an object with no prototype. */
function methodTable(session: EngineApi): EngineApi {
  const t = Object.create(null) as Record<string, unknown>
  for (const m of ENGINE_METHODS) t[m] = (session[m] as (...a: unknown[]) => unknown).bind(session)
  return t as unknown as EngineApi
}

/** Serve `session` on `channel`. Long calls have no timeout: cancel and disconnects end them. */
export function serveEngine(session: EngineApi, channel: Channel, onError?: (e: unknown) => void): PageRemote {
  return createBirpc<ClientEvents, EngineApi>(methodTable(session), {
    ...channel,
    timeout: -1,
    eventNames: ['progress'],
    bind: 'functions',
    onGeneralError: (e) => { onError?.(e); return true },
  })
}

/** Call a session served on `channel`; `events` hears its progress. */
export function connectEngine(channel: Channel, events: ClientEvents): EngineRemote {
  const local = Object.create(null) as ClientEvents
  local.progress = events.progress.bind(events)
  return createBirpc<EngineApi, ClientEvents>(local, {
    ...channel,
    timeout: -1,
    bind: 'functions',
  })
}
