/**
 * Drop a file anywhere on the page. Asks the drop for a FileSystemFileHandle first (Chromium:
 * a writable session becomes possible), else takes the File (read-only).
 */
import { useEffect, useState, type ReactNode } from 'react'
import { dropped } from '../fs-access.js'
import { useActions } from '../store/hooks.js'

function hasFiles(e: DragEvent): boolean {
  return [...(e.dataTransfer?.types ?? [])].includes('Files')
}

export function DropTarget(): ReactNode {
  const actions = useActions()
  const [over, setOver] = useState(false)

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
      void dropped(e.dataTransfer).then((d) => {
        if (d?.handle) return actions.open({ kind: 'handle', handle: d.handle }, 'drop')
        if (d?.file) return actions.open({ kind: 'file', file: d.file }, 'drop')
        actions.showError('Dropping', { code: 'Error', message: 'The drop carried no file.' })
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
  }, [actions])

  if (!over) return null
  return (
    <div className="drop-overlay" aria-hidden="true">
      <div className="drop-overlay-box">Drop a qcow2 image to open it</div>
    </div>
  )
}
