/**
 * Bitmap algebra: pick A, B and an operation (∪ ∩ ∖ ⊕); the worker computes the result at byte
 * resolution and keeps it; the page shows it as a heatmap row over the shared view and as a
 * virtualized extent list fetched in pages. Nothing in the file changes; a union can be staged
 * as a new bitmap (add + merge A + merge B).
 */
import { useVirtualizer } from '@tanstack/react-virtual'
import { useEffect, useId, useRef, useState, type ReactNode } from 'react'
import type { BitmapRef, BitmapSummary, Extent, SetOp } from '../../session/api.js'
import { exact, hex, humanBytes, percent } from '../format.js'
import { paint } from '../heatmap/draw.js'
import { ALGEBRA_PAGE, OP_LABEL, type AlgebraState } from '../store/analysis.js'
import { useActions, useAppShallow } from '../store/hooks.js'
import { useTheme } from '../theme.js'
import { MAX_LIST_ROWS } from './ExtentList.js'
import { canvasColors, paintCanvas, useWidth } from '../heatmap/canvas.js'

const ROW_PX = 24
const MAX_LIST_PX = 300
const OPS: SetOp[] = ['union', 'intersect', 'minus', 'xor']

interface Choice {
  ref: BitmapRef
  b: BitmapSummary
  label: string
}

function key(r: BitmapRef): string {
  return `${r.image}:${r.bitmap}`
}

function parseKey(k: string): BitmapRef {
  const [image, bitmap] = k.split(':').map(Number)
  return { image: image!, bitmap: bitmap! }
}

export function AlgebraPanel(): ReactNode {
  const { image, images, active, selected, compare, algebra, view, pending } = useAppShallow((s) => ({
    image: s.image, images: s.images, active: s.activeImageId, selected: s.selected, compare: s.compare, algebra: s.algebra,
    view: s.view, pending: s.pending,
  }))
  const actions = useActions()
  const id = useId()
  const activeId = active ?? 1
  const choices: Choice[] = []
  if (image) {
    for (const b of image.summary.bitmaps) {
      if (b.status === 'invalid') continue
      choices.push({ ref: { image: activeId, bitmap: b.index }, b, label: `${b.name}${b.status === 'in-use' ? ' (stale: in use)' : ''}` })
    }
    for (const img of images) {
      if (img.id === activeId || img.result.summary.diskLength !== image.summary.diskLength) continue
      for (const b of img.result.summary.bitmaps) {
        if (b.status === 'invalid') continue
        choices.push({ ref: { image: img.id, bitmap: b.index }, b, label: `${img.result.name}: ${b.name}${b.status === 'in-use' ? ' (stale: in use)' : ''}` })
      }
    }
  }
  const defA = selected !== null ? key({ image: activeId, bitmap: selected }) : choices[0] ? key(choices[0].ref) : ''
  const defB = compare !== null ? key({ image: activeId, bitmap: compare }) : choices.find((c) => key(c.ref) !== defA) ? key(choices.find((c) => key(c.ref) !== defA)!.ref) : ''
  const [a, setA] = useState<string>('')
  const [b, setB] = useState<string>('')
  const [op, setOp] = useState<SetOp>('minus')
  const aKey = choices.some((c) => key(c.ref) === a) ? a : defA
  const bKey = choices.some((c) => key(c.ref) === b) ? b : defB
  if (!image || !view) return null
  if (choices.length < 2) return null
  return (
    <section className="panel algebra-panel" aria-labelledby="algebra-h">
      <div className="panel-head">
        <h2 id="algebra-h" className="panel-title">Compare bitmaps</h2>
        {algebra && <button type="button" className="btn-icon" aria-label="Close the comparison" onClick={actions.closeAlgebra}>×</button>}
      </div>
      <form className="toolbar algebra-form" onSubmit={(e) => {
        e.preventDefault()
        if (aKey && bKey) void actions.runAlgebra(parseKey(aKey), parseKey(bKey), op)
      }}>
        <label className="inline-field" htmlFor={`${id}-a`}>A</label>
        <select id={`${id}-a`} value={aKey} onChange={(e) => setA(e.target.value)}>
          {choices.map((c) => <option key={key(c.ref)} value={key(c.ref)}>{c.label}</option>)}
        </select>
        <fieldset className="segmented">
          <legend className="visually-hidden">Operation</legend>
          {OPS.map((o) => (
            <label key={o} className={op === o ? 'on' : undefined} title={`${OP_LABEL[o].name}: ${OP_LABEL[o].words}`}>
              <input type="radio" name={`${id}-op`} value={o} checked={op === o} onChange={() => setOp(o)} aria-label={`A ${OP_LABEL[o].sign} B, ${OP_LABEL[o].name}`} />
              <span aria-hidden="true">{OP_LABEL[o].sign}</span>
            </label>
          ))}
        </fieldset>
        <label className="inline-field" htmlFor={`${id}-b`}>B</label>
        <select id={`${id}-b`} value={bKey} onChange={(e) => setB(e.target.value)}>
          {choices.map((c) => <option key={key(c.ref)} value={key(c.ref)}>{c.label}</option>)}
        </select>
        <button type="submit" className="btn btn-small btn-primary" disabled={!aKey || !bKey || algebra?.status === 'computing'}>Compare</button>
        <span className="small muted">A {OP_LABEL[op].sign} B: {OP_LABEL[op].words}</span>
      </form>
      {algebra && <AlgebraResultView al={algebra} choices={choices} activeId={activeId} pendingNames={pending.flatMap((p) => ('name' in p ? [p.name] : []))} />}
    </section>
  )
}

