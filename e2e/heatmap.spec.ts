/**
 * The heatmap against known dirty extents: hover shows the cell's range and dirty bytes, zooming
 * in brings the extent into the "in view" list, clicking an extent zooms to it, keys and drag move
 * the view, and a compare row shares it.
 */
import { expect, test, type Page } from '@playwright/test'
import { KiB, MiB, hex, makeImage, nbdDirty, screenshot, syntheticDrop, tempDir, waitForScans } from './helpers.js'

let dir: ReturnType<typeof tempDir>
let image: string
const DISK = 64 * MiB
const BIG = { offset: 10 * MiB, length: 3 * MiB }
const SMALL = { offset: 40 * MiB, length: 64 * KiB } // a 4 KiB write dirties one 64 KiB granule

test.beforeAll(() => {
  dir = tempDir()
  image = makeImage(dir.path, 'heat.qcow2', {
    size: '64M',
    bitmaps: [{ name: 'alpha' }, { name: 'frozen', granularity: 1 * MiB }],
    writes: [[1 * MiB, 64 * KiB], [BIG.offset, BIG.length], [40 * MiB, 4 * KiB], [63 * MiB, 1 * MiB]],
    disable: ['frozen'],
    writesAfter: [[20 * MiB, 512 * KiB]],
  })
  // The extents this test relies on, as QEMU sees them.
  const ext = nbdDirty(image, 'alpha')
  expect(ext).toContainEqual(BIG)
  expect(ext).toContainEqual(SMALL)
})

test.afterAll(() => dir?.cleanup())

async function open(page: Page): Promise<void> {
  await page.goto('./')
  await syntheticDrop(page, image)
  await waitForScans(page, 2)
  await expect(page.getByTestId('heat-canvas-primary')).toHaveAttribute('aria-label', /cells hold dirty data/)
}

/** Current view [start, end) from the view line. */
async function view(page: Page): Promise<{ start: number; end: number }> {
  const text = (await page.getByTestId('view-range').locator('.mono').first().textContent()) ?? ''
  const [a, b] = text.split('–').map((s) => parseInt(s.trim(), 16))
  return { start: a!, end: b! }
}

/** Page coordinates of byte `offset` on a heatmap row. */
async function pointAt(page: Page, offset: number, slot: 'primary' | 'compare' = 'primary'): Promise<{ x: number; y: number }> {
  // The disk map now sits above the strip: bring the row into the viewport first.
  await page.getByTestId(`heat-canvas-${slot}`).evaluate((el) => el.scrollIntoView({ block: 'center' }))
  const box = (await page.getByTestId(`heat-canvas-${slot}`).boundingBox())!
  const v = await view(page)
  return { x: box.x + ((offset - v.start) / (v.end - v.start)) * box.width, y: box.y + box.height / 2 }
}

test('hovering a known dirty extent shows its range and dirty bytes; zooming in lists it', async ({ page }) => {
  await open(page)
  expect(await view(page)).toEqual({ start: 0, end: DISK })
  const p = await pointAt(page, BIG.offset + BIG.length / 2)
  await page.mouse.move(p.x, p.y)
  const tip = page.getByTestId('heat-tooltip')
  await expect(tip).toBeVisible()
  const offset = Number(await tip.getAttribute('data-offset'))
  const length = Number(await tip.getAttribute('data-length'))
  const dirty = Number(await tip.getAttribute('data-dirty'))
  expect(offset).toBeGreaterThanOrEqual(BIG.offset)
  expect(offset + length).toBeLessThanOrEqual(BIG.offset + BIG.length)
  expect(dirty).toBe(length) // the whole cell lies inside the extent
  await expect(tip).toContainText(hex(offset))
  await expect(tip).toContainText('100%')

  // Hover a clean region: no dirty bytes.
  const q = await pointAt(page, 30 * MiB)
  await page.mouse.move(q.x, q.y)
  await expect(tip).toHaveAttribute('data-dirty', '0')

  // Wheel-zoom around the extent until only a few extents are in view.
  for (let i = 0; i < 3; i++) {
    // (the point is taken again each time: the page may have scrolled as the lists below shrank)
    const at = await pointAt(page, BIG.offset + BIG.length / 2)
    await page.mouse.move(at.x, at.y)
    await page.mouse.wheel(0, -400)
    await page.waitForTimeout(100)
  }
  const v = await view(page)
  expect(v.end - v.start).toBeLessThan(DISK / 4)
  expect(v.start).toBeLessThanOrEqual(BIG.offset + BIG.length / 2)
  expect(v.end).toBeGreaterThan(BIG.offset + BIG.length / 2)
  const row = page.getByTestId('extent-list').locator(`button[data-offset="${BIG.offset}"]`)
  await expect(row).toBeVisible()
  await expect(row).toHaveAttribute('data-length', String(BIG.length))
  await expect(page.getByTestId('extent-list').locator(`button[data-offset="${SMALL.offset}"]`)).toHaveCount(0)
  await expect(page.getByTestId('extent-count')).toContainText('in view')
  await screenshot(page, 'heatmap-zoomed')
})

