// qbm checkpoints: libvirt checkpoint XML cross-checked against a QEMU-made image whose
// writer was killed (one bitmap in use, one consistent); qemu-img info is the reference for
// which bitmaps exist and which are in use.
import { describe, expect, it } from 'vitest'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TESTDATA, qbm, qemuImg, tempDir } from '../test-support/tools.js'

function cpXml(name: string, time: number, disks: string): string {
  return `<domaincheckpoint><name>${name}</name><creationTime>${time}</creationTime><disks>${disks}</disks>
<domain type='kvm'><name>vm</name><devices><disk type='file' device='disk'><source file='/images/in-use-mixed.qcow2'/><target dev='vda'/></disk></devices></domain></domaincheckpoint>`
}

describe('qbm checkpoints', () => {
  it('classifies each checkpoint bitmap as QEMU sees it and lists orphans', () => {
    const img = join(TESTDATA, 'images', 'in-use-mixed.qcow2')
    const info = JSON.parse(qemuImg(['info', '--output=json', '-U', img]).stdout)
    const bitmaps: Array<{ name: string; flags: string[] }> = info['format-specific'].data.bitmaps
    const inUse = bitmaps.find((b) => b.flags.includes('in-use'))!.name
    const fresh = bitmaps.find((b) => !b.flags.includes('in-use'))!.name
    const t = tempDir()
    try {
      const files = [
        cpXml('cp1', 1, `<disk name='vda' checkpoint='bitmap' bitmap='${fresh}'/>`),
        cpXml('cp2', 2, `<disk name='vda' checkpoint='bitmap' bitmap='${inUse}'/>`),
        cpXml('cp3', 3, `<disk name='vda' checkpoint='bitmap'/>`),
      ].map((x, i) => { const f = join(t.path, `cp${i}.xml`); writeFileSync(f, x); return f })
      const r = qbm(['checkpoints', img, ...files.flatMap((f) => ['--libvirt-xml', f]), '--output=json'])
      expect(r.stderr).toBe('')
      expect(r.code).toBe(2) // something needs attention
      const rep = JSON.parse(r.stdout)
      expect(rep.disk).toBe('vda') // matched through the domain's <source file>
      expect(rep.findings.map((f: { checkpoint: string; state: string }) => [f.checkpoint, f.state])).toEqual([
        ['cp1', 'healthy'], ['cp2', 'in-use'], ['cp3', 'missing'],
      ])
      expect(rep.orphans).toEqual([])
      const only = qbm(['checkpoints', img, '--libvirt-xml', files[0]!])
      expect(only.code).toBe(0)
      expect(only.stdout).toMatch(new RegExp(`${inUse}\\s+ORPHAN`))
    } finally {
      t.cleanup()
    }
  })
  it('adds its own commands to the engine\'s plain-words fixes, and asks for --disk when it cannot tell the disk', () => {
    const img = join(TESTDATA, 'images', 'in-use-mixed.qcow2')
    const info = JSON.parse(qemuImg(['info', '--output=json', '-U', img]).stdout)
    const inUse = (info['format-specific'].data.bitmaps as Array<{ name: string; flags: string[] }>).find((b) => b.flags.includes('in-use'))!.name
    const t = tempDir()
    try {
      const f = join(t.path, 'cp.xml')
      writeFileSync(f, cpXml('cp2', 2, `<disk name='vda' checkpoint='bitmap' bitmap='${inUse}'/>`))
      const human = qbm(['checkpoints', img, '--libvirt-xml', f])
      expect(human.stdout).toContain(`(qbm bitmap --clear-in-use=dirty --force ${img} ${inUse})`)
      const json = JSON.parse(qbm(['checkpoints', img, '--libvirt-xml', f, '--output=json']).stdout)
      expect(json.findings[0].fix).not.toMatch(/--|qbm /) // the engine's words name no tool
      // Two disks with bitmaps, neither this file: the engine refuses to guess, the CLI names its flag.
      const g = join(t.path, 'two.xml')
      writeFileSync(g, `<domaincheckpoint><name>c</name><disks><disk name='vda' checkpoint='bitmap' bitmap='x'/><disk name='vdb' checkpoint='bitmap' bitmap='y'/></disks></domaincheckpoint>`)
      const two = qbm(['checkpoints', img, '--libvirt-xml', g])
      expect(two.code).toBe(1)
      expect(two.stderr).toMatch(/cannot tell which disk this image is \(vda, vdb\): name it with --disk/)
    } finally {
      t.cleanup()
    }
  })
  it('names the bad file when the XML is not a checkpoint', () => {
    const t = tempDir()
    try {
      const f = join(t.path, 'x.xml')
      writeFileSync(f, '<domain/>')
      const r = qbm(['checkpoints', join(TESTDATA, 'images', 'in-use-mixed.qcow2'), '--libvirt-xml', f])
      expect(r.code).toBe(1)
      expect(r.stderr).toContain('x.xml: not a libvirt checkpoint')
    } finally {
      t.cleanup()
    }
  })
})
