/**
 * The edit scenario both transports run (edit.spec.ts through the worker and a dropped handle,
 * serve.spec.ts through `qbm serve`): on a crashed writer's image, stage clear-in-use (all
 * dirty), remove and add, confirm no VM has it open, review, write; then QEMU's tools judge.
 */
import { expect, type Page } from '@playwright/test'
import { KiB, MiB, makeImage, nbdDirty, qemuBitmaps, requireTool, screenshot, sh, waitForScans } from './helpers.js'

/** A 64 MiB image whose writer was killed: bitmaps 'stale' and 'old' are left in use. */
export function inUseImage(dir: string, name: string): string {
  requireTool('qemu-io')
  const p = makeImage(dir, name, {
    size: '64M', bitmaps: [{ name: 'stale' }, { name: 'old' }], writes: [[0, 64 * KiB], [8 * MiB, 1 * MiB]],
  })
  // (through sh, so the calling shell does not report the kill on stderr)
  sh(`sh -c "qemu-io -f qcow2 -c 'write -P 0x92 1M 64k' -c flush -c 'sigraise 9' ${p}" >/dev/null 2>&1 || true`)
  expect(qemuBitmaps(p).map((b) => b.flags)).toEqual([['in-use', 'auto'], ['in-use', 'auto']])
  return p
}

/** `qemu-img check`: exit code and output. */
export function qemuCheck(p: string): { code: number; out: string } {
  try {
    return { code: 0, out: sh(`qemu-img check ${p} 2>&1`) }
  } catch (e) {
    const x = e as { status?: number; stdout?: string }
    return { code: x.status ?? -1, out: x.stdout ?? '' }
  }
}

/** Select a bitmap by its row. */
export async function select(page: Page, name: string): Promise<void> {
  await page.getByRole('radio', { name: `Show bitmap ${name}` }).check()
}

/** Stage the three changes on the open in-use image, review (confirming no VM), write. `shownName`: the name the page gives the file. */
export async function stageAndWrite(page: Page, shownName: string): Promise<void> {
  await waitForScans(page, 2)
  await expect(page.locator('tr[data-bitmap="stale"]')).toContainText('in use')
  const changes = page.getByRole('region', { name: 'Changes' })
  await select(page, 'stale')
  await changes.getByRole('button', { name: 'Clear in_use…' }).click()
  await changes.getByRole('radio', { name: /Mark all dirty/ }).check()
  await changes.getByRole('button', { name: 'Stage clear in_use' }).click()
  await select(page, 'old')
  await changes.getByRole('button', { name: 'Remove…' }).click()
  await changes.getByRole('button', { name: 'Stage removal' }).click()
  await changes.getByRole('button', { name: 'Add bitmap…' }).click()
  await changes.getByLabel('New bitmap name').fill('fresh')
  await changes.getByRole('button', { name: 'Stage add' }).click()
  await expect(changes.getByRole('list', { name: 'Pending changes' }).getByRole('listitem')).toHaveCount(3)

  await changes.getByRole('button', { name: 'Review and save…' }).click()
  const dialog = page.getByRole('dialog', { name: /Review changes/ })
  // In-use bitmaps: the planner wants to hear that no VM has the image open.
  await expect(dialog.getByRole('alert')).toContainText('in use')
  await dialog.getByRole('checkbox', { name: /No VM or other program has this image open/ }).check()
  await dialog.getByRole('button', { name: 'Plan again' }).click()
  await expect(dialog.getByRole('table')).toContainText('fresh')
  await expect(dialog.locator('.plan-summary li')).toHaveCount(3)
  await screenshot(page, 'review-dialog')
  await dialog.getByRole('button', { name: 'Write to file' }).click()
  const escaped = shownName.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
  await expect(page.getByRole('status').filter({ hasText: new RegExp(`^Wrote 3 changes to ${escaped}`) })).toBeVisible({ timeout: 60_000 })
  await expect(dialog).toHaveCount(0)
  // The page shows the file's new state.
  await waitForScans(page, 2)
  await expect(page.locator('tbody tr:has(td[data-col="dirty-exact"])')).toHaveCount(2)
  await expect(page.locator('tr[data-bitmap="stale"]')).not.toContainText('in use')
}

/** QEMU's verdict on the written image: clean, the bitmaps as staged, guest data as `before`. */
export function judgeWrite(image: string, before: string): void {
  const check = qemuCheck(image)
  expect(check.out).toContain('No errors were found')
  expect(check.code).toBe(0)
  expect(qemuBitmaps(image)).toEqual([
    { name: 'stale', granularity: 65536, flags: ['auto'] },
    { name: 'fresh', granularity: 65536, flags: ['auto'] },
  ])
  expect(nbdDirty(image, 'stale')).toEqual([{ offset: 0, length: 64 * MiB }]) // all dirty
  expect(nbdDirty(image, 'fresh')).toEqual([])
  // Guest data untouched.
  sh(`qemu-img compare -f qcow2 -F qcow2 ${before} ${image}`)
}
