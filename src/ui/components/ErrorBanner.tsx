/** The last error, as a readable message naming structure, field and offset when known. */
import type { ReactNode } from 'react'
import { hex } from '../format.js'
import { useActions, useApp } from '../store/hooks.js'

export function ErrorBanner(): ReactNode {
  const error = useApp((s) => s.error)
  const actions = useActions()
  if (!error) return null
  const { info } = error
  return (
    <div className="banner banner-error" role="alert">
      <div>
        <strong>{error.context} failed.</strong> {info.message}
        {(info.structure || info.field || info.offset !== undefined) && (
          <dl className="error-where">
            {info.structure && <><dt>Structure</dt><dd>{info.structure}</dd></>}
            {info.field && <><dt>Field</dt><dd className="mono">{info.field}</dd></>}
            {info.offset !== undefined && <><dt>Offset</dt><dd className="mono">{hex(info.offset)} ({info.offset.toLocaleString('en-US')})</dd></>}
            {info.value && <><dt>Value</dt><dd className="mono">{info.value}</dd></>}
          </dl>
        )}
        <span className="muted"> The file was not changed.</span>
      </div>
      <button type="button" className="btn-icon" aria-label="Dismiss error" onClick={actions.dismissError}>
        ×
      </button>
    </div>
  )
}
