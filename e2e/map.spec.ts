/**
 * The 2-D disk map against QEMU's view of the same image: at a 1280×800 window the whole 1 TiB
 * disk is at least 250,000 cells; hovering a cell gives its exact byte range and the dirty
 * bytes nbdinfo reports in it; a row click and a dragged rectangle set the strip's view, which
 * is outlined on the map; zooming refines the cells to single granules; two bitmaps side by
 * side or one over the other; the Hilbert order; the dirty × allocation and comparison colours;
 * a PNG export in the theme's colours; the extents list one key away.
 */
import { expect, test, type Locator, type Page } from '@playwright/test'
import { readFileSync } from 'node:fs'
import { BASE_URL } from './browser.js'
import { parseCssColor } from '../src/ui/heatmap/colors.js'
import {
  type MapGrid, cellOfByte, cellXY, mapCellRange, rowRange,
} from '../src/ui/heatmap/map2d/layout.js'
import {
  GiB, KiB, MiB, TiB, makeImage, nbdDirty, qemuMap, screenshot, setOp, splitByMap, syntheticDrop, tempDir, waitForScans,
} from './helpers.js'

let dir: ReturnType<typeof tempDir>
let image: string
const DISK = 1 * TiB
const BIG = { offset: 100 * GiB, length: 3 * MiB }
const SMALL = { offset: 300 * GiB, length: 64 * KiB } // a 4 KiB write dirties one 64 KiB granule
const LATE = { offset: 500 * GiB, length: 512 * KiB } // written after 'frozen' was disabled

test.beforeAll(() => {
  dir = tempDir('qbm-e2e-map-')
  image = makeImage(dir.path, 'map.qcow2', {
    size: '1T',
    bitmaps: [{ name: 'alpha' }, { name: 'frozen', granularity: 1 * MiB }],
    writes: [[1 * MiB, 64 * KiB], [BIG.offset, BIG.length], [SMALL.offset, 4 * KiB], [700 * GiB, 2 * MiB], [DISK - 1 * MiB, 1 * MiB]],
    disable: ['frozen'],
    writesAfter: [[LATE.offset, LATE.length]],
  })
  const ext = nbdDirty(image, 'alpha')
  expect(ext).toContainEqual(BIG)
  expect(ext).toContainEqual(SMALL)
})

test.afterAll(() => dir?.cleanup())

test.use({ viewport: { width: 1280, height: 800 } })

const caption = (page: Page): Locator => page.getByTestId('map-caption')
const pane = (page: Page, slot: 'primary' | 'compare' = 'primary'): Locator => page.getByTestId(`map-canvas-${slot}`)

async function open(page: Page): Promise<void> {
  await page.goto('./')
  await syntheticDrop(page, image)
  await waitForScans(page, 2)
  await expect(pane(page)).toHaveAttribute('data-exact', 'true', { timeout: 30_000 })
}

async function grid(page: Page): Promise<MapGrid> {
  return JSON.parse((await caption(page).getAttribute('data-grid'))!) as MapGrid
}

/** Page coordinates of the middle of cell i of a pane. */
async function pointOfCell(page: Page, g: MapGrid, i: number, slot: 'primary' | 'compare' = 'primary'): Promise<{ x: number; y: number }> {
  const c = pane(page, slot)
  await c.evaluate((el) => el.scrollIntoView({ block: 'center' }))
  const box = (await c.boundingBox())!
  const width = await c.evaluate((el: HTMLCanvasElement) => el.width)
  const k = box.width / width
  const { col, row } = cellXY(g, i)
  return { x: box.x + (col + 0.5) * g.cellPx * k, y: box.y + (row + 0.5) * g.cellPx * k }
}

/** Dirty bytes nbdinfo reports in [a, b). */
function dirtyIn(ext: Array<{ offset: number; length: number }>, a: number, b: number): number {
  let n = 0
  for (const e of ext) n += Math.max(0, Math.min(b, e.offset + e.length) - Math.max(a, e.offset))
  return n
}

/** The strip's view from its view line. */
async function stripView(page: Page): Promise<{ start: number; end: number }> {
  const text = (await page.getByTestId('view-range').locator('.mono').first().textContent()) ?? ''
  const [a, b] = text.split('–').map((s) => parseInt(s.trim(), 16))
  return { start: a!, end: b! }
}

