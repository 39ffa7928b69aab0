/** axe-core in the page: the serious and critical accessibility violations of what it shows. */
import type { Page } from '@playwright/test'
import axe from 'axe-core'

export interface AxeViolation { id: string; impact: string | null; help: string; nodes: Array<{ target: unknown }> }

/** Run axe on the whole document and keep the serious and critical findings. */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ content: axe.source })
  const res = await page.evaluate(async () => {
    const r = await (window as unknown as { axe: { run: (c?: unknown) => Promise<{ violations: AxeViolation[] }> } }).axe.run(document)
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }))
  })
  return res.filter((v) => v.impact === 'serious' || v.impact === 'critical')
}
