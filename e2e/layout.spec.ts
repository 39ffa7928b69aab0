/**
 * The app at every width: at 360, 390, 1280 and 1920 px, in both themes, nothing overflows the
 * page sideways, the top bar's buttons never cover the file name or its badge, the bitmap
 * table's SHA-256 and Table columns are on screen at 1280 px, the map and the strip fit the
 * width, the checkpoint panel offers a drop zone (no bare file input), and axe finds no serious
 * or critical violation. Screenshots of each go to test-results/screenshots.
 */
import { expect, test, type Locator, type Page } from '@playwright/test'
import { seriousViolations } from './axe.js'
import { join } from 'node:path'
import { ROOT, qemuBitmaps, screenshot, waitForScans } from './helpers.js'


type Box = { x: number; y: number; width: number; height: number }

function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
}

async function box(l: Locator): Promise<Box> {
  const b = await l.boundingBox()
  expect(b, 'element has a box').not.toBeNull()
  return b!
}

/** Open the demo image and wait until every bitmap is read and the map is drawn. */
async function openDemo(page: Page): Promise<void> {
  await page.goto('./')
  await page.getByRole('button', { name: 'Open demo image' }).click()
  await waitForScans(page, qemuBitmaps(join(ROOT, 'public', 'demo.qcow2')).length)
  await expect(page.getByTestId('map-canvas-primary')).toHaveAttribute('data-exact', 'true')
}

test.describe('every width', () => {
  // axe is injected as an inline script, which the app's CSP forbids: bypass it for this check only.
  test.use({ bypassCSP: true })

  for (const width of [360, 390, 1280, 1920]) {
    for (const scheme of ['light', 'dark'] as const) {
      test(`${width} px, ${scheme}: fits the width, no overlaps, axe clean`, async ({ page }) => {
        await page.setViewportSize({ width, height: 800 })
        await page.emulateMedia({ colorScheme: scheme })
        await openDemo(page)

        // Nothing runs off the side of the page.
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
        expect(overflow).toBeLessThanOrEqual(0)

        // The top bar: the buttons never cover the file name or its badge.
        const name = await box(page.getByTestId('current-file').locator('.mono'))
        const badge = await box(page.getByTestId('current-file').locator('.badge').first())
        for (const b of await page.locator('.topbar button').all()) {
          const bb = await box(b)
          expect(overlaps(bb, name), 'a button covers the file name').toBe(false)
          expect(overlaps(bb, badge), 'a button covers the read-only badge').toBe(false)
        }
        expect(name.width).toBeGreaterThan(20) // the name is shown, not squeezed away

        // The map and the strip fit the width.
        for (const id of ['map-canvas-primary', 'heat-canvas-primary']) {
          const c = await box(page.getByTestId(id))
          expect(c.x).toBeGreaterThanOrEqual(0)
          expect(c.x + c.width).toBeLessThanOrEqual(width)
          expect(c.width).toBeGreaterThan(width / 2 - 40)
        }

        // The bitmap table: every header it shows lies inside its scroll box, or the box scrolls.
        const wrap = page.locator('.bitmaps-panel .table-wrap')
        const w = await box(wrap)
        const scrolls = await wrap.evaluate((el) => el.scrollWidth > el.clientWidth)
        if (width >= 1280) {
          expect(scrolls).toBe(false)
          for (const col of ['sha', 'table']) {
            const th = await box(page.locator(`.bitmaps th[data-col="${col}"]`))
            expect(th.x + th.width, `the ${col} column is cut off`).toBeLessThanOrEqual(w.x + w.width + 0.5)
          }
        }

        // The checkpoint panel: a drop zone with a button, no bare file input on show.
        const cp = page.getByRole('region', { name: 'Checkpoints' })
        await expect(cp.locator('.drop-zone')).toBeVisible()
        await expect(cp.getByRole('button', { name: 'Load checkpoint XML…' })).toBeVisible()
        const input = await box(cp.getByTestId('checkpoint-input'))
        expect(input.width * input.height).toBeLessThanOrEqual(1)

        expect(await seriousViolations(page)).toEqual([])
        await screenshot(page, `layout-${width}-${scheme}`)
      })
    }
  }
})
