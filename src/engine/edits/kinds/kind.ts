/**
 * What one edit kind is (docs/format.md §8): its edit as plain data, its one-line description
 * (the page's pending list and the plan's summary say the same words), and its effect on the
 * planner's model of the bitmap list, with QEMU's checks. A kind sees the model through
 * PlanModel only: it reads no image and writes nothing, so this folder stays small enough for
 * the page to load (src/engine/shared.ts) and the planner (edits/model.ts) does the reading.
 */

/** The bits of a bitmap in the model: as stored, all clear, all set, or in memory (whole clusters). */
export type DataSource =
  | { kind: 'stored' }
  | { kind: 'zero' }
  | { kind: 'ones' }
  | { kind: 'mem'; bytes: Uint8Array }

/** A bitmap as the planner holds it while it applies edits. */
export interface ModelBitmap {
  name: string
  /** the name as stored (UTF-8) */
  nameBytes: Uint8Array
  /** BME_FLAG_* bits */
  flags: number
  granularityBits: number
  data: DataSource
  /** its directory entry is written anew (a new or renamed bitmap) */
  renamed: boolean
  /** what opening the image found, for a bitmap read from an image ('ok', 'in-use', ...) */
  readonly status?: string
}

/** Another image an edit reads from (a merge source), found through PlanOptions.sources. */
export interface OtherImage {
  readonly diskLength: number
  /** its bitmap of that name, or undefined */
  find(name: string): ModelBitmap | undefined
}

/** Words that make a description exact: the image's cluster size gives an add's default granularity. */
export interface DescribeContext {
  clusterSize?: number
}

/** The planner's model of the bitmap list, as an edit kind may change it. Every refusal is a ConstraintError. */
export interface PlanModel {
  readonly diskLength: number
  readonly clusterSize: number
  /** bitmaps in the list as edited so far */
  readonly count: number
  /** the bitmap of that name in the list as edited so far; refuses ('bitmap-not-found') when none */
  find(name: string, op: string): ModelBitmap
  /** the bitmap of that name, or undefined */
  lookup(name: string): ModelBitmap | undefined
  /** refuse an in-use bitmap: QEMU calls it inconsistent ('bitmap-inconsistent') */
  refuseInUse(b: ModelBitmap, op: string): void
  /** refuse a name QEMU would refuse or one that is taken; its UTF-8 bytes. `subject`: the bitmap operated on, when not the new name */
  checkName(name: string, op: string, subject?: string): Uint8Array
  /** append a new bitmap, refused past QEMU's bitmap count and directory size */
  insert(b: ModelBitmap, op: string): void
  /** take a bitmap out of the list (its clusters are freed) */
  delete(b: ModelBitmap): void
  /** give a bitmap a new name, refused past QEMU's directory-size limit */
  rename(b: ModelBitmap, name: string, nameBytes: Uint8Array, op: string): void
  /** the bitmap's bits as whole clusters in memory (the same array on every call once in memory) */
  bits(b: ModelBitmap): Promise<Uint8Array>
  /** byte ranges [start, end) of the disk whose granules are set in `b`, in order */
  dirtyRanges(b: ModelBitmap): AsyncIterable<[number, number]>
  /** the image an edit names by id (PlanOptions.sources), or undefined when the id is this image */
  otherImage(id: number, op: string, name: string): OtherImage | undefined
  /** a set of byte ranges named by id (PlanOptions.sources): [start0, end0, start1, end1, ...], sorted, disjoint */
  ranges(id: number, op: string, name: string): Promise<Float64Array>
  /** why the stored bits of an in-use bitmap cannot be kept as they are, or undefined */
  storedBitsProblem(b: ModelBitmap): Promise<string | undefined>
  /** keep the stored bits; rebuilt at the right size when the disk was resized while it was in use */
  keepStoredBits(b: ModelBitmap): Promise<void>
  /** a warning for the plan */
  warn(text: string): void
}

/**
 * One edit kind. `apply` checks the edit against the model and changes it; what it returns is
 * added to the plan's summary line after the description (facts only the planner knows).
 */
export interface EditKind<E extends { op: string; name: string }> {
  readonly op: E['op']
  /** One line saying what the edit does, in the words the page and the plan both show. */
  describe(e: E, ctx?: DescribeContext): string
  apply(e: E, m: PlanModel): Promise<string | undefined>
}

/** The edit type of an edit kind. */
export type EditOf<K> = K extends EditKind<infer E> ? E : never