async function hoverTip(page: Page, g: MapGrid, i: number, slot: 'primary' | 'compare' = 'primary', testId = 'map-tooltip'): Promise<Locator> {
  const p = await pointOfCell(page, g, i, slot)
  await page.mouse.move(p.x, p.y)
  const tip = page.getByTestId(testId)
  const r = mapCellRange(g, i)
  await expect(tip).toHaveAttribute('data-offset', String(r.offset))
  await expect(tip).toHaveAttribute('data-length', String(r.length))
  return tip
}

test('the whole disk in at least 250,000 cells; hover shows each cell\'s exact range and the dirty bytes nbdinfo reports', async ({ page }) => {
  await open(page)
  const g = await grid(page)
  expect(g.count).toBeGreaterThanOrEqual(250_000)
  expect(g.start).toBe(0)
  expect(g.count * g.cellBytes).toBeGreaterThanOrEqual(DISK)
  expect(g.cellBytes % (64 * KiB)).toBe(0)
  await expect(caption(page)).toContainText('the whole disk')
  await expect(caption(page)).toContainText(`each cell`)
  const ext = nbdDirty(image, 'alpha')
  for (const offset of [BIG.offset + 1 * MiB, SMALL.offset, 700 * GiB, 20 * GiB, DISK - 1]) {
    const i = cellOfByte(g, offset)
    const tip = await hoverTip(page, g, i)
    const r = mapCellRange(g, i)
    await expect(tip).toHaveAttribute('data-dirty', String(dirtyIn(ext, r.offset, r.offset + r.length)))
  }
  await screenshot(page, 'map-whole-disk')
})

test('a row click and a dragged rectangle set the strip\'s view, which the map outlines', async ({ page }) => {
  await open(page)
  const g = await grid(page)
  // Click the row holding BIG: the strip shows exactly that row.
  const i = cellOfByte(g, BIG.offset)
  const p = await pointOfCell(page, g, i)
  await page.mouse.click(p.x, p.y)
  const row = rowRange(g, cellXY(g, i).row)!
  await expect.poll(() => stripView(page)).toEqual(row)
  await expect(page.getByTestId('extent-list').locator(`button[data-offset="${BIG.offset}"]`)).toBeVisible()
  // The outline is that row: its box spans the pane's width, one cell high.
  const outline = page.getByTestId('map-outline-primary').locator('path.map-outline')
  const bb = await outline.evaluate((el: SVGPathElement) => { const b = el.getBBox(); return { x: b.x, y: b.y, w: b.width, h: b.height } })
  expect(bb).toEqual({ x: 0, y: cellXY(g, i).row * g.cellPx, w: g.cols * g.cellPx, h: g.cellPx })

  // Drag from the cell of SMALL to ten rows and twenty columns further on: the strip shows the
  // first to the last cell of the rectangle.
  const a = cellOfByte(g, SMALL.offset)
  const { col, row: r0 } = cellXY(g, a)
  const b = (r0 + 10) * g.cols + Math.min(g.cols - 1, col + 20)
  const pa = await pointOfCell(page, g, a)
  const pb = await pointOfCell(page, g, b)
  await page.mouse.move(pa.x, pa.y)
  await page.mouse.down()
  await page.mouse.move(pb.x, pb.y, { steps: 6 })
  await page.mouse.up()
  await expect.poll(() => stripView(page)).toEqual({ start: mapCellRange(g, a).offset, end: mapCellRange(g, b).offset + g.cellBytes })
  await expect(page.getByTestId('extent-list').locator(`button[data-offset="${SMALL.offset}"]`)).toBeVisible()
})

test('zooming the map refines its cells down to single granules; E moves to the extents list', async ({ page }) => {
  await open(page)
  const area = page.getByRole('group', { name: /Disk map/ })
  // Zoom around SMALL with the wheel until the cells are single granules.
  let g = await grid(page)
  for (let k = 0; k < 20 && g.cellBytes > 64 * KiB; k++) {
    const p = await pointOfCell(page, g, cellOfByte(g, SMALL.offset))
    await page.mouse.move(p.x, p.y)
    await page.mouse.wheel(0, -100)
    await expect.poll(async () => (await grid(page)).cellBytes).toBeLessThan(g.cellBytes)
    g = await grid(page)
  }
  expect(g.cellBytes).toBe(64 * KiB)
  await expect(pane(page)).toHaveAttribute('data-exact', 'true')
  const i = cellOfByte(g, SMALL.offset)
  expect(i).toBeGreaterThanOrEqual(0)
  expect(i).toBeLessThan(g.count)
  const tip = await hoverTip(page, g, i)
  await expect(tip).toHaveAttribute('data-dirty', String(64 * KiB))
  const next = await hoverTip(page, g, i + 1)
  await expect(next).toHaveAttribute('data-dirty', '0')
  // Keys: + enlarges granule cells, − and 0 go back out to the whole disk.
  await area.focus()
  await page.keyboard.press('+')
  await expect.poll(async () => (await grid(page)).cellPx).toBe(g.cellPx * 2)
  await page.keyboard.press('0')
  await expect(caption(page)).toContainText('the whole disk')
  await page.keyboard.press('ArrowDown')
  await page.keyboard.press('0')
  // The screen-reader alternative: one key away.
  await area.focus()
  await page.keyboard.press('e')
  await expect(page.getByTestId('extent-list')).toBeFocused()
})

