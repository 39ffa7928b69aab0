/**
 * Backup analysis in the browser against QEMU's own tools on the same files: the dirty ×
 * allocation overlay and the incremental-backup estimate (nbdinfo's dirty extents split by
 * qemu-img map, on an fstrim-style image), the bitmap algebra (set operations over nbdinfo
 * --map of A and B, and a saved union checked with qemu-img and nbdinfo), stale in-use bitmaps,
 * libvirt checkpoint XML, and a backing chain dropped as several files.
 */
import { expect, test, type Page } from '@playwright/test'
import axe from 'axe-core'
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  MiB, ROOT, TESTDATA_IMAGES, type MapRun, nbdDirty, qemuBitmaps, qemuMap, requireTool, screenshot, setOp, sh, splitByMap,
  syntheticDrop, syntheticDropMany, tempDir, waitForScans,
} from './helpers.js'

let dir: ReturnType<typeof tempDir>
test.beforeAll(() => { dir = tempDir('qbm-e2e-backup-') })
test.afterAll(() => dir?.cleanup())

/**
 * The fstrim case (recipe of src/cli/allocation.test.ts): 16 MiB of data, a bitmap, then new
 * data, a zero write and a discard after it: all three are dirty, only the data needs copying.
 */
function trimImage(): string {
  requireTool('qemu-io')
  const p = join(dir.path, 'trim.qcow2')
  sh(`qemu-img create -q -f qcow2 ${p} 64M
      qemu-io -f qcow2 -c 'write -P 1 0 16M' ${p} >/dev/null
      qemu-img bitmap --add ${p} inc
      qemu-io -f qcow2 -c 'write -P 2 1M 1M' -c 'write -z 4M 2M' -c 'discard 8M 3M' -c 'write -P 3 40M 512k' ${p} >/dev/null`)
  return p
}

async function select(page: Page, name: string): Promise<void> {
  await page.getByRole('radio', { name: `Show bitmap ${name}` }).check()
}

async function overlayTotals(page: Page): Promise<{ data: number; zero: number; unallocated: number; cleanData: number }> {
  const el = page.getByTestId('overlay-totals')
  await expect(el).toHaveAttribute('data-dirty-data', /\d/)
  return {
    data: Number(await el.getAttribute('data-dirty-data')),
    zero: Number(await el.getAttribute('data-dirty-zero')),
    unallocated: Number(await el.getAttribute('data-dirty-unallocated')),
    cleanData: Number(await el.getAttribute('data-clean-data')),
  }
}

/** Every row of a virtualized extent list, by scrolling it from top to bottom. */
async function allRows(page: Page, list: ReturnType<Page['getByTestId']>, count: number): Promise<Array<{ offset: number; length: number }>> {
  const got = new Map<number, { offset: number; length: number }>()
  await list.evaluate((el) => { el.scrollTop = 0 })
  for (let guard = 0; guard < 1000 && got.size < count; guard++) {
    await expect(list.locator('.placeholder')).toHaveCount(0)
    const rows = await list.locator('button.extent-row').evaluateAll((els) => els.map((e) => ({
      n: Number(e.firstElementChild?.textContent ?? '0'), offset: Number(e.getAttribute('data-offset')), length: Number(e.getAttribute('data-length')),
    })))
    for (const r of rows) got.set(r.n, { offset: r.offset, length: r.length })
    const atEnd = await list.evaluate((el) => { const end = el.scrollTop + el.clientHeight >= el.scrollHeight - 1; el.scrollTop += el.clientHeight; return end })
    if (atEnd) break
    await page.waitForTimeout(50)
  }
  return [...got.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v)
}

/** Bytes of [a, b) that qemu-img map says are allocated data. */
function dataIn(map: MapRun[], a: number, b: number): number {
  let n = 0
  for (const m of map) if (m.data) n += Math.max(0, Math.min(b, m.start + m.length) - Math.max(a, m.start))
  return n
}

