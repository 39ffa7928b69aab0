/**
 * Drop a file anywhere on the page. Asks the drop for a FileSystemFileHandle first (Chromium:
 * a writable session becomes possible), else takes the File (read-only). Files the installed
 * app is launched with from the operating system arrive here too (launch.ts).
 */
import { useEffect, useState, type ReactNode } from 'react'
import type { OpenSource } from '../../session/api.js'
import { droppedAll, isXmlName } from '../fs-access.js'
import { useActions, useStoreApi } from '../store/hooks.js'
import { readCheckpointFiles } from './CheckpointPanel.js'
import { useLaunchQueue } from './launch.js'

function hasFiles(e: DragEvent): boolean {
  return [...(e.dataTransfer?.types ?? [])].includes('Files')
}

export function DropTarget(): ReactNode {
  const actions = useActions()
  const storeApi = useStoreApi()
  const [over, setOver] = useState(false)
  useLaunchQueue()

  useEffect(() => {
    let depth = 0
    const enter = (e: DragEvent): void => {
      if (!hasFiles(e)) return
      e.preventDefault()
      depth++
      setOver(true)
    }
    const overFn = (e: DragEvent): void => {
      if (!hasFiles(e)) return
      e.preventDefault()
      if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy'
    }
    const leave = (): void => {
      depth = Math.max(0, depth - 1)
      if (depth === 0) setOver(false)
    }
    const drop = (e: DragEvent): void => {
      depth = 0
      setOver(false)
      if (!e.dataTransfer || !hasFiles(e)) return
      e.preventDefault()
      performance.mark('qbm:drop')
      void droppedAll(e.dataTransfer).then(async (all) => {
        const name = (d: { handle?: FileSystemFileHandle; file?: File }): string => d.handle?.name ?? d.file?.name ?? ''
        const xml = all.filter((d) => isXmlName(name(d)))
        const images = all.filter((d) => !isXmlName(name(d)))
        if (all.length === 0) {
          actions.showError('Dropping', { code: 'Error', message: 'The drop carried no file.' })
          return
        }
        const sources: OpenSource[] = images.map((d) => (d.handle ? { kind: 'handle', handle: d.handle } : { kind: 'file', file: d.file! }))
        if (sources.length > 0) await actions.openMany(sources, 'drop')
        if (xml.length > 0) {
          if (!storeApi.getState().image) {
            actions.showError('Reading checkpoints', { code: 'Error', message: 'Open the disk image first (or drop it together with the checkpoint XML files).' })
            return
          }
          const files = await Promise.all(xml.map(async (d) => d.file ?? (await d.handle!.getFile())))
          await actions.loadCheckpoints(await readCheckpointFiles(files))
        }
      })
    }
    window.addEventListener('dragenter', enter)
    window.addEventListener('dragover', overFn)
    window.addEventListener('dragleave', leave)
    window.addEventListener('drop', drop)
    return () => {
      window.removeEventListener('dragenter', enter)
      window.removeEventListener('dragover', overFn)
      window.removeEventListener('dragleave', leave)
      window.removeEventListener('drop', drop)
    }
  }, [actions, storeApi])

  if (!over) return null
  return (
    <div className="drop-overlay" aria-hidden="true">
      <div className="drop-overlay-box">Drop qcow2 images (or checkpoint XML) to open them</div>
    </div>
  )
}
