/**
 * A dashed box that takes files dropped on it or chosen with its button (a hidden file input):
 * the page's one way to hand over files besides the whole-page drop. A drop on the box is its
 * own: it does not reach the page's drop handler.
 */
import { useId, useRef, useState, type ReactNode } from 'react'

/** The drop zone: a label, a button and a hidden file input. */
export function FileDropZone({ label, button, accept, multiple = true, onFiles, testId }: {
  /** what to drop, in words */
  label: ReactNode
  /** the button's text */
  button: string
  accept: string
  multiple?: boolean
  onFiles: (files: File[]) => void
  /** data-testid of the input */
  testId?: string
}): ReactNode {
  const inputId = useId()
  const inputRef = useRef<HTMLInputElement>(null)
  const [over, setOver] = useState(false)
  const take = (list: FileList | null | undefined): void => {
    const files = [...(list ?? [])]
    if (files.length > 0) onFiles(files)
  }
  return (
    <div
      className={over ? 'drop-zone drop-zone-over' : 'drop-zone'}
      onDragEnter={(e) => { if ([...e.dataTransfer.types].includes('Files')) { e.preventDefault(); e.stopPropagation(); setOver(true) } }}
      onDragOver={(e) => { if ([...e.dataTransfer.types].includes('Files')) { e.preventDefault(); e.stopPropagation(); e.dataTransfer.dropEffect = 'copy' } }}
      onDragLeave={(e) => { if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setOver(false) }}
      onDrop={(e) => { e.preventDefault(); e.stopPropagation(); setOver(false); take(e.dataTransfer.files) }}
    >
      <span className="small muted">{label}</span>
      <button type="button" className="btn btn-small" onClick={() => inputRef.current?.click()}>{button}</button>
      <label htmlFor={inputId} className="visually-hidden">{button}</label>
      <input ref={inputRef} id={inputId} className="visually-hidden" aria-hidden="true" type="file" multiple={multiple} accept={accept} data-testid={testId} tabIndex={-1}
        onChange={(e) => { take(e.currentTarget.files); e.currentTarget.value = '' }} />
    </div>
  )
}
