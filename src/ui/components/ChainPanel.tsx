/**
 * Several images opened together: the backing chains among them (matched by the backing file
 * name), each layer's bitmaps, and which image the other panels show.
 */
import type { ReactNode } from 'react'
import type { ImageEntry } from '../../session/api.js'
import { humanBytes } from '../format.js'
import { useActions, useAppShallow } from '../store/hooks.js'

/** Chains, top first: each image that nothing else is layered on, followed down its backing files. */
export function chains(images: ImageEntry[]): ImageEntry[][] {
  const below = new Set(images.map((i) => i.backingId).filter((x): x is number => x !== null))
  const out: ImageEntry[][] = []
  const seen = new Set<number>()
  for (const top of images) {
    if (below.has(top.id)) continue
    const chain: ImageEntry[] = []
    let cur: ImageEntry | undefined = top
    while (cur && !chain.includes(cur) && chain.length < 16) {
      chain.push(cur)
      seen.add(cur.id)
      const next: number | null = cur.backingId
      cur = next === null ? undefined : images.find((i) => i.id === next)
    }
    out.push(chain)
  }
  // loops (a backs b backs a) have no top: list what is left on its own
  for (const i of images) if (!seen.has(i.id)) out.push([i])
  return out
}

export function ChainPanel(): ReactNode {
  const { images, active, pendingCount } = useAppShallow((s) => ({ images: s.images, active: s.activeImageId, pendingCount: s.pending.length }))
  const actions = useActions()
  if (images.length < 2) return null
  return (
    <section className="panel" aria-labelledby="chain-h">
      <h2 id="chain-h" className="panel-title">Open images ({images.length})</h2>
      {chains(images).map((chain) => (
        <ol key={chain[0]!.id} className="chain" aria-label={`Backing chain of ${chain[0]!.result.name}`} data-testid="chain">
          {chain.map((img, depth) => {
            const s = img.result.summary
            const missing = s.backingFile !== undefined && img.backingId === null
            return (
              <li key={img.id} className={img.id === active ? 'chain-layer active' : 'chain-layer'} style={{ marginLeft: depth * 14 }} data-image={img.result.name} data-depth={depth}>
                <div className="chain-head">
                  <span className="muted small">{depth === 0 ? 'top' : `depth ${depth}`}</span>
                  <span className="mono">{img.result.name}</span>
                  <span className="muted small">{humanBytes(s.virtualSize)}</span>
                  {img.id === active
                    ? <span className="badge badge-ok">shown</span>
                    : (
                      <button type="button" className="btn btn-small" disabled={pendingCount > 0}
                        title={pendingCount > 0 ? 'Save or unstage the pending changes first: they belong to the image shown' : undefined}
                        onClick={() => void actions.activateImage(img.id)} aria-label={`Show ${img.result.name}`}>Show</button>
                    )}
                </div>
                {missing && <p className="small text-error">backing file <span className="mono">{s.backingFile}</span> was not opened with it</p>}
                <ul className="chain-bitmaps small">
                  {s.bitmaps.length === 0 && <li className="muted">no bitmaps</li>}
                  {s.bitmaps.map((b) => (
                    <li key={b.index}><span className="mono">{b.name}</span> <span className={`badge badge-${b.status}`}>{b.status === 'in-use' ? 'in use (stale)' : b.status}</span></li>
                  ))}
                </ul>
              </li>
            )
          })}
        </ol>
      ))}
      <p className="small muted">Backing files are matched by file name among the images dropped together. The overlay&apos;s
        {' '}&quot;allocation from&quot; row shows which layer holds each region.</p>
    </section>
  )
}