function AlgebraResultView({ al, choices, activeId, pendingNames }: { al: AlgebraState; choices: Choice[]; activeId: number; pendingNames: string[] }): ReactNode {
  const { view, image } = useAppShallow((s) => ({ view: s.view, image: s.image }))
  const title = `${al.aName} ${OP_LABEL[al.op].sign} ${al.bName}`
  if (al.status === 'computing') return <p className="small muted">Computing {title}…</p>
  if (al.status === 'error') return <p className="small text-error">{title}: {al.error?.message}</p>
  if (!al.result || !view || !image) return null
  const disk = image.summary.diskLength
  const stale = [al.a, al.b].map((r) => choices.find((c) => key(c.ref) === key(r))).filter((c) => c?.b.status === 'in-use').map((c) => c!.b.name)
  return (
    <div className="algebra-result">
      <p className="small" data-testid="algebra-totals" data-bytes={al.result.dirtyBytes} data-extents={al.result.extentCount}>
        <strong className="mono">{title}</strong> ({OP_LABEL[al.op].name}): <strong>{humanBytes(al.result.dirtyBytes)}</strong>
        {' '}<span className="mono muted">({exact(al.result.dirtyBytes)} bytes)</span> in {exact(al.result.extentCount)} extent{al.result.extentCount === 1 ? '' : 's'} · {percent(al.result.dirtyBytes, disk)} of the disk
      </p>
      {stale.length > 0 && <p className="small muted">Stale: {stale.map((n) => <span key={n} className="mono">{n} </span>)}is in use, so its side is its stored bits from its last clean save.</p>}
      <AlgebraHeatRow al={al} />
      <AlgebraList al={al} />
      <SaveAsBitmap al={al} choices={choices} activeId={activeId} pendingNames={pendingNames} />
    </div>
  )
}

function AlgebraHeatRow({ al }: { al: AlgebraState }): ReactNode {
  const { view, image } = useAppShallow((s) => ({ view: s.view, image: s.image }))
  const theme = useTheme()
  const ref = useRef<HTMLCanvasElement>(null)
  const width = useWidth(ref)
  const heat = al.heat
  useEffect(() => {
    if (!view || !image) return
    const colors = canvasColors(theme)
    paintCanvas(ref.current, width, 40, (img) => paint(img.data, img.width, img.height, heat, view, image.summary.diskLength, theme, colors.missing, colors.panel))
  }, [heat, view, image, width, theme])
  const dirtyCells = heat ? heat.counts.reduce((n, x) => n + (x > 0 ? 1 : 0), 0) : 0
  return (
    <canvas ref={ref} className="heat-canvas" style={{ height: 40 }} role="img" data-testid="algebra-canvas"
      aria-label={heat && view ? `Heatmap of ${al.aName} ${OP_LABEL[al.op].name} ${al.bName} from ${hex(view.start)} to ${hex(view.end)}: ${dirtyCells} of ${heat.cells} cells hold dirty data.` : 'Heatmap of the comparison: computing.'} />
  )
}

