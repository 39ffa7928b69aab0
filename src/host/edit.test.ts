/**
 * The in-place edit path and QEMU's locks (issue 9, "QEMU's image locks"), with real QEMU
 * processes holding a copy of an image: qemu-nbd read-write and read-only (-r).
 * - `qbm bitmap --add`, with and without --force, refuses naming qemu-nbd and its pid, and the
 *   file stays byte-identical; reads work and say the image is held; once qemu-nbd has exited
 *   the edit succeeds and `qemu-img check` is clean.
 * - The check right before the first write: qemu-nbd starts holding the image after the plan
 *   was made (inside the planning callback), and the commit refuses without writing.
 * - commitInPlace: a plan made from a read-only open commits later only onto the same file in
 *   the same state (also on a loop device, whose times do not change), and not while held.
 */
import { copyFileSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openImage, planEdits } from '../engine/index.js'
import { NodeFileDevice } from '../io/node-file.js'
import { buildImage } from '../test-support/edit-images.js'
import { checkImage, mustTool, qemuInfo, sha256File } from '../test-support/edit-oracle.js'
import { type Holder, attachLoop, padTo, roundUp, startQemuNbd } from '../test-support/host.js'
import { qbm, requireTool, tempDir } from '../test-support/tools.js'
import { ImageHeldError, StalePlanError, commitInPlace, editInPlace, identityOf } from './edit.js'

const KiB = 1024
const MiB = 1024 * KiB

const tmp = tempDir('qbm-host-edit-')
afterAll(() => tmp.cleanup())
let master: string
let n = 0

beforeAll(async () => {
  requireTool('qemu-nbd')
  master = (await buildImage(join(tmp.path, 'master'), {
    name: 'img.qcow2', size: 64 * MiB, clusterSize: 64 * KiB,
    bitmaps: [{ name: 'a', granularity: 4 * KiB, writes: [[0, 4096], [10 * MiB, 5000]] }, { name: 'b', granularity: 64 * KiB }],
  })).path
})

function fresh(): string {
  const dir = join(tmp.path, `w${++n}`)
  mkdirSync(dir, { recursive: true })
  const p = join(dir, 'img.qcow2')
  copyFileSync(master, p)
  return p
}

const names = (p: string): string[] => qemuInfo(p).bitmaps.map((b) => b.name)

describe('an image held by qemu-nbd', () => {
  for (const readOnly of [false, true]) {
    it(`${readOnly ? 'read-only (-r)' : 'read-write'}: edits refused with and without --force, reads labelled; after it exits the edit works`, () => {
      const img = fresh()
      const nbd = startQemuNbd(img, tmp.path, { readOnly })
      try {
        const before = sha256File(img)
        for (const force of [[], ['--force']]) {
          const r = qbm(['bitmap', '--add', ...force, img, 'x'])
          expect(r.code, r.stderr).toBe(1)
          const lines = r.stderr.split('\n').filter((l) => l !== '')
          expect(lines, r.stderr).toHaveLength(1)
          expect(lines[0]).toContain(`qbm: ${img}: open in qemu-nbd (pid ${nbd.pid})${readOnly ? ', read-only' : ''}: editing an image QEMU has open corrupts it`)
          expect(lines[0]).toContain('--force does not override this')
          expect(sha256File(img), 'the image changed').toBe(before)
        }
        const human = qbm(['info', img])
        expect(human.code, human.stderr).toBe(0)
        expect(human.stdout).toContain(`open in qemu-nbd (pid ${nbd.pid})${readOnly ? ', read-only' : ''}: the live bitmaps are in QEMU's memory; the file holds the last saved ones\n`)
        const json = JSON.parse(qbm(['info', '--output=json', img]).stdout) as { heldBy: unknown; bitmaps: unknown[] }
        expect(json.heldBy).toEqual({ pid: nbd.pid, program: 'qemu-nbd', write: !readOnly, lockBytes: expect.arrayContaining([100, 201]) })
        expect(json.bitmaps).toHaveLength(2)
        for (const cmd of [['map', img, 'a'], ['heatmap', img, 'a', '--cells', '4']]) {
          const m = qbm(cmd)
          expect(m.code, m.stderr).toBe(0)
          expect(m.stderr).toContain(`qbm: warning: ${img}: open in qemu-nbd (pid ${nbd.pid})`)
        }
      } finally {
        nbd.stop()
      }
      const free = JSON.parse(qbm(['info', '--output=json', img]).stdout) as { heldBy: unknown }
      expect(free.heldBy).toBeNull()
      const r = qbm(['bitmap', '--add', img, 'x'])
      expect(r.code, r.stderr).toBe(0)
      expect(checkImage(img).code).toBe(0)
      expect(names(img)).toEqual(['a', 'b', 'x'])
    })
  }
})

