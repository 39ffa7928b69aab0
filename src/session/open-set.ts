/**
 * The images open in one session: the shown ones (one, or a set the user opened together) and
 * the current one among them, plus backing files the host resolved on its own (hidden). It
 * follows backing chains — by file name among the shown images, else as the host resolves them
 * — and builds the allocation map through a chain on first use.
 */
import {
  type AbortSignalLike, type BitmapReader, type Image, type Plan, AllocationMap, describeImage, openImage,
} from '../engine/index.js'
import type { ImageEntry, OpenResult, OpenSetResult, OpenSource } from './api.js'
import type { OpenedSource, SessionHost } from './host.js'

/** Longest backing chain followed. */
const MAX_CHAIN = 16

/** One open image. */
export interface OpenImage {
  /** id in the open set (negative: hidden) */
  id: number
  source: OpenSource
  opened: OpenedSource
  image: Image
  readers: Map<number, BitmapReader>
  plans: Map<number, Plan>
  /** the allocation map through the backing chain, built on first use */
  alloc?: Promise<ChainMap>
  result: OpenResult
  /** opened by the session itself to follow a backing chain (not shown) */
  hidden: boolean
}

/** The allocation map through an image's backing chain, and the chain's names. */
export interface ChainMap {
  map: AllocationMap
  layerNames: string[]
  backingMissing?: string
}

function baseName(p: string): string {
  return p.split(/[\\/]/).pop() ?? p
}

export class OpenSet {
  private images: OpenImage[] = []
  private current: OpenImage | undefined

  constructor(private readonly host: SessionHost) {}

  /** The current image; throws when none is open. */
  cur(): OpenImage {
    if (!this.current) throw new Error('no image is open')
    return this.current
  }

  currentOrUndefined(): OpenImage | undefined {
    return this.current && !this.current.hidden ? this.current : undefined
  }

  /** A shown image by id. */
  byId(id: number): OpenImage {
    const s = this.images.find((x) => x.id === id && !x.hidden)
    if (!s) throw new Error(`image ${id} is not open (it was closed or reopened)`)
    return s
  }

  shown(): OpenImage[] {
    return this.images.filter((s) => !s.hidden)
  }

  closeAll(): void {
    for (const s of this.images) s.opened.device.close?.()
    this.images = []
    this.current = undefined
  }

  /** Open one image alone; it becomes the current one. */
  async openOnly(source: OpenSource, signal?: AbortSignalLike): Promise<OpenImage> {
    this.closeAll()
    const s = await this.openOne(1, source, signal)
    this.images = [s]
    this.current = s
    return s
  }

  /** Open several images; the top of the longest chain (ties: the first given) becomes current. */
  async openMany(sources: OpenSource[], signal?: AbortSignalLike): Promise<OpenSetResult> {
    this.closeAll()
    const opened: OpenImage[] = []
    try {
      for (let i = 0; i < sources.length; i++) opened.push(await this.openOne(i + 1, sources[i]!, signal))
    } catch (e) {
      for (const s of opened) s.opened.device.close?.()
      throw e
    }
    this.images = opened
    const backing = new Map<OpenImage, OpenImage | undefined>()
    for (const s of opened) backing.set(s, await this.backingOf(s, false))
    let best = opened[0]!
    let bestLen = 0
    for (const s of opened) {
      if (opened.some((o) => o !== s && backing.get(o) === s)) continue // something is on top of it
      const n = (await this.chainOf(s, false)).layers.length
      if (n > bestLen) { best = s; bestLen = n }
    }
    this.current = best
    const images: ImageEntry[] = opened.map((s) => ({ id: s.id, backingId: backing.get(s)?.id ?? null, result: s.result }))
    return { images, activeId: best.id }
  }

  /** Make another shown image the current one (nothing is re-read). */
  activate(id: number): OpenImage {
    this.current = this.byId(id)
    return this.current
  }

  /** Read `s` again (after a commit) in its place; every chain's allocation map is rebuilt on next use. */
  async reopen(s: OpenImage): Promise<OpenImage> {
    const fresh = await this.openOne(s.id, s.source)
    s.opened.device.close?.()
    this.images = this.images.map((x) => (x === s ? fresh : x))
    for (const x of this.images) x.alloc = undefined
    if (this.current === s) this.current = fresh
    return fresh
  }

  /** The allocation map through `s`'s backing chain (built once, opening backing files the host resolves). */
  allocationOf(s: OpenImage): Promise<ChainMap> {
    if (!s.alloc) {
      s.alloc = (async () => {
        const { layers, backingMissing } = await this.chainOf(s, true)
        let m: AllocationMap | undefined
        for (let i = layers.length - 1; i >= 0; i--) m = await AllocationMap.open(layers[i]!.image, m)
        return { map: m!, layerNames: layers.map((l) => l.opened.name), ...(backingMissing !== undefined ? { backingMissing } : {}) }
      })()
      s.alloc.catch(() => { s.alloc = undefined })
    }
    return s.alloc
  }

  /** Open `source` and describe it (metadata only). */
  private async openOne(id: number, source: OpenSource, signal?: AbortSignalLike, hidden = false): Promise<OpenImage> {
    const opened = await this.host.open(source, signal)
    try {
      const image = await openImage(opened.device, signal ? { signal } : {})
      await opened.afterOpen?.(image)
      const readers = new Map<number, BitmapReader>()
      const summary = await describeImage(image, { counts: false, readers, ...(signal ? { signal } : {}) })
      const result: OpenResult = {
        name: opened.name,
        writable: opened.writable,
        writeMode: opened.writeMode,
        ...(opened.readOnlyReason !== undefined ? { readOnlyReason: opened.readOnlyReason } : {}),
        ...(opened.heldBy ? { heldBy: opened.heldBy } : {}),
        summary,
      }
      return { id, source, opened, image, readers, plans: new Map(), result, hidden }
    } catch (e) {
      opened.device.close?.()
      throw e
    }
  }

  /** The open image that is `s`'s backing file: by file name among the shown ones, else as the host resolves it. */
  private async backingOf(s: OpenImage, open: boolean): Promise<OpenImage | undefined> {
    const bf = s.image.backingFile
    if (bf === undefined) return undefined
    const want = baseName(bf)
    const shown = this.images.find((x) => x !== s && !x.hidden && x.opened.fileName === want)
    if (shown) return shown
    const src = this.host.resolveBacking?.(s.source, bf)
    if (!src) return undefined
    const key = JSON.stringify(src)
    const known = this.images.find((x) => x !== s && JSON.stringify(x.source) === key)
    if (known || !open) return known
    const hidden = await this.openOne(-(this.images.length + 1), src, undefined, true)
    this.images.push(hidden)
    return hidden
  }

  /** `s` and its backing files, top first. */
  private async chainOf(s: OpenImage, open: boolean): Promise<{ layers: OpenImage[]; backingMissing?: string }> {
    const layers = [s]
    for (;;) {
      const top = layers[layers.length - 1]!
      const bf = top.image.backingFile
      if (bf === undefined) return { layers }
      const next = await this.backingOf(top, open)
      if (!next || layers.includes(next) || layers.length >= MAX_CHAIN) return { layers, backingMissing: bf }
      layers.push(next)
    }
  }
}