function AlgebraList({ al }: { al: AlgebraState }): ReactNode {
  const actions = useActions()
  const scrollRef = useRef<HTMLDivElement>(null)
  const count = al.window?.count ?? 0
  const virt = useVirtualizer({ count: Math.min(count, MAX_LIST_ROWS), getScrollElement: () => scrollRef.current, estimateSize: () => ROW_PX, overscan: 12 })
  const items = virt.getVirtualItems()
  const firstVisible = items[0]?.index ?? 0
  const lastVisible = items[items.length - 1]?.index ?? -1
  const first = al.window?.first ?? 0
  useEffect(() => {
    if (!al.window || lastVisible < 0) return
    actions.ensureAlgebraExtents(first + firstVisible, first + lastVisible)
  }, [actions, al.window, first, firstVisible, lastVisible])
  const rowAt = (i: number): Extent | undefined => {
    const g = first + i
    return al.pages[Math.floor(g / ALGEBRA_PAGE)]?.[g % ALGEBRA_PAGE]
  }
  return (
    <>
      <div className="toolbar algebra-list-head">
        <span className="small" data-testid="algebra-count">
          {al.window ? <><strong>{exact(count)}</strong> {al.mode === 'view' ? 'in view' : 'extents'}</> : <span className="muted">—</span>}
        </span>
        <fieldset className="segmented">
          <legend className="visually-hidden">Which result extents</legend>
          <label className={al.mode === 'view' ? 'on' : undefined}>
            <input type="radio" name="algebra-mode" checked={al.mode === 'view'} onChange={() => actions.setAlgebraMode('view')} />
            In view
          </label>
          <label className={al.mode === 'all' ? 'on' : undefined}>
            <input type="radio" name="algebra-mode" checked={al.mode === 'all'} onChange={() => actions.setAlgebraMode('all')} />
            All
          </label>
        </fieldset>
      </div>
      <div ref={scrollRef} className="extent-scroll" role="list" aria-label="Extents of the comparison" data-testid="algebra-list"
        style={{ height: Math.min(MAX_LIST_PX, Math.max(2 * ROW_PX, count * ROW_PX + 2)) }}>
        <div style={{ height: virt.getTotalSize(), position: 'relative' }}>
          {items.map((it) => {
            const x = rowAt(it.index)
            const n = first + it.index
            return (
              <div key={it.key} role="listitem" className="extent-row-wrap" style={{ transform: `translateY(${it.start}px)`, height: ROW_PX }}>
                {x ? (
                  <button type="button" className="extent-row algebra-row" data-offset={x.offset} data-length={x.length}
                    onClick={() => actions.zoomToExtent(x)} title="Zoom the heatmap to this extent">
                    <span className="muted">{n + 1}</span>
                    <span className="mono">{hex(x.offset)}</span>
                    <span className="mono">{hex(x.offset + x.length)}</span>
                    <span className="num">{humanBytes(x.length)}</span>
                    <span className="num mono muted">{exact(x.length)}</span>
                  </button>
                ) : <span className="extent-row algebra-row placeholder muted">{n + 1} …</span>}
              </div>
            )
          })}
        </div>
        {al.window && count === 0 && <p className="empty-note">{al.mode === 'view' ? 'Nothing in view.' : 'The result is empty.'}</p>}
      </div>
    </>
  )
}

function SaveAsBitmap({ al, choices, activeId, pendingNames }: { al: AlgebraState; choices: Choice[]; activeId: number; pendingNames: string[] }): ReactNode {
  const actions = useActions()
  const id = useId()
  const [name, setName] = useState('')
  const [done, setDone] = useState<string | null>(null)
  const ops = [al.a, al.b].map((r) => choices.find((c) => key(c.ref) === key(r)))
  const stale = ops.some((c) => c?.b.status !== 'ok')
  const exists = choices.some((c) => c.ref.image === activeId && c.b.name === name) || pendingNames.includes(name)
  let why: string | null = null
  if (stale) {
    why = al.op === 'union'
      ? 'A bitmap in use (stale) or untrusted cannot be merged (QEMU refuses it too): clear in_use first, then save the union.'
      : 'A result computed from a stale or untrusted bitmap is not saved as a bitmap backups would trust: clear in_use first, then compare again.'
  }
  const how = al.op === 'union'
    ? 'Stage add + merge'
    : 'Stage add + set bits'
  return (
    <div className="algebra-save small">
      {why ? <p className="muted" data-testid="algebra-save-note">{why}</p> : (
        <form className="toolbar" onSubmit={(e) => {
          e.preventDefault()
          if (!name || exists) return
          if (actions.stageAlgebraSave(name)) { setDone(name); setName('') }
        }}>
          <label htmlFor={id}>Save as new bitmap</label>
          <input id={id} className="text-input mono" value={name} onChange={(e) => setName(e.target.value)} placeholder="name" maxLength={1023} />
          <button type="submit" className="btn btn-small" disabled={!name || exists} title={al.op === 'union' ? 'add a bitmap, merge A into it, merge B into it (the edits qemu-img bitmap has)' : `add a bitmap and set the granules of A ${OP_LABEL[al.op].sign} B in it (qbm's own edit)`}>{how}</button>
          {exists && <span className="text-error">a bitmap with this name exists</span>}
          {done && <span className="muted">Staged &apos;{done}&apos;: see Changes.</span>}
        </form>
      )}
    </div>
  )
}