describe('the lock check right before the first write', () => {
  it('fires when QEMU opens the image between the plan and the commit', async () => {
    const img = fresh()
    const before = sha256File(img)
    let nbd: Holder | undefined
    try {
      const p = editInPlace(img, async (image) => {
        const plan = await planEdits(image, [{ op: 'add', name: 'x' }])
        // The check before planning has passed; QEMU takes the image now.
        nbd = startQemuNbd(img, tmp.path, { readOnly: true })
        return plan
      })
      const e = await p.then(() => undefined, (x: unknown) => x)
      expect(e).toBeInstanceOf(ImageHeldError)
      expect((e as ImageHeldError).holder.pid).toBe(nbd!.pid)
      expect(sha256File(img), 'the image changed').toBe(before)
    } finally {
      nbd?.stop()
    }
    await editInPlace(img, (image) => planEdits(image, [{ op: 'add', name: 'x' }]))
    expect(checkImage(img).code).toBe(0)
    expect(names(img)).toEqual(['a', 'b', 'x'])
  })
})

/** Plan from a read-only open, as the server does: the plan and the identity it was made from. */
async function planReadOnly(path: string, name: string): Promise<{ plan: Awaited<ReturnType<typeof planEdits>>; expect: Awaited<ReturnType<typeof identityOf>> }> {
  const dev = NodeFileDevice.open(path, 'r')
  try {
    const img = await openImage(dev)
    return { expect: await identityOf(dev, img), plan: await planEdits(img, [{ op: 'add', name }]) }
  } finally {
    dev.close()
  }
}

describe('commitInPlace: a reviewed plan commits later, onto the file it was made from', () => {
  it('commits onto the unchanged file (with progress), and refuses the same plan a second time', async () => {
    const img = fresh()
    const { plan, expect: id } = await planReadOnly(img, 'x')
    const progress: number[] = []
    await commitInPlace(img, plan, { expect: id, onProgress: (done) => progress.push(done) })
    expect(progress.length).toBeGreaterThan(0)
    expect(checkImage(img).code).toBe(0)
    expect(names(img)).toEqual(['a', 'b', 'x'])
    const after = sha256File(img)
    await expect(commitInPlace(img, plan, { expect: id })).rejects.toThrow(StalePlanError)
    expect(sha256File(img)).toBe(after)
  })

  it('refuses when another tool edited the image in between', async () => {
    const img = fresh()
    const { plan, expect: id } = await planReadOnly(img, 'x')
    mustTool('qemu-img', ['bitmap', '--add'], img, ['y'])
    const edited = sha256File(img)
    await expect(commitInPlace(img, plan, { expect: id })).rejects.toThrow(/the image changed since the edit was planned/)
    expect(sha256File(img)).toBe(edited)
    expect(checkImage(img).code).toBe(0)
  })

  it('refuses when the path names another file now', async () => {
    const img = fresh()
    const { plan, expect: id } = await planReadOnly(img, 'x')
    copyFileSync(master, `${img}.new`)
    mustTool('mv', [`${img}.new`], img)
    await expect(commitInPlace(img, plan, { expect: id })).rejects.toThrow(/the path names another file now/)
  })

  it('refuses while QEMU holds the image, commits once it has exited', async () => {
    const img = fresh()
    const { plan, expect: id } = await planReadOnly(img, 'x')
    const nbd = startQemuNbd(img, tmp.path, { readOnly: true })
    try {
      const before = sha256File(img)
      await expect(commitInPlace(img, plan, { expect: id })).rejects.toThrow(`open in qemu-nbd (pid ${nbd.pid}), read-only`)
      expect(sha256File(img)).toBe(before)
    } finally {
      nbd.stop()
    }
    await commitInPlace(img, plan, { expect: id })
    expect(checkImage(img).code).toBe(0)
    expect(names(img)).toEqual(['a', 'b', 'x'])
  })

  it('on a loop device, a change made through the device is caught by the metadata digest', async () => {
    const file = fresh()
    padTo(file, roundUp(statSync(file).size, 64 * KiB) + MiB)
    const loop = attachLoop(file)
    try {
      const { plan, expect: id } = await planReadOnly(loop.dev, 'x')
      mustTool('qemu-img', ['bitmap', '--add'], loop.dev, ['y'])
      await expect(commitInPlace(loop.dev, plan, { expect: id })).rejects.toThrow(/its metadata changed/)
      expect(checkImage(loop.dev).code).toBe(0)
      const again = await planReadOnly(loop.dev, 'x')
      await commitInPlace(loop.dev, again.plan, { expect: again.expect })
      expect(checkImage(loop.dev).code).toBe(0)
      expect(names(loop.dev)).toEqual(['a', 'b', 'x', 'y'])
    } finally {
      loop.detach()
    }
  })
})
