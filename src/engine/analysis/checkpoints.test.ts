import { describe, expect, it } from 'vitest'
import { parseCheckpointXml } from './checkpoints.js'

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