test('overlay and estimate equal nbdinfo dirty extents split by qemu-img map (fstrim case)', async ({ page }) => {
  const image = trimImage()
  const dirty = nbdDirty(image, 'inc')
  const map = qemuMap(image)
  const want = splitByMap(dirty, map)
  expect(want.zero + want.unallocated).toBeGreaterThan(0) // the fixture really has dirty-but-zero bytes
  expect(want.data).toBeGreaterThan(0)

  await page.goto('./')
  await syntheticDrop(page, image)
  await waitForScans(page, 1)
  await page.getByText('Dirty × allocation', { exact: true }).click()
  await expect(page.getByTestId('heat-canvas-primary')).toHaveAttribute('aria-label', /Dirty × allocation of bitmap inc/)

  // Totals over the whole disk.
  const tot = await overlayTotals(page)
  console.log(`fstrim case: shown data ${tot.data} / zero ${tot.zero} / unallocated ${tot.unallocated}; `
    + `nbdinfo dirty ${want.dirty} split by qemu-img map: data ${want.data} / zero ${want.zero} / unallocated ${want.unallocated}`)
  expect({ data: tot.data, zero: tot.zero, unallocated: tot.unallocated }).toEqual({ data: want.data, zero: want.zero, unallocated: want.unallocated })
  const disk = 64 * MiB
  expect(tot.cleanData).toBe(dataIn(map, 0, disk) - want.data)

  // The estimate panel: qbm estimate's numbers.
  const est = page.getByTestId('estimate')
  await expect(est).toHaveAttribute('data-dirty', String(want.dirty))
  await expect(est).toHaveAttribute('data-data', String(want.data))
  await expect(est).toHaveAttribute('data-zero', String(want.zero))
  await expect(est).toHaveAttribute('data-unallocated', String(want.unallocated))

  // Each extent in the list carries its split.
  await page.getByText('All', { exact: true }).first().click()
  const rows = page.getByTestId('extent-list').locator('button.extent-row')
  await expect(rows).toHaveCount(dirty.length)
  for (let i = 0; i < dirty.length; i++) {
    const e = dirty[i]!
    const row = rows.nth(i)
    await expect(row).toHaveAttribute('data-offset', String(e.offset))
    const s = splitByMap([e], map)
    const cell = row.locator('.split-cell')
    await expect(cell).toHaveAttribute('data-data', String(s.data))
    await expect(cell).toHaveAttribute('data-zero', String(s.zero))
    await expect(cell).toHaveAttribute('data-unallocated', String(s.unallocated))
  }

  // Hover the zero-written region, then the discarded one: the tooltip's split of that cell.
  const box = (await page.getByTestId('heat-canvas-primary').boundingBox())!
  for (const at of [5 * MiB, 9 * MiB + 512 * 1024]) {
    await page.mouse.move(box.x + (at / disk) * box.width, box.y + box.height / 2)
    const tip = page.getByTestId('overlay-tooltip')
    await expect(tip).toBeVisible()
    const offset = Number(await tip.getAttribute('data-offset'))
    const length = Number(await tip.getAttribute('data-length'))
    const dirtyHere = dirty.flatMap((d) => {
      const a = Math.max(d.offset, offset)
      const b = Math.min(d.offset + d.length, offset + length)
      return b > a ? [{ offset: a, length: b - a }] : []
    })
    const s = splitByMap(dirtyHere, map)
    expect(s.zero + s.unallocated).toBeGreaterThan(0)
    await expect(tip).toHaveAttribute('data-dirty-data', String(s.data))
    await expect(tip).toHaveAttribute('data-dirty-zero', String(s.zero))
    await expect(tip).toHaveAttribute('data-dirty-unallocated', String(s.unallocated))
  }
  const shot = await screenshot(page, 'overlay')
  mkdirSync(join(ROOT, 'docs'), { recursive: true })
  copyFileSync(shot, join(ROOT, 'docs', 'overlay.png'))
})