test('a two-finger pinch and a trackpad pinch (ctrl+wheel) zoom the map', async ({ browser }) => {
  const ctx = await browser.newContext({ hasTouch: true, viewport: { width: 1280, height: 800 }, baseURL: BASE_URL })
  try {
    const page = await ctx.newPage()
    await open(page)
    const g0 = await grid(page)
    const c = pane(page)
    await c.evaluate((el) => el.scrollIntoView({ block: 'center' }))
    const box = (await c.boundingBox())!
    const cx = Math.round(box.x + box.width / 2)
    const cy = Math.round(box.y + box.height / 2)
    const cdp = await ctx.newCDPSession(page)
    const touch = (type: 'touchStart' | 'touchMove' | 'touchEnd', d: number): Promise<unknown> => cdp.send('Input.dispatchTouchEvent', {
      type, touchPoints: type === 'touchEnd' ? [] : [{ x: cx - d, y: cy, id: 1 }, { x: cx + d, y: cy, id: 2 }],
    })
    await touch('touchStart', 20)
    for (let d = 30; d <= 120; d += 10) await touch('touchMove', d)
    await touch('touchEnd', 0)
    await expect.poll(async () => (await grid(page)).cellBytes).toBeLessThan(g0.cellBytes)
    const g1 = await grid(page)
    await page.mouse.move(cx, cy)
    await page.keyboard.down('Control')
    await page.mouse.wheel(0, -40)
    await page.keyboard.up('Control')
    await expect.poll(async () => (await grid(page)).cellBytes).toBeLessThan(g1.cellBytes)
  } finally {
    await ctx.close()
  }
})

test('two bitmaps side by side or A over B, sharing the map\'s view', async ({ page }) => {
  await open(page)
  await page.getByLabel('Compare with').selectOption({ label: 'frozen' })
  await expect(pane(page, 'compare')).toHaveAttribute('data-exact', 'true')
  const a = (await pane(page).boundingBox())!
  const b = (await pane(page, 'compare').boundingBox())!
  expect(Math.abs(a.y - b.y)).toBeLessThan(2) // side by side
  expect(b.x).toBeGreaterThan(a.x + a.width)
  const g = await grid(page)
  // LATE was written after 'frozen' was disabled: dirty in A, clean in B.
  const i = cellOfByte(g, LATE.offset)
  const r = mapCellRange(g, i)
  await expect(await hoverTip(page, g, i, 'primary')).toHaveAttribute('data-dirty', String(dirtyIn(nbdDirty(image, 'alpha'), r.offset, r.offset + r.length)))
  await expect(await hoverTip(page, g, i, 'compare')).toHaveAttribute('data-dirty', String(dirtyIn(nbdDirty(image, 'frozen'), r.offset, r.offset + r.length)))
  expect(dirtyIn(nbdDirty(image, 'frozen'), r.offset, r.offset + r.length)).toBe(0)
  await page.getByText('A over B', { exact: true }).click()
  await expect.poll(async () => (await pane(page, 'compare').boundingBox())!.y).toBeGreaterThan(a.y + 20)
  const a2 = (await pane(page).boundingBox())!
  const b2 = (await pane(page, 'compare').boundingBox())!
  expect(Math.abs(a2.x - b2.x)).toBeLessThan(2)
  expect(b2.y).toBeGreaterThanOrEqual(a2.y + a2.height)
  await screenshot(page, 'map-a-over-b')
})

