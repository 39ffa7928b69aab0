/**
 * The browser's SessionHost: a File reads through slices, a FileSystemFileHandle too (and is
 * written through one createWritable session, which Chromium applies to a swap copy of the
 * whole file), the demo comes from the app's own origin. Backing files are only found among
 * the images the user opened together (matched by file name in the session).
 */
import { ConstraintError, DeviceError, commitPlan } from '../engine/index.js'
import { BlobDevice } from '../io/blob.js'
import { FileHandleDevice } from '../io/file-handle.js'
import { patchedBlob } from '../io/patched-blob.js'
import { WritableStreamDevice } from '../io/writable-stream.js'
import type { OpenSource } from '../session/api.js'
import type { OpenedSource, SessionHost } from '../session/host.js'

/** A browser source as opened: the File or Blob it was read from (an edited copy is built on it). */
interface BrowserOpened extends OpenedSource {
  original: Blob
}

const FILE_READ_ONLY = 'opened as a plain file, which the browser gives read-only: download an edited copy instead'

async function openSource(source: OpenSource): Promise<BrowserOpened> {
  switch (source.kind) {
    case 'file':
      return { device: new BlobDevice(source.file), original: source.file, name: source.file.name, fileName: source.file.name, writable: false, readOnlyReason: FILE_READ_ONLY, writeMode: 'copy' }
    case 'handle': {
      const device = await FileHandleDevice.open(source.handle)
      return { device, original: device.file!, name: source.handle.name, fileName: source.handle.name, writable: true, writeMode: 'copy' }
    }
    case 'url': {
      const res = await fetch(source.url)
      if (!res.ok) throw new Error(`could not load ${source.name}: HTTP ${res.status}`)
      const blob = await res.blob()
      return { device: new BlobDevice(blob), original: blob, name: source.name, fileName: source.name, writable: false, readOnlyReason: 'the demo image is served with the app: download an edited copy', writeMode: 'copy' }
    }
    case 'host':
      throw new ConstraintError('host images are opened through qbm serve, not in the browser')
  }
}

export function browserHost(): SessionHost {
  return {
    open: (source) => openSource(source),
    async commit(source, opened, plan, onProgress) {
      if (source.kind !== 'handle') throw new ConstraintError(`this image was ${FILE_READ_ONLY}`)
      const dev = opened.device
      if (dev instanceof FileHandleDevice && !(await dev.unchanged())) {
        throw new DeviceError(`'${source.handle.name}' changed on disk since it was opened; nothing was written. Reopen it and stage the changes again.`)
      }
      // createWritable copies the whole file into <name>.crswap before the first write.
      onProgress(0, 0, 'copying')
      const out = await WritableStreamDevice.open(source.handle)
      try {
        await commitPlan(out, plan, { onProgress })
        await out.close()
      } catch (e) {
        // Nothing reached the file: the swap copy is thrown away.
        await out.abort().catch(() => undefined)
        throw e
      }
    },
    async editedCopy(opened, plan) {
      return patchedBlob((opened as BrowserOpened).original, plan)
    },
  }
}