test('bitmap algebra equals set operations on nbdinfo --map; a saved union is that union for QEMU', async ({ page }) => {
  test.setTimeout(120_000)
  const image = join(TESTDATA_IMAGES, 'granularities.qcow2')
  const [A, B] = ['g-1m', 'g-4k']
  const ea = nbdDirty(image, A)
  const eb = nbdDirty(image, B)
  expect(ea.length * eb.length).toBeGreaterThan(0)
  await page.goto('./')
  await syntheticDrop(page, image)
  await waitForScans(page, qemuBitmaps(image).length)
  const panel = page.getByRole('region', { name: 'Compare bitmaps' })
  await panel.getByLabel('A', { exact: true }).selectOption({ label: A })
  await panel.getByLabel('B', { exact: true }).selectOption({ label: B })
  const totals = panel.getByTestId('algebra-totals')
  let lastBytes = -1
  for (const [op, sign] of [['union', '∪'], ['intersect', '∩'], ['minus', '∖'], ['xor', '⊕']] as const) {
    const want = setOp(ea, eb, op)
    const bytes = want.reduce((n, e) => n + e.length, 0)
    await panel.getByRole('radio', { name: new RegExp(`A ${sign} B`) }).check()
    await panel.getByRole('button', { name: 'Compare' }).click()
    await expect(totals).toContainText(`${A} ${sign} ${B}`)
    await expect(totals).toHaveAttribute('data-bytes', String(bytes))
    await expect(totals).toHaveAttribute('data-extents', String(want.length))
    await expect(panel.getByTestId('algebra-canvas')).toHaveAttribute('aria-label', /cells hold dirty data/)
    // the list, all of it (the fixture has few extents): exactly the reference extents
    await panel.getByText('All', { exact: true }).click()
    await expect(panel.getByTestId('algebra-count')).toContainText(`${want.length} extents`)
    expect(await allRows(page, panel.getByTestId('algebra-list'), want.length)).toEqual(want)
    await expect(panel.getByRole('button', { name: op === 'union' ? 'Stage add + merge' : 'Stage add + set bits' })).toBeVisible()
    lastBytes = bytes
  }
  expect(lastBytes).toBeGreaterThan(0)

  // Save A ∪ B as a new bitmap: stage add + merge + merge, download the edited copy, ask QEMU.
  await panel.getByRole('radio', { name: /A ∪ B/ }).check()
  await panel.getByRole('button', { name: 'Compare' }).click()
  await expect(totals).toContainText(`${A} ∪ ${B}`)
  await panel.getByLabel('Save as new bitmap').fill('a-or-b')
  await panel.getByRole('button', { name: 'Stage add + merge' }).click()
  const changes = page.getByRole('region', { name: 'Changes' })
  const pending = changes.getByRole('list', { name: 'Pending changes' }).getByRole('listitem')
  await expect(pending).toHaveCount(3)
  await expect(pending.nth(0)).toContainText("Add bitmap 'a-or-b'")
  await expect(pending.nth(1)).toContainText(`Merge '${A}' into 'a-or-b'`)
  await expect(pending.nth(2)).toContainText(`Merge '${B}' into 'a-or-b'`)
  await changes.getByRole('button', { name: 'Review and save…' }).click()
  const dialog = page.getByRole('dialog', { name: /Review changes/ })
  const [dl] = await Promise.all([page.waitForEvent('download'), dialog.getByRole('button', { name: 'Download edited copy' }).click()])
  const out = join(dir.path, 'union.qcow2')
  await dl.saveAs(out)
  sh(`qemu-img check ${out} >/dev/null`)
  expect(qemuBitmaps(out).find((b) => b.name === 'a-or-b')).toEqual({ name: 'a-or-b', granularity: 4096, flags: [] })
  expect(nbdDirty(out, 'a-or-b')).toEqual(setOp(ea, eb, 'union'))
})

