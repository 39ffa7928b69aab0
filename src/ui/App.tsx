/** The page: top bar, job progress, errors, and the image views once an image is open. */
import { useEffect, useState, type ReactNode } from 'react'
import { AlgebraPanel } from './components/AlgebraPanel.js'
import { BackupEstimate } from './components/BackupEstimate.js'
import { BitmapTable } from './components/BitmapTable.js'
import { ChainPanel } from './components/ChainPanel.js'
import { CheckpointPanel } from './components/CheckpointPanel.js'
import { DropTarget } from './components/DropTarget.js'
import { EditsPanel } from './components/EditsPanel.js'
import { ErrorBanner } from './components/ErrorBanner.js'
import { ExtentList } from './components/ExtentList.js'
import { HostOverview } from './components/HostOverview.js'
import { ImagePanel } from './components/ImagePanel.js'
import { JobBar } from './components/JobBar.js'
import { OpenControls } from './components/OpenControls.js'
import { hasFilePicker } from './fs-access.js'
import { HeatmapPanel } from './heatmap/HeatmapPanel.js'
import { useActions, useApp, useAppShallow } from './store/hooks.js'
import { useUpdate } from './sw-register.js'

export function App(): ReactNode {
  const { image, opening, host } = useAppShallow((s) => ({ image: s.image, opening: s.opening, host: s.host }))
  const actions = useActions()
  return (
    <>
      <header className="topbar">
        <h1 className="brand">
          qbm <span className="brand-sub">qcow2 dirty bitmaps</span>
        </h1>
        {host && image && (
          <button type="button" className="btn btn-small" onClick={() => void actions.showOverview()}>← All images on {host.hostname}</button>
        )}
        {image && (
          <span className="current-file" data-testid="current-file">
            <span className="mono">{image.name}</span>
            {image.writable
              ? <span className="badge badge-ok" title={image.writeMode === 'in-place' ? 'Edits are written in place on the host.' : 'Edits can be written back to this file.'}>writable</span>
              : <span className="badge badge-muted" title={image.readOnlyReason ?? 'Opened as a plain File: edits can only be downloaded as a copy.'}>read-only</span>}
            {image.heldBy && <span className="badge badge-in-use" data-testid="held-by" title="The live bitmaps are in QEMU's memory; the file holds the last saved ones.">open in {image.heldBy.text}</span>}
          </span>
        )}
        {opening && <span className="muted small">Opening {opening}…</span>}
        <span className="spacer" />
        {image && !host && <OpenControls />}
      </header>
      <UpdateBanner />
      <JobBar />
      <ErrorBanner />
      <NoticeBanner />
      {!host && <DropTarget />}
      {image?.heldBy && (
        <div className="banner banner-warn" role="status" data-testid="held-banner">
          <span>This image is open in {image.heldBy.text}{image.heldBy.write ? '' : ' (read-only)'}: the live bitmaps are in QEMU&apos;s memory and the file holds the last saved ones. Edits are refused until it closes the image.</span>
        </div>
      )}
      <main id="main">{image ? <Workspace /> : host ? <HostOverview /> : <Welcome />}</main>
    </>
  )
}

/**
 * The panels mount over a few frames, most useful first: mounting them all at once is one
 * long task on the page (render, style, layout), just as the worker starts reading bitmaps.
 */
function useStage(): number {
  const [stage, setStage] = useState(0)
  useEffect(() => {
    if (stage >= 3) return
    const id = requestAnimationFrame(() => setTimeout(() => setStage((s) => s + 1), 0))
    return () => cancelAnimationFrame(id)
  }, [stage])
  return stage
}

function Workspace(): ReactNode {
  const stage = useStage()
  return (
    <div className="workspace">
      <aside className="side">
        {stage >= 1 && <ChainPanel />}
        {stage >= 1 && <ImagePanel />}
        {stage >= 2 && <BackupEstimate />}
        {stage >= 3 && <EditsPanel />}
        {stage >= 3 && <CheckpointPanel />}
      </aside>
      <div className="center">
        <BitmapTable />
        <HeatmapPanel />
        {stage >= 2 && <ExtentList />}
        {stage >= 3 && <AlgebraPanel />}
      </div>
    </div>
  )
}

function Welcome(): ReactNode {
  return (
    <section className="welcome" aria-labelledby="welcome-h">
      <h2 id="welcome-h">Open a qcow2 image</h2>
      <p>
        See the persistent dirty bitmaps in a qcow2 image: which regions each one marks dirty, how much, and whether QEMU
        will trust it. Drop an image anywhere on this page, or:
      </p>
      <OpenControls big />
      <ul className="welcome-notes small muted">
        <li>The file never leaves this computer: qbm runs in your browser and reads only the metadata and bitmap data it needs.</li>
        <li>It reads the bitmaps that <code>qemu-img bitmap</code>, libvirt checkpoints and QEMU&apos;s <code>block-dirty-bitmap-add</code> leave in an image, and shows whether QEMU will <strong>trust</strong> them.</li>
        <li>{hasFilePicker()
          ? 'Opened with the button or dropped here, an image comes with a file handle: qbm writes to the file only when you press Write to file and allow it.'
          : 'This browser hands files over read-only: edits are saved as a downloaded copy.'}</li>
      </ul>
    </section>
  )
}

function UpdateBanner(): ReactNode {
  const apply = useUpdate()
  if (!apply) return null
  return (
    <div className="banner banner-info" role="status">
      <span>A new version of qbm is ready.</span>
      <button type="button" className="btn btn-small" onClick={apply}>Reload to update</button>
    </div>
  )
}

function NoticeBanner(): ReactNode {
  const notice = useApp((s) => s.notice)
  const actions = useActions()
  if (!notice) return null
  return (
    <div className="banner banner-ok" role="status">
      <span>{notice}</span>
      <button type="button" className="btn-icon" aria-label="Dismiss" onClick={actions.dismissNotice}>×</button>
    </div>
  )
}
