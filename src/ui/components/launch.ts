/**
 * Open from the operating system: installed as an app, qbm is a handler for `.qcow2` files
 * (public/manifest.webmanifest, `file_handlers`), and Chromium hands the files it was launched
 * with to the page's launch queue (WICG File Handling) as FileSystemFileHandles — the same
 * writable handles a drop gives, so edits can be written back after the user allows it.
 */
import { useEffect } from 'react'
import type { OpenSource } from '../../session/api.js'
import { useActions } from '../store/hooks.js'

/** What Chromium passes a launched app. */
export interface LaunchParamsLike {
  readonly files: readonly FileSystemHandle[]
}

/** window.launchQueue, where the browser has it. */
export interface LaunchQueueLike {
  setConsumer(consumer: (params: LaunchParamsLike) => void): void
}

/** The file handles of a launch as sources to open (directories are skipped). */
export function launchSources(params: LaunchParamsLike): OpenSource[] {
  return params.files.filter((h): h is FileSystemFileHandle => h.kind === 'file').map((handle) => ({ kind: 'handle', handle }))
}

/**
 * Register `open` as the consumer of `queue` (no-op without one). Chromium queues launches
 * made before the page registers, and delivers them on registration.
 */
export function consumeLaunches(queue: LaunchQueueLike | undefined, open: (sources: OpenSource[]) => void): boolean {
  if (!queue || typeof queue.setConsumer !== 'function') return false
  queue.setConsumer((params) => {
    const sources = launchSources(params)
    if (sources.length > 0) open(sources)
  })
  return true
}

/** Open the files the app was launched with. */
export function useLaunchQueue(): void {
  const actions = useActions()
  useEffect(() => {
    const queue = (window as unknown as { launchQueue?: LaunchQueueLike }).launchQueue
    consumeLaunches(queue, (sources) => {
      performance.mark('qbm:drop')
      void actions.openMany(sources, 'launch')
    })
  }, [actions])
}