for (const [op, sign] of [['minus', '∖'], ['xor', '⊕']] as const) {
  test(`a saved ${op} is that ${op} for QEMU (add + set bits, qbm's own edit)`, async ({ page }) => {
    test.setTimeout(120_000)
    const image = join(TESTDATA_IMAGES, 'granularities.qcow2')
    const [A, B] = ['g-1m', 'g-4k']
    const want = setOp(nbdDirty(image, A), nbdDirty(image, B), op)
    expect(want.length).toBeGreaterThan(0)
    await page.goto('./')
    await syntheticDrop(page, image)
    await waitForScans(page, qemuBitmaps(image).length)
    const panel = page.getByRole('region', { name: 'Compare bitmaps' })
    await panel.getByLabel('A', { exact: true }).selectOption({ label: A })
    await panel.getByLabel('B', { exact: true }).selectOption({ label: B })
    await panel.getByRole('radio', { name: new RegExp(`A ${sign} B`) }).check()
    await panel.getByRole('button', { name: 'Compare' }).click()
    await expect(panel.getByTestId('algebra-totals')).toContainText(`${A} ${sign} ${B}`)
    const name = `a-${op}-b`
    await panel.getByLabel('Save as new bitmap').fill(name)
    await panel.getByRole('button', { name: 'Stage add + set bits' }).click()
    const changes = page.getByRole('region', { name: 'Changes' })
    const pending = changes.getByRole('list', { name: 'Pending changes' }).getByRole('listitem')
    await expect(pending).toHaveCount(2)
    await expect(pending.nth(0)).toContainText(`Add bitmap '${name}'`)
    await expect(pending.nth(1)).toContainText(`Set in '${name}' every granule dirty in ${A} ${sign} ${B}`)
    await changes.getByRole('button', { name: 'Review and save…' }).click()
    const dialog = page.getByRole('dialog', { name: /Review changes/ })
    const [dl] = await Promise.all([page.waitForEvent('download'), dialog.getByRole('button', { name: 'Download edited copy' }).click()])
    const out = join(dir.path, `${op}.qcow2`)
    await dl.saveAs(out)
    sh(`qemu-img check ${out} >/dev/null`)
    expect(qemuBitmaps(out).find((b) => b.name === name)).toEqual({ name, granularity: 4096, flags: [] })
    expect(nbdDirty(out, name)).toEqual(want)
    // the operands are untouched
    expect(nbdDirty(out, A)).toEqual(nbdDirty(image, A))
    expect(nbdDirty(out, B)).toEqual(nbdDirty(image, B))
  })
}

test('a stale (in-use) bitmap is drawn as stale, can be compared, and the clear-in-use choices are explained', async ({ page }) => {
  const image = join(TESTDATA_IMAGES, 'in-use-mixed.qcow2')
  const bm = qemuBitmaps(image)
  const stale = bm.find((b) => b.flags.includes('in-use'))!.name
  const fresh = bm.find((b) => !b.flags.includes('in-use'))!.name
  await page.goto('./')
  await syntheticDrop(page, image)
  await waitForScans(page, 2)
  await select(page, stale)
  await expect(page.locator('.heat-row[data-slot="primary"]')).toHaveAttribute('data-stale', 'true')
  await expect(page.getByTestId('heat-canvas-primary')).toHaveAttribute('aria-label', /stale: in use/)
  await expect(page.getByTestId('stale-note')).toBeVisible()
  // No "copies about 0 B": a backup tool cannot use it, the next backup is full and copies the
  // disk's allocated data, as qemu-img map reports it.
  const full = page.getByTestId('estimate-full')
  await expect(full).toContainText('Full, not incremental')
  const allocated = qemuMap(image).filter((r) => r.data).reduce((n, r) => n + r.length, 0)
  expect(allocated).toBeGreaterThan(0)
  await expect(full).toHaveAttribute('data-full', String(allocated))
  await expect(page.getByTestId('estimate')).toHaveCount(0)
  const help = page.getByTestId('in-use-help')
  await expect(help).toContainText('next incremental backup')
  for (const word of ['Keep', 'Mark all dirty', 'Empty']) await expect(help).toContainText(word)

  // fresh ∪ stale: a stale bitmap takes part in the algebra, but the union cannot be saved.
  const panel = page.getByRole('region', { name: 'Compare bitmaps' })
  await panel.getByLabel('A', { exact: true }).selectOption({ label: fresh })
  await panel.getByLabel('B', { exact: true }).selectOption({ label: `${stale} (stale: in use)` })
  await panel.getByRole('radio', { name: /A ∪ B/ }).check()
  await panel.getByRole('button', { name: 'Compare' }).click()
  await expect(panel.getByTestId('algebra-totals')).toHaveAttribute('data-bytes', /\d/)
  // the union of the fresh bitmap's extents (QEMU's view) is contained in the result
  const freshBytes = nbdDirty(image, fresh).reduce((n, e) => n + e.length, 0)
  expect(Number(await panel.getByTestId('algebra-totals').getAttribute('data-bytes'))).toBeGreaterThanOrEqual(freshBytes)
  await expect(panel.getByTestId('algebra-save-note')).toContainText('cannot be merged')
})