test('the Hilbert order keeps each cell one byte range, and says so', async ({ page }) => {
  await open(page)
  await page.getByText('Hilbert', { exact: true }).click()
  await expect(caption(page)).toContainText('Hilbert curve')
  await expect(pane(page)).toHaveAttribute('data-exact', 'true')
  const g = await grid(page)
  expect(g.order).toBe('hilbert')
  const ext = nbdDirty(image, 'alpha')
  for (const offset of [BIG.offset, 700 * GiB + 1 * MiB]) {
    const i = cellOfByte(g, offset)
    const r = mapCellRange(g, i)
    await expect(await hoverTip(page, g, i)).toHaveAttribute('data-dirty', String(dirtyIn(ext, r.offset, r.offset + r.length)))
  }
})

test('dirty × allocation on the map: totals equal nbdinfo\'s dirty extents split by qemu-img map', async ({ page }) => {
  await open(page)
  await page.getByText('Dirty × allocation', { exact: true }).click()
  const totals = page.getByTestId('map-overlay-totals')
  await expect(totals).toHaveAttribute('data-dirty-data', /\d/, { timeout: 30_000 })
  const s = splitByMap(nbdDirty(image, 'alpha'), qemuMap(image))
  await expect(totals).toHaveAttribute('data-dirty-data', String(s.data))
  await expect(totals).toHaveAttribute('data-dirty-zero', String(s.zero))
  await expect(totals).toHaveAttribute('data-dirty-unallocated', String(s.unallocated))
  const g = await grid(page)
  const i = cellOfByte(g, BIG.offset)
  const r = mapCellRange(g, i)
  const tip = await hoverTip(page, g, i, 'primary', 'map-overlay-tooltip')
  const cell = splitByMap(nbdDirty(image, 'alpha').map((e) => {
    const a = Math.max(e.offset, r.offset)
    const b = Math.min(e.offset + e.length, r.offset + r.length)
    return { offset: a, length: b - a }
  }).filter((e) => e.length > 0), qemuMap(image))
  await expect(tip).toHaveAttribute('data-dirty-data', String(cell.data))
})

test('a comparison result on the map: A ∖ B per cell equals the difference of nbdinfo\'s extents', async ({ page }) => {
  await open(page)
  const panel = page.getByRole('region', { name: 'Compare bitmaps' })
  await panel.getByLabel('A', { exact: true }).selectOption({ label: 'alpha' })
  await panel.getByLabel('B', { exact: true }).selectOption({ label: 'frozen' })
  await panel.getByRole('radio', { name: /A ∖ B/ }).check()
  await panel.getByRole('button', { name: 'Compare' }).click()
  await page.getByRole('combobox', { name: 'Map source' }).selectOption({ index: 1 })
  await expect(pane(page)).toHaveAttribute('aria-label', /alpha ∖ frozen/)
  await expect(pane(page)).toHaveAttribute('data-exact', 'true')
  const want = setOp(nbdDirty(image, 'alpha'), nbdDirty(image, 'frozen'), 'minus')
  const g = await grid(page)
  for (const offset of [LATE.offset, BIG.offset]) {
    const i = cellOfByte(g, offset)
    const r = mapCellRange(g, i)
    await expect(await hoverTip(page, g, i)).toHaveAttribute('data-dirty', String(dirtyIn(want, r.offset, r.offset + r.length)))
  }
})

for (const scheme of ['light', 'dark'] as const) {
  test(`PNG export of the map with its legend and scale, in the ${scheme} theme's colours`, async ({ page }) => {
    await page.emulateMedia({ colorScheme: scheme })
    await open(page)
    const [png] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Save map PNG' }).click()])
    expect(png.suggestedFilename()).toBe('map-alpha-map.png')
    const bytes = readFileSync((await png.path())!)
    expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
    const g = await grid(page)
    // Decode it in the page: the background is the panel colour, the map's pixels are in it.
    const info = await page.evaluate(async (b64) => {
      const bin = atob(b64)
      const u = new Uint8Array(bin.length)
      for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i)
      const bmp = await createImageBitmap(new Blob([u], { type: 'image/png' }))
      const c = new OffscreenCanvas(bmp.width, bmp.height)
      const ctx = c.getContext('2d')!
      ctx.drawImage(bmp, 0, 0)
      const px = ctx.getImageData(0, 0, 1, 1).data
      const panel = getComputedStyle(document.documentElement).getPropertyValue('--panel').trim()
      return { width: bmp.width, height: bmp.height, corner: [px[0], px[1], px[2]], panel }
    }, bytes.toString('base64'))
    expect(info.width).toBeGreaterThanOrEqual(g.cols * g.cellPx)
    expect(info.height).toBeGreaterThan(g.rows * g.cellPx)
    expect(info.corner).toEqual([...parseCssColor(info.panel)!])
  })
}
