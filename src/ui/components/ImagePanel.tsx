/** The image's header facts, features by name and warnings in plain words. */
import type { ReactNode } from 'react'
import { exact, hex, humanBytes } from '../format.js'
import { useApp } from '../store/hooks.js'

function Row({ label, children }: { label: string; children: ReactNode }): ReactNode {
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  )
}

function Size({ n }: { n: number }): ReactNode {
  return (
    <>
      {humanBytes(n)} <span className="muted mono">({exact(n)} bytes)</span>
    </>
  )
}

function names(list: string[]): ReactNode {
  return list.length > 0 ? <span className="mono">{list.join(', ')}</span> : <span className="muted">none</span>
}

export function ImagePanel(): ReactNode {
  const image = useApp((s) => s.image)
  if (!image) return null
  const s = image.summary
  const ext = s.bitmapsExtension
  return (
    <section className="panel" aria-labelledby="image-h">
      <h2 id="image-h" className="panel-title">Image</h2>
      <dl className="facts">
        <Row label="File"><span className="mono break">{image.name}</span></Row>
        <Row label="Access">
          {image.writable
            ? image.writeMode === 'in-place'
              ? <span className="badge badge-ok" title="On the host: edits are written in place.">writable in place</span>
              : <span className="badge badge-ok" title="Opened through a file handle: edits can be written back to the file after you allow it.">writable handle</span>
            : <span className="badge badge-muted" title={image.readOnlyReason ?? 'Opened as a plain File: qbm can read it; edits can only be downloaded as a copy.'}>read-only</span>}
          {image.heldBy && <span className="small warn-mark"> open in {image.heldBy.text}</span>}
        </Row>
        <Row label="Virtual size"><Size n={s.virtualSize} /></Row>
        <Row label="File size"><Size n={s.fileSize} /></Row>
        <Row label="Cluster size"><Size n={s.clusterSize} /></Row>
        <Row label="Version">qcow2 v{s.version}{s.version === 2 ? ' (compat 0.10)' : ' (compat 1.1)'}</Row>
        <Row label="Refcount bits">{s.refcountBits}</Row>
        <Row label="Compression">{s.compressionType}</Row>
        <Row label="Incompatible">{names(s.features.incompatible)}</Row>
        <Row label="Compatible">{names(s.features.compatible)}</Row>
        <Row label="Autoclear">{names(s.features.autoclear)}</Row>
        {s.backingFile !== undefined && (
          <Row label="Backing file">
            <span className="mono break">{s.backingFile}</span>
            {s.backingFormat && <span className="muted"> ({s.backingFormat})</span>}
          </Row>
        )}
        {s.dataFile !== undefined && <Row label="Data file"><span className="mono break">{s.dataFile}</span></Row>}
        <Row label="Bitmaps">
          {ext
            ? <>{ext.nbBitmaps} in directory at <span className="mono">{hex(ext.directoryOffset)}</span> ({exact(ext.directorySize)} bytes)</>
            : <span className="muted">no bitmaps extension</span>}
        </Row>
      </dl>
      {(s.qemuRefuses.length > 0 || s.warnings.length > 0 || s.bitmapsError) && (
        <div className="warnings">
          {s.qemuRefuses.length > 0 && (
            <div className="callout callout-error">
              <strong>QEMU refuses to open this image:</strong>
              <ul>{s.qemuRefuses.map((w) => <li key={w}>{w}</li>)}</ul>
            </div>
          )}
          {s.warnings.length > 0 && (
            <div className="callout callout-warn">
              <strong>Warnings</strong>
              <ul>{s.warnings.map((w) => <li key={w}>{w}</li>)}</ul>
            </div>
          )}
          {s.bitmapsError && !s.qemuRefuses.includes(s.bitmapsError.message) && (
            <div className="callout callout-error">
              <strong>Bitmap metadata error</strong>
              <p className="mono small">{s.bitmapsError.message}</p>
            </div>
          )}
        </div>
      )}
    </section>
  )
}
