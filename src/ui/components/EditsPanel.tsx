/**
 * Changes: stage edits on the selected bitmap (or the image), list them with what each will do,
 * then review the engine's plan and save it all at once: "Write to file" through the handle,
 * or "Download edited copy".
 */
import { useId, useState, type ReactNode } from 'react'
import { defaultGranularity } from '../../engine/shared.js'
import type { BitmapSummary, ClearInUseMode, RepairMode } from '../../session/api.js'
import { humanBytes } from '../format.js'
import { CLEAR_IN_USE_CONSEQUENCE, CLEAR_IN_USE_NEXT_BACKUP, REPAIR_CONSEQUENCE, describeChange } from '../store/edits.js'
import { useActions, useAppShallow } from '../store/hooks.js'
import { ReviewDialog } from './ReviewDialog.js'

type Form = null | 'add' | 'rename' | 'copy' | 'merge' | 'clear-in-use' | 'remove' | 'repair'

const GRANULARITIES = [512, 4096, 65536, 1 << 20, 1 << 24]

export function EditsPanel(): ReactNode {
  const { image, pending, selected, review } = useAppShallow((s) => ({
    image: s.image, pending: s.pending, selected: s.selected, review: s.review,
  }))
  const actions = useActions()
  const [form, setForm] = useState<Form>(null)
  if (!image) return null
  const b = image.summary.bitmaps.find((x) => x.index === selected)
  const inUse = b?.status === 'in-use'
  const staleNote = inUse ? 'Clear in_use first: QEMU will not touch an in-use bitmap otherwise.' : undefined
  const toggle = (f: Form) => setForm(form === f ? null : f)

  return (
    <section className="panel edits-panel" aria-labelledby="edits-h">
      <h2 id="edits-h" className="panel-title">Changes</h2>
      <fieldset className="edit-actions">
        <legend className="small muted">{b ? <>Bitmap <span className="mono">{b.name}</span></> : 'No bitmap selected'}</legend>
        {b && (
          <>
            <button type="button" className="btn btn-small" disabled={inUse} title={staleNote}
              onClick={() => actions.addPending({ op: b.enabled ? 'disable' : 'enable', name: b.name })}>
              {b.enabled ? 'Disable' : 'Enable'}
            </button>
            <button type="button" className="btn btn-small" disabled={inUse} title={staleNote} onClick={() => actions.addPending({ op: 'clear', name: b.name })}>Clear</button>
            <button type="button" className="btn btn-small" disabled={!inUse} aria-expanded={form === 'clear-in-use'}
              title={inUse ? undefined : 'Only for a bitmap marked in use'} onClick={() => toggle('clear-in-use')}>Clear in_use…</button>
            <button type="button" className="btn btn-small" aria-expanded={form === 'rename'} onClick={() => toggle('rename')}>Rename…</button>
            <button type="button" className="btn btn-small" disabled={inUse} title={staleNote} aria-expanded={form === 'copy'} onClick={() => toggle('copy')}>Copy…</button>
            <button type="button" className="btn btn-small" disabled={inUse} title={staleNote} aria-expanded={form === 'merge'} onClick={() => toggle('merge')}>Merge into…</button>
            <button type="button" className="btn btn-small btn-danger" aria-expanded={form === 'remove'} onClick={() => toggle('remove')}>Remove…</button>
          </>
        )}
        <span className="sep" />
        <button type="button" className="btn btn-small" aria-expanded={form === 'add'} onClick={() => toggle('add')}>Add bitmap…</button>
        <button type="button" className="btn btn-small" aria-expanded={form === 'repair'} onClick={() => toggle('repair')}>Repair…</button>
      </fieldset>

      {inUse && b && (
        <div className="callout callout-warn small in-use-help" data-testid="in-use-help">
          <strong><span className="mono">{b.name}</span> is in use:</strong> QEMU refuses it, and its stored bits are stale (from its last
          {' '}clean save). What clearing in_use does to the <em>next incremental backup</em> from it:
          <ul>
            {(['keep', 'dirty', 'empty'] as const).map((m) => (
              <li key={m}><strong>{m === 'dirty' ? 'Mark all dirty' : m === 'empty' ? 'Empty' : 'Keep'}</strong>: {CLEAR_IN_USE_NEXT_BACKUP[m]}</li>
            ))}
          </ul>
          To see what &quot;Keep&quot; would miss, compare it with a consistent bitmap under Compare bitmaps (e.g. B ∖ {b.name}).
        </div>
      )}

      {form && (
        <div className="edit-form">
          {form === 'add' && <AddForm clusterSize={image.summary.clusterSize} onDone={() => setForm(null)} />}
          {form === 'rename' && b && <RenameForm b={b} onDone={() => setForm(null)} />}
          {form === 'copy' && b && <CopyForm b={b} onDone={() => setForm(null)} />}
          {form === 'merge' && b && <MergeForm b={b} all={image.summary.bitmaps} onDone={() => setForm(null)} />}
          {form === 'clear-in-use' && b && <ClearInUseForm b={b} onDone={() => setForm(null)} />}
          {form === 'remove' && b && <RemoveForm b={b} onDone={() => setForm(null)} />}
          {form === 'repair' && <RepairForm onDone={() => setForm(null)} />}
        </div>
      )}

      <h3 className="small">Pending changes ({pending.length})</h3>
      {pending.length === 0 ? (
        <p className="muted small">Nothing staged. Changes are reviewed and written together, in one save.</p>
      ) : (
        <ol className="pending" aria-label="Pending changes">
          {pending.map((p) => (
            <li key={p.id}>
              <span>{describeChange(p, image.summary.clusterSize)}</span>
              <button type="button" className="btn-icon" aria-label={`Unstage: ${describeChange(p, image.summary.clusterSize)}`} onClick={() => actions.removePending(p.id)}>×</button>
            </li>
          ))}
        </ol>
      )}
      <div className="edit-save">
        <button type="button" className="btn btn-primary btn-small" disabled={pending.length === 0} onClick={() => void actions.reviewChanges()}>
          Review and save…
        </button>
        {pending.length > 0 && <button type="button" className="btn btn-small" onClick={actions.clearPending}>Unstage all</button>}
      </div>
      <p className="muted small">
        {image.writable && image.writeMode === 'in-place'
          ? 'Saving writes the changed clusters in place on the host, as qbm bitmap does.'
          : image.writable
            ? 'Saving writes to the file itself, after you allow it. Chromium copies the whole file while saving.'
            : image.writeMode === 'in-place'
              ? `Read-only: ${image.readOnlyReason ?? 'this image cannot be edited here'}.`
              : 'Opened read-only: changes can be saved as a downloaded edited copy.'}
      </p>
      {review && <ReviewDialog />}
    </section>
  )
}

