/** "Open image…" (picker or a visible file input), "Open demo image" and recent files. */
import { useId, useRef, useState, type ReactNode } from 'react'
import { ensurePermission, hasFilePicker } from '../fs-access.js'
import { useActions, useApp } from '../store/hooks.js'

const PICKER_TYPES = [{ description: 'Disk images', accept: { 'application/octet-stream': ['.qcow2', '.qcow', '.img'] } }]

export function demoUrl(): string {
  return new URL('demo.qcow2', document.baseURI).href
}

export function OpenControls({ big = false }: { big?: boolean }): ReactNode {
  const actions = useActions()
  const opening = useApp((s) => s.opening)
  const inputId = useId()
  const inputRef = useRef<HTMLInputElement>(null)
  const picker = hasFilePicker()

  async function pick(): Promise<void> {
    try {
      const handles = await window.showOpenFilePicker!({ types: PICKER_TYPES, excludeAcceptAllOption: false, id: 'qbm-open', multiple: true })
      if (handles.length > 0) await actions.openMany(handles.map((handle) => ({ kind: 'handle' as const, handle })), 'picker')
    } catch (e) {
      if ((e as DOMException).name !== 'AbortError') actions.showError('Choosing a file', e)
    }
  }

  const cls = big ? 'btn btn-primary btn-big' : 'btn btn-primary'
  return (
    <div className="open-controls">
      {picker ? (
        <button type="button" className={cls} onClick={() => void pick()} disabled={opening !== null}>
          Open image…
        </button>
      ) : (
        <span className="file-input">
          <label htmlFor={inputId}>Open image…</label>
          <input
            id={inputId}
            ref={inputRef}
            type="file"
            multiple
            accept=".qcow2,.qcow,.img,application/octet-stream"
            onChange={(e) => {
              const files = [...(e.currentTarget.files ?? [])]
              if (files.length > 0) void actions.openMany(files.map((file) => ({ kind: 'file' as const, file })), 'input')
              e.currentTarget.value = ''
            }}
          />
        </span>
      )}
      <button type="button" className={big ? 'btn btn-big' : 'btn'} onClick={() => void actions.openDemo(demoUrl())} disabled={opening !== null}>
        Open demo image
      </button>
      <RecentMenu />
    </div>
  )
}

function RecentMenu(): ReactNode {
  const recent = useApp((s) => s.recent)
  const actions = useActions()
  const [open, setOpen] = useState(false)
  const id = useId()
  if (recent.length === 0) return null
  return (
    <div className="menu">
      <button type="button" className="btn" aria-expanded={open} aria-controls={id} onClick={() => setOpen(!open)}>
        Recent ▾
      </button>
      {open && (
        <ul id={id} className="menu-list" aria-label="Recent files">
          {recent.map((r) => (
            <li key={r.id}>
              <button
                type="button"
                className="menu-item"
                onClick={() => {
                  setOpen(false)
                  // The permission request must run inside this click.
                  void actions.openRecent(r, (h) => ensurePermission(h, 'read'))
                }}
              >
                <span className="mono">{r.name}</span>
                <span className="muted"> · {new Date(r.openedAt).toLocaleString()}</span>
              </button>
              <button type="button" className="btn-icon" aria-label={`Forget ${r.name}`} onClick={() => void actions.forgetRecent(r.id)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  )
}
