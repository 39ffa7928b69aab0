/** Save a Blob the app made (CSV, JSON, PNG) through an <a download>. */
export function download(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = fileName
  a.rel = 'noopener'
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}

/** `disk.qcow2` + `b0` + `extents.csv` → `disk-b0-extents.csv`, safe for any file system. */
export function exportName(image: string, bitmap: string, suffix: string): string {
  const clean = (s: string) => s.replace(/\.qcow2?$/i, '').replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80)
  return `${clean(image)}-${clean(bitmap)}-${suffix}`
}