function cpXml(name: string, time: number, disks: string, source = '/var/lib/libvirt/images/in-use-mixed.qcow2'): string {
  return `<domaincheckpoint>
  <name>${name}</name>
  <creationTime>${time}</creationTime>
  <disks>
    ${disks}
  </disks>
  <domain type='kvm'><name>vm</name><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${source}'/><target dev='vda' bus='virtio'/></disk></devices></domain>
</domaincheckpoint>
`
}

test('checkpoint XML: healthy, in use, missing and orphan bitmaps with their fixes', async ({ page }) => {
  const src = join(TESTDATA_IMAGES, 'in-use-mixed.qcow2')
  const image = join(dir.path, 'in-use-mixed.qcow2')
  copyFileSync(src, image)
  const bm = qemuBitmaps(image)
  const inUse = bm.find((b) => b.flags.includes('in-use'))!.name
  const fresh = bm.find((b) => !b.flags.includes('in-use'))!.name
  const files = [
    ['cp1.xml', cpXml('cp1', 1000, `<disk name='vda' checkpoint='bitmap' bitmap='${fresh}'/>`)],
    ['cp2.xml', cpXml('cp2', 2000, `<disk name='vda' checkpoint='bitmap' bitmap='${inUse}'/>`)],
    ['cp3.xml', cpXml('cp3', 3000, `<disk name='vda' checkpoint='bitmap'/>`)],
  ].map(([n, x]) => { const f = join(dir.path, n!); writeFileSync(f, x!); return f })

  await page.goto('./')
  // image and checkpoint files in one drop
  await syntheticDropMany(page, [image, ...files])
  await waitForScans(page, 2)
  const panel = page.getByRole('region', { name: 'Checkpoints' })
  const disk = panel.locator('.cp-disk[data-disk="vda"]')
  await expect(disk).toContainText('in-use-mixed.qcow2')
  await expect(disk).toContainText('its source file name')
  const states = async (): Promise<string[][]> => disk.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.getAttribute('data-checkpoint') ?? '', tr.getAttribute('data-bitmap') ?? '', tr.getAttribute('data-state') ?? '']))
  await expect.poll(states).toEqual([['cp1', fresh, 'healthy'], ['cp2', inUse, 'in-use'], ['cp3', 'cp3', 'missing']])
  await expect(disk.locator('tr[data-state="missing"]')).toContainText('Next backup must be full')
  await disk.locator('tr[data-state="in-use"]').getByRole('button', { name: /Stage clear in_use/ }).click()
  const pending = page.getByRole('region', { name: 'Changes' }).getByRole('list', { name: 'Pending changes' }).getByRole('listitem')
  await expect(pending).toHaveCount(1)
  await expect(pending.first()).toContainText(`Clear in_use on '${inUse}'`)

  // Without cp2, the in-use bitmap is an orphan: offer its removal.
  await panel.getByLabel('Load checkpoint XML…').setInputFiles([files[0]!, files[2]!])
  await expect.poll(states).toEqual([['cp1', fresh, 'healthy'], ['cp3', 'cp3', 'missing'], ['', inUse, 'orphan']])
  await disk.locator('tr[data-state="orphan"]').getByRole('button', { name: 'Stage removal' }).click()
  await expect(pending).toHaveCount(2)
  await expect(pending.nth(1)).toContainText(`Remove bitmap '${inUse}'`)

  // Not a checkpoint: named, and the others still checked.
  const bad = join(dir.path, 'bad.xml')
  writeFileSync(bad, '<domain/>')
  await panel.getByLabel('Load checkpoint XML…').setInputFiles([bad, files[0]!])
  await expect(panel).toContainText('bad.xml')
  await expect(panel).toContainText('not a libvirt checkpoint')
  await expect.poll(states).toEqual([['cp1', fresh, 'healthy'], ['', inUse, 'orphan']])
})

