import { expect, test } from '@playwright/test'
import { join } from 'node:path'
import { ROOT, foreignRequests, qemuBitmaps, recordRequests, screenshot, tableRows, waitForScans } from './helpers.js'

test('the demo image opens with one click and lists the bitmaps qemu-img reports', async ({ page }) => {
  const urls = recordRequests(page)
  await page.goto('./')
  await page.getByRole('button', { name: 'Open demo image' }).click()
  const want = qemuBitmaps(join(ROOT, 'public', 'demo.qcow2'))
  await waitForScans(page, want.length)
  const rows = await tableRows(page)
  expect(rows.map((r) => r.name)).toEqual(want.map((b) => b.name))
  await expect(page.getByTestId('heat-canvas-primary')).toHaveAttribute('aria-label', /cells hold dirty data/)
  await screenshot(page, 'demo')
  expect(foreignRequests(urls)).toEqual([])
})
