import { describe, expect, it } from 'vitest'
import { XmlError, parseCheckpointXml } from './checkpoints.js'
import { requireTool, run } from '../../test-support/tools.js'

const XML = `<domaincheckpoint>
  <name>1525889631</name>
  <description>after updates</description>
  <creationTime>1525889631</creationTime>
  <parent><name>1525111885</name></parent>
  <disks>
    <disk name='vda' checkpoint='bitmap' bitmap='backup-&amp;-1'/>
    <disk name='vdb' checkpoint='no'/>
    <disk name='vdc' checkpoint='bitmap'/>
  </disks>
  <domain type='kvm'><name>guest</name>
    <devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/root.qcow2'/><target dev='vda' bus='virtio'/></disk>
    </devices>
  </domain>
</domaincheckpoint>`

describe('parseCheckpointXml', () => {
  it('reads name, parent, time and disks, defaulting the bitmap to the checkpoint name', () => {
    const cp = parseCheckpointXml(XML)
    expect(cp.name).toBe('1525889631')
    expect(cp.parent).toBe('1525111885')
    expect(cp.creationTime).toBe(1525889631)
    expect(cp.disks).toEqual([
      { name: 'vda', checkpoint: 'bitmap', bitmap: 'backup-&-1', source: '/var/lib/libvirt/images/root.qcow2' },
      { name: 'vdb', checkpoint: 'no' },
      { name: 'vdc', checkpoint: 'bitmap', bitmap: '1525889631' },
    ])
  })
  it('rejects documents that are not checkpoints', () => {
    expect(() => parseCheckpointXml('<domain><name>x</name></domain>')).toThrow(/domaincheckpoint/)
    expect(() => parseCheckpointXml('<domaincheckpoint><disks/></domaincheckpoint>')).toThrow(/name/)
  })
})

// The reference: Python's xml.etree.ElementTree writes checkpoint files (escaping as XML
// requires); qbm must read back exactly the names it wrote.
const PY_WRITER = String.raw`
import json, sys, xml.etree.ElementTree as ET
names = json.loads(sys.stdin.read())
out = []
for i, n in enumerate(names):
    root = ET.Element('domaincheckpoint')
    ET.SubElement(root, 'name').text = n['cp']
    ET.SubElement(ET.SubElement(root, 'parent'), 'name').text = n['parent']
    ET.SubElement(root, 'creationTime').text = str(1700000000 + i)
    disks = ET.SubElement(root, 'disks')
    ET.SubElement(disks, 'disk', {'name': n['disk'], 'checkpoint': 'bitmap', 'bitmap': n['bitmap']})
    ET.SubElement(disks, 'disk', {'name': 'vdz', 'checkpoint': 'bitmap'})
    dom = ET.SubElement(root, 'domain', {'type': 'kvm'})
    d = ET.SubElement(ET.SubElement(dom, 'devices'), 'disk', {'type': 'file', 'device': 'disk'})
    ET.SubElement(d, 'source', {'file': n['source']})
    ET.SubElement(d, 'target', {'dev': n['disk']})
    out.append(ET.tostring(root, encoding='unicode'))
print(json.dumps(out))
`

describe('parseCheckpointXml against a reference writer', () => {
  it('reads back exactly the names xml.etree.ElementTree wrote', () => {
    requireTool('python3')
    const weird = ['a&b', '<tag>', `q"uo'te`, 'naïve-日本-😀', '  spaced  ', 'amp&amp;literal', 'line\nbreak', 'tab\there', ']]>']
    const cases = weird.map((w, i) => ({ cp: `cp ${w}`, parent: `p${i} ${w}`, bitmap: `bm-${w}`, disk: `vd${w}`, source: `/images/${w}.qcow2` }))
    const r = run('python3', ['-c', PY_WRITER], { input: JSON.stringify(cases) })
    expect(r.stderr).toBe('')
    const docs = JSON.parse(r.stdout) as string[]
    expect(docs.length).toBe(cases.length)
    docs.forEach((xml, i) => {
      const c = cases[i]!
      const cp = parseCheckpointXml(xml)
      expect(cp.name).toBe(c.cp)
      expect(cp.parent).toBe(c.parent)
      expect(cp.creationTime).toBe(1700000000 + i)
      expect(cp.disks).toEqual([
        { name: c.disk, checkpoint: 'bitmap', bitmap: c.bitmap, source: c.source },
        { name: 'vdz', checkpoint: 'bitmap', bitmap: c.cp },
      ])
    })
  })
  it('unescapes character references as well as the predefined entities', () => {
    const cp = parseCheckpointXml(`<?xml version="1.0"?>\n<!-- written by libvirt -->\n<domaincheckpoint><name>a&#38;b&#x26;c&amp;d&lt;&gt;&quot;&apos;</name>` +
      `<disks><disk name="vda" bitmap="x&#x26;&#38;y"/></disks></domaincheckpoint>`)
    expect(cp.name).toBe(`a&b&c&d<>"'`)
    expect(cp.disks).toEqual([{ name: 'vda', checkpoint: 'bitmap', bitmap: 'x&&y' }])
  })
  it('names line and column of malformed XML', () => {
    const bad = '<domaincheckpoint>\n  <name>x</nam>\n</domaincheckpoint>'
    expect(() => parseCheckpointXml(bad)).toThrow(XmlError)
    try {
      parseCheckpointXml(bad)
    } catch (e) {
      expect((e as XmlError).line).toBe(2)
      expect((e as XmlError).message).toMatch(/^malformed XML at line 2, column \d+: /)
    }
    expect(() => parseCheckpointXml('<domaincheckpoint><name>a&b</name></domaincheckpoint>')).toThrow(/line 1, column \d+/)
    expect(() => parseCheckpointXml('<domaincheckpoint><name>x</name>')).toThrow(XmlError)
    expect(() => parseCheckpointXml('')).toThrow(XmlError)
  })
  it('expands no DTD entities (no entity bombs)', () => {
    const bomb = '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><domaincheckpoint><name>&b;</name></domaincheckpoint>'
    expect(() => parseCheckpointXml(bomb)).toThrow(/undefined entity|line 1/)
  })
})
