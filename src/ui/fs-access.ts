/** File System Access helpers for the page: permissions and feature tests. */

/** True where the page can get writable handles (Chromium); elsewhere files are read-only. */
export function hasFilePicker(): boolean {
  return typeof window !== 'undefined' && typeof window.showOpenFilePicker === 'function'
}

/**
 * Make sure we may use `handle` in `mode`, asking the user if needed. Must run inside a user
 * gesture (a click), in the page, not the worker. Returns false when refused.
 */
export async function ensurePermission(handle: FileSystemHandle, mode: 'read' | 'readwrite'): Promise<boolean> {
  if (!handle.queryPermission || !handle.requestPermission) return true
  if ((await handle.queryPermission({ mode })) === 'granted') return true
  try {
    return (await handle.requestPermission({ mode })) === 'granted'
  } catch {
    return false
  }
}

/** Every file of a drop, each with its handle when the browser gives one (in drop order). */
export async function droppedAll(dt: DataTransfer): Promise<Array<{ handle?: FileSystemFileHandle; file?: File }>> {
  const items = [...dt.items].filter((i) => i.kind === 'file')
  // As above: ask for every handle and File before the first await.
  const asked = items.map((item) => ({ handleP: item.getAsFileSystemHandle?.(), file: item.getAsFile() ?? undefined }))
  if (asked.length === 0) for (const f of dt.files) asked.push({ handleP: undefined, file: f })
  const out: Array<{ handle?: FileSystemFileHandle; file?: File }> = []
  for (const a of asked) {
    let handle: FileSystemHandle | null | undefined
    try {
      handle = await a.handleP
    } catch {
      handle = undefined
    }
    if (handle && handle.kind === 'file') out.push({ handle: handle as FileSystemFileHandle, ...(a.file ? { file: a.file } : {}) })
    else if (a.file) out.push({ file: a.file })
  }
  return out
}

/** libvirt checkpoint XML (by name), as opposed to a disk image. */
export function isXmlName(name: string): boolean {
  return /\.xml$/i.test(name)
}