test('clicking an extent zooms the heatmap to it and granule cells appear', async ({ page }) => {
  await open(page)
  await page.getByText('All', { exact: true }).click()
  const row = page.getByTestId('extent-list').locator(`button[data-offset="${SMALL.offset}"]`)
  await row.click()
  const v = await view(page)
  expect(v.start).toBeLessThanOrEqual(SMALL.offset)
  expect(v.end).toBeGreaterThanOrEqual(SMALL.offset + SMALL.length)
  expect(v.end - v.start).toBeLessThanOrEqual(1 * MiB)
  await expect(row).toHaveClass(/focused/)
  await expect(page.getByTestId('view-range')).toContainText('1 granule')
  // Hover the extent itself: one 64 KiB granule, fully dirty.
  const p = await pointAt(page, SMALL.offset + SMALL.length / 2)
  await page.mouse.move(p.x, p.y)
  const tip = page.getByTestId('heat-tooltip')
  await expect(tip).toHaveAttribute('data-offset', String(SMALL.offset))
  await expect(tip).toHaveAttribute('data-length', String(SMALL.length))
  await expect(tip).toHaveAttribute('data-dirty', String(SMALL.length))
})

test('keyboard zooms and pans, drag pans, buttons reset', async ({ page }) => {
  await open(page)
  const area = page.getByRole('group', { name: /Heatmap view/ })
  await area.focus()
  await page.keyboard.press('+')
  await page.keyboard.press('+')
  let v = await view(page)
  expect(v.end - v.start).toBe(DISK / 4)
  expect(v.start).toBe(DISK / 2 - DISK / 8) // zoomed around the centre
  await page.keyboard.press('ArrowRight')
  const moved = await view(page)
  expect(moved.start).toBeGreaterThan(v.start)
  expect(moved.end - moved.start).toBe(DISK / 4)
  // drag to the right by a quarter of the width: the view moves a quarter span towards 0
  const box = (await page.getByTestId('heat-canvas-primary').boundingBox())!
  await page.mouse.move(box.x + box.width / 2, box.y + 10)
  await page.mouse.down()
  await page.mouse.move(box.x + box.width * 0.75, box.y + 10, { steps: 5 })
  await page.mouse.up()
  v = await view(page)
  expect(Math.abs(v.start - (moved.start - (DISK / 4) / 4))).toBeLessThanOrEqual(64 * KiB)
  await page.keyboard.press('0')
  await area.focus()
  await page.keyboard.press('0')
  expect(await view(page)).toEqual({ start: 0, end: DISK })
  await page.getByRole('button', { name: 'Zoom in' }).click()
  expect((await view(page)).end - (await view(page)).start).toBe(DISK / 2)
  await page.getByRole('button', { name: 'Whole disk' }).click()
  expect(await view(page)).toEqual({ start: 0, end: DISK })
})

test('a compare bitmap stacks under the first and shares zoom and pan', async ({ page }) => {
  await open(page)
  await page.getByLabel('Compare with').selectOption({ label: 'frozen' })
  await expect(page.getByTestId('heat-canvas-compare')).toHaveAttribute('aria-label', /frozen.*cells hold dirty data/)
  // 20 MiB was written after 'frozen' was disabled: dirty in alpha, clean in frozen.
  const a = await pointAt(page, 20 * MiB + 100 * KiB, 'primary')
  await page.mouse.move(a.x, a.y)
  expect(Number(await page.getByTestId('heat-tooltip').getAttribute('data-dirty'))).toBeGreaterThan(0)
  const b = await pointAt(page, 20 * MiB + 100 * KiB, 'compare')
  await page.mouse.move(b.x, b.y)
  await expect(page.getByTestId('heat-tooltip')).toHaveAttribute('data-dirty', '0')
  await page.getByRole('button', { name: 'Zoom in' }).click()
  await expect(page.getByTestId('heat-canvas-compare')).toHaveAttribute('aria-label', new RegExp(`from 0x[0-9a-f]+ to ${hex(DISK * 3 / 4)}`))
  await expect(page.getByTestId('heat-canvas-primary')).toHaveAttribute('aria-label', new RegExp(`to ${hex(DISK * 3 / 4)}`))
})

test('extents and the heatmap export as CSV, JSON and PNG', async ({ page }) => {
  await open(page)
  await page.getByText('All', { exact: true }).click()
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'CSV' }).click()])
  const csvText = await streamText(await csv.createReadStream())
  const lines = csvText.trim().split('\n')
  expect(lines[0]).toBe('offset,length,end')
  const want = nbdDirty(image, 'alpha')
  expect(lines.slice(1).map((l) => l.split(',').slice(0, 2).map(Number))).toEqual(want.map((x) => [x.offset, x.length]))
  const [json] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'JSON' }).click()])
  const parsed = JSON.parse(await streamText(await json.createReadStream())) as { bitmap: string; extents: unknown[] }
  expect(parsed.bitmap).toBe('alpha')
  expect(parsed.extents).toEqual(want)
  const [png] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export PNG' }).click()])
  expect(png.suggestedFilename()).toBe('heat-alpha-heatmap.png')
  const head = await streamBytes(await png.createReadStream())
  expect([...head.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
})

async function streamBytes(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of s) chunks.push(Buffer.from(c as Buffer))
  return Buffer.concat(chunks)
}

async function streamText(s: NodeJS.ReadableStream): Promise<string> {
  return (await streamBytes(s)).toString('utf8')
}