function AddForm({ clusterSize, onDone }: { clusterSize: number; onDone: () => void }): ReactNode {
  const actions = useActions()
  const id = useId()
  const [name, setName] = useState('')
  const [granularity, setGranularity] = useState<string>('default')
  const [enabled, setEnabled] = useState(true)
  const def = defaultGranularity(clusterSize)
  return (
    <form onSubmit={(e) => {
      e.preventDefault()
      if (!name) return
      actions.addPending({ op: 'add', name, disabled: !enabled, ...(granularity !== 'default' ? { granularity: Number(granularity) } : {}) })
      onDone()
    }}>
      <label htmlFor={`${id}-name`}>New bitmap name</label>
      <input id={`${id}-name`} className="text-input mono" value={name} onChange={(e) => setName(e.target.value)} required maxLength={1023} autoFocus />
      <label htmlFor={`${id}-g`}>Granularity</label>
      <select id={`${id}-g`} value={granularity} onChange={(e) => setGranularity(e.target.value)}>
        <option value="default">qemu-img default ({humanBytes(def)})</option>
        {GRANULARITIES.map((g) => <option key={g} value={g}>{humanBytes(g)}</option>)}
      </select>
      <label className="check"><input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled (QEMU records writes into it)</label>
      <div className="form-buttons">
        <button type="submit" className="btn btn-small btn-primary">Stage add</button>
        <button type="button" className="btn btn-small" onClick={onDone}>Cancel</button>
      </div>
    </form>
  )
}

function RenameForm({ b, onDone }: { b: BitmapSummary; onDone: () => void }): ReactNode {
  const actions = useActions()
  const id = useId()
  const [name, setName] = useState(b.name)
  return (
    <form onSubmit={(e) => {
      e.preventDefault()
      if (!name || name === b.name) return
      actions.addPending({ op: 'rename', name: b.name, newName: name })
      onDone()
    }}>
      <label htmlFor={id}>New name for <span className="mono">{b.name}</span></label>
      <input id={id} className="text-input mono" value={name} onChange={(e) => setName(e.target.value)} required maxLength={1023} autoFocus />
      <div className="form-buttons">
        <button type="submit" className="btn btn-small btn-primary">Stage rename</button>
        <button type="button" className="btn btn-small" onClick={onDone}>Cancel</button>
      </div>
    </form>
  )
}

function CopyForm({ b, onDone }: { b: BitmapSummary; onDone: () => void }): ReactNode {
  const actions = useActions()
  const id = useId()
  const [name, setName] = useState(`${b.name}-copy`)
  return (
    <form onSubmit={(e) => {
      e.preventDefault()
      if (!name || name === b.name) return
      actions.addPending({ op: 'copy', name: b.name, newName: name })
      onDone()
    }}>
      <label htmlFor={id}>Copy <span className="mono">{b.name}</span> to a new bitmap named</label>
      <input id={id} className="text-input mono" value={name} onChange={(e) => setName(e.target.value)} required maxLength={1023} autoFocus />
      <p className="small muted">Same granularity, flags and bits: a checkpoint to compare against later, or to keep before a clear.</p>
      <div className="form-buttons">
        <button type="submit" className="btn btn-small btn-primary">Stage copy</button>
        <button type="button" className="btn btn-small" onClick={onDone}>Cancel</button>
      </div>
    </form>
  )
}