test('several files dropped: the backing chain, each layer\'s bitmaps, and allocation through the chain', async ({ page }) => {
  const overlay = join(TESTDATA_IMAGES, 'backing-overlay.qcow2')
  const base = join(TESTDATA_IMAGES, 'backing-base.qcow2')
  await page.goto('./')
  await syntheticDropMany(page, [base, overlay]) // base first: the app finds the top itself
  const chain = page.getByTestId('chain')
  await expect(chain.locator('li.chain-layer')).toHaveCount(2)
  await expect(chain.locator('li.chain-layer').nth(0)).toHaveAttribute('data-image', 'backing-overlay.qcow2')
  await expect(chain.locator('li.chain-layer').nth(1)).toHaveAttribute('data-image', 'backing-base.qcow2')
  for (const [i, p] of [[0, overlay], [1, base]] as const) {
    for (const b of qemuBitmaps(p)) await expect(chain.locator('li.chain-layer').nth(i)).toContainText(b.name)
  }
  await expect(page.getByTestId('current-file')).toContainText('backing-overlay.qcow2')
  const names = qemuBitmaps(overlay)
  await waitForScans(page, names.length)

  // The overlay of the top image, through its backing file, equals qemu-img map of the chain.
  const bm = names[0]!.name
  await select(page, bm)
  await page.getByText('Dirty × allocation', { exact: true }).click()
  const dirty = nbdDirty(overlay, bm)
  const map = qemuMap(overlay)
  expect(map.some((m) => m.depth === 1 && m.data)).toBe(true) // some data really comes from the base
  const want = splitByMap(dirty, map)
  const tot = await overlayTotals(page)
  expect({ data: tot.data, zero: tot.zero, unallocated: tot.unallocated }).toEqual({ data: want.data, zero: want.zero, unallocated: want.unallocated })
  await expect(page.getByTestId('heat-canvas-layers')).toHaveAttribute('aria-label', /backing-overlay\.qcow2 → backing-base\.qcow2/)

  // Switch to the base layer: its own bitmaps.
  await page.getByRole('button', { name: 'Show backing-base.qcow2' }).click()
  await expect(page.getByTestId('current-file')).toContainText('backing-base.qcow2')
  await waitForScans(page, qemuBitmaps(base).length)
  const baseBm = qemuBitmaps(base)[0]!.name
  await expect(page.locator(`tr[data-bitmap="${baseBm}"] td[data-col="dirty-exact"]`))
    .toHaveText(nbdDirty(base, baseBm).reduce((n, e) => n + e.length, 0).toLocaleString('en-US'))
})

test.describe('accessibility of the analysis views', () => {
  // axe is injected as an inline script, which the app's CSP forbids: bypass it for this check only.
  test.use({ bypassCSP: true })
  for (const scheme of ['light', 'dark'] as const) {
    test(`axe: overlay, comparison, checkpoints and chain (${scheme})`, async ({ page }) => {
      await page.emulateMedia({ colorScheme: scheme })
      const image = join(dir.path, `a11y-${scheme}.qcow2`)
      copyFileSync(join(TESTDATA_IMAGES, 'in-use-mixed.qcow2'), image)
      const xml = join(dir.path, `a11y-${scheme}.xml`)
      writeFileSync(xml, cpXml('cp1', 1, `<disk name='vda' checkpoint='bitmap' bitmap='fresh'/>`, image))
      await page.goto('./')
      await syntheticDropMany(page, [image, xml, join(TESTDATA_IMAGES, 'backing-base.qcow2')])
      await waitForScans(page, 2)
      await expect(page.getByRole('region', { name: 'Checkpoints' }).locator('tbody tr')).not.toHaveCount(0)
      await page.getByText('Dirty × allocation', { exact: true }).click()
      await expect(page.getByTestId('overlay-totals')).toHaveAttribute('data-dirty-data', /\d/)
      const panel = page.getByRole('region', { name: 'Compare bitmaps' })
      await panel.getByRole('button', { name: 'Compare' }).click()
      await expect(panel.getByTestId('algebra-totals')).toBeVisible()
      await expect(page.getByRole('region', { name: /Open images/ })).toBeVisible()
      // keyboard: the mode switch and the operation radios are reachable and operable
      await page.getByRole('radio', { name: 'Dirty', exact: true }).focus()
      await page.keyboard.press('ArrowRight')
      await expect(page.getByRole('radio', { name: 'Dirty × allocation' })).toBeChecked()
      await page.addScriptTag({ content: axe.source })
      const res = await page.evaluate(async () => {
        const r = await (window as unknown as { axe: { run: (c?: unknown) => Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: unknown }> }> }> } }).axe.run(document)
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target) }))
      })
      expect(res.filter((v) => v.impact === 'serious' || v.impact === 'critical')).toEqual([])
    })
  }
})
