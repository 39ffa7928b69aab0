/**
 * libvirt checkpoint files as libvirt's QEMU driver writes them (checkpoint_conf.c
 * virDomainCheckpointDefFormat, saved by virXMLSaveFile with its warning comment), laid out as
 * qemu_checkpoint.c keeps them: DIR/DOMAIN/NAME.xml. For tests of the host scan and server.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** One checkpoint: its disks, and the domain's disk sources at the time (target -> path). */
export interface CheckpointSpec {
  domain: string
  name: string
  parent?: string
  creationTime: number
  disks: Array<{ name: string; checkpoint: 'bitmap' | 'no'; bitmap?: string }>
  sources: Record<string, { file?: string; dev?: string }>
}

/** virBufferEscapeString's escaping: & < > ' " */
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;')

/** The XML text of one checkpoint file. */
export function checkpointXml(c: CheckpointSpec): string {
  const L = [
    '<!--',
    'WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE',
    'OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:',
    `  virsh checkpoint-edit ${esc(c.domain)}`,
    'or other application using the libvirt API.',
    '-->',
    '',
    '<domaincheckpoint>',
    `  <name>${esc(c.name)}</name>`,
  ]
  if (c.parent) L.push('  <parent>', `    <name>${esc(c.parent)}</name>`, '  </parent>')
  L.push(`  <creationTime>${c.creationTime}</creationTime>`, '  <disks>')
  for (const d of c.disks) L.push(`    <disk name='${esc(d.name)}' checkpoint='${d.checkpoint}'${d.checkpoint === 'bitmap' ? ` bitmap='${esc(d.bitmap ?? c.name)}'` : ''}/>`)
  L.push('  </disks>', "  <domain type='kvm'>", `    <name>${esc(c.domain)}</name>`, '    <uuid>3b1f0a4e-6d1c-4c39-9a55-0c5a2f8f7e11</uuid>',
    "    <memory unit='KiB'>1048576</memory>", '    <os>', "      <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>", '    </os>', '    <devices>')
  for (const [target, src] of Object.entries(c.sources)) {
    const type = src.dev !== undefined ? 'block' : 'file'
    L.push(`      <disk type='${type}' device='disk'>`, "        <driver name='qemu' type='qcow2'/>",
      `        <source ${src.dev !== undefined ? `dev='${esc(src.dev)}'` : `file='${esc(src.file!)}'`}/>`,
      `        <target dev='${esc(target)}' bus='virtio'/>`, '      </disk>')
  }
  L.push('    </devices>', '  </domain>', '</domaincheckpoint>', '')
  return L.join('\n')
}

/** Write each checkpoint as DIR/DOMAIN/NAME.xml. */
export function writeCheckpointDir(dir: string, cps: CheckpointSpec[]): void {
  for (const c of cps) {
    mkdirSync(join(dir, c.domain), { recursive: true })
    writeFileSync(join(dir, c.domain, `${c.name}.xml`), checkpointXml(c))
  }
}