function MergeForm({ b, all, onDone }: { b: BitmapSummary; all: BitmapSummary[]; onDone: () => void }): ReactNode {
  const actions = useActions()
  const id = useId()
  const targets = all.filter((x) => x.index !== b.index && x.status === 'ok')
  const [target, setTarget] = useState(targets[0]?.name ?? '')
  if (targets.length === 0) return <p className="small muted">No other consistent bitmap to merge into. <button type="button" className="btn btn-small" onClick={onDone}>Close</button></p>
  return (
    <form onSubmit={(e) => {
      e.preventDefault()
      actions.addPending({ op: 'merge', name: target, source: b.name })
      onDone()
    }}>
      <label htmlFor={id}>Merge <span className="mono">{b.name}</span> into</label>
      <select id={id} value={target} onChange={(e) => setTarget(e.target.value)}>
        {targets.map((t) => <option key={t.index} value={t.name}>{t.name}</option>)}
      </select>
      <p className="small muted">Every granule dirty in <span className="mono">{b.name}</span> becomes dirty in the target; <span className="mono">{b.name}</span> itself is unchanged.</p>
      <div className="form-buttons">
        <button type="submit" className="btn btn-small btn-primary">Stage merge</button>
        <button type="button" className="btn btn-small" onClick={onDone}>Cancel</button>
      </div>
    </form>
  )
}

function ClearInUseForm({ b, onDone }: { b: BitmapSummary; onDone: () => void }): ReactNode {
  const actions = useActions()
  const [mode, setMode] = useState<ClearInUseMode>('dirty')
  return (
    <form onSubmit={(e) => {
      e.preventDefault()
      actions.addPending({ op: 'clear-in-use', name: b.name, mode })
      onDone()
    }}>
      <fieldset className="radio-list">
        <legend>Clear in_use on <span className="mono">{b.name}</span>, and its data:</legend>
        {(['dirty', 'empty', 'keep'] as const).map((m) => (
          <label key={m} className="radio-row">
            <input type="radio" name="clear-in-use-mode" value={m} checked={mode === m} onChange={() => setMode(m)} />
            <span><strong>{m === 'dirty' ? 'Mark all dirty' : m === 'empty' ? 'Empty' : 'Keep'}</strong> — {CLEAR_IN_USE_CONSEQUENCE[m]}</span>
          </label>
        ))}
      </fieldset>
      <p className="small muted">Only if no VM has this image open: a running QEMU owns in-use bitmaps and would overwrite the change.</p>
      <div className="form-buttons">
        <button type="submit" className="btn btn-small btn-primary">Stage clear in_use</button>
        <button type="button" className="btn btn-small" onClick={onDone}>Cancel</button>
      </div>
    </form>
  )
}

function RemoveForm({ b, onDone }: { b: BitmapSummary; onDone: () => void }): ReactNode {
  const actions = useActions()
  return (
    <div role="group" aria-label={`Confirm removing ${b.name}`}>
      <p className="small">Remove <span className="mono">{b.name}</span>? Its clusters are freed. Incremental backups based on it must restart with a full backup.</p>
      <div className="form-buttons">
        <button type="button" className="btn btn-small btn-danger" onClick={() => { actions.addPending({ op: 'remove', name: b.name }); onDone() }}>Stage removal</button>
        <button type="button" className="btn btn-small" onClick={onDone}>Cancel</button>
      </div>
    </div>
  )
}

function RepairForm({ onDone }: { onDone: () => void }): ReactNode {
  const actions = useActions()
  const [mode, setMode] = useState<RepairMode>('drop-all-bitmaps')
  return (
    <form onSubmit={(e) => {
      e.preventDefault()
      actions.addPending({ op: 'repair', mode })
      onDone()
    }}>
      <fieldset className="radio-list">
        <legend>Repair the bitmap metadata (saved on its own):</legend>
        {(['drop-all-bitmaps', 'retrust', 'fix-autoclear'] as const).map((m) => (
          <label key={m} className="radio-row">
            <input type="radio" name="repair-mode" value={m} checked={mode === m} onChange={() => setMode(m)} />
            <span><strong className="mono">{m}</strong> — {REPAIR_CONSEQUENCE[m]}</span>
          </label>
        ))}
      </fieldset>
      <div className="form-buttons">
        <button type="submit" className="btn btn-small btn-primary">Stage repair</button>
        <button type="button" className="btn btn-small" onClick={onDone}>Cancel</button>
      </div>
    </form>
  )
}
