/**
 * checkRequest against what a hostile page could send: every refusal names the method or the
 * argument, and the request id when there is one (so birpc can reject the one call); what
 * passes is exactly a known method with arguments of its shapes.
 */
import { describe, expect, it } from 'vitest'
import { ENGINE_METHODS } from '../transport/rpc.js'
import { checkRequest } from './validate.js'

const q = (m: string, a: unknown[], i: string | null = 'r1'): Record<string, unknown> => ({ t: 'q', ...(i !== null ? { i } : {}), m, a })

describe('checkRequest refuses', () => {
  it.each<[string, unknown, RegExp]>([
    ['not an object', 42, /malformed request/],
    ['null', null, /malformed request/],
    ['an array', [1, 2], /malformed request/],
    ['a response from the page', { t: 's', i: 'r1', r: 1 }, /malformed request/],
    ['an unknown key', { ...q('hostInfo', []), x: 1 }, /malformed request/],
    ['a method name that is not a string', q(42 as unknown as string, []), /malformed request/],
    ['a method name longer than 64', q('a'.repeat(65), []), /malformed request/],
    ['too many arguments in the list', q('hostInfo', new Array(9).fill(0)), /malformed request/],
    ['an id longer than 64', q('hostInfo', [], 'x'.repeat(65)), /malformed request/],
    ['an unknown method', q('readFile', ['/etc/passwd']), /unknown method 'readFile'/],
    ['__proto__', q('__proto__', []), /unknown method '__proto__'/],
    ['constructor', q('constructor', []), /unknown method 'constructor'/],
    ['toString', q('toString', []), /unknown method 'toString'/],
    ['hasOwnProperty', q('hasOwnProperty', []), /unknown method 'hasOwnProperty'/],
    ['more arguments than the method takes', q('hostInfo', [1]), /hostInfo: expected at most 0 arguments, got 1/],
    ['a file source', q('open', [{ kind: 'file', file: {} }]), /open: /],
    ['a URL source', q('open', [{ kind: 'url', url: 'file:///etc/passwd', name: 'x' }]), /open: /],
    ['a handle source', q('open', [{ kind: 'handle', handle: {} }]), /open: /],
    ['a host source with a path field', q('open', [{ kind: 'host', id: 'abc', path: '/etc/passwd' }]), /open: /],
    ['a host source without an id', q('open', [{ kind: 'host' }]), /open: /],
    ['a host id of 129 characters', q('open', [{ kind: 'host', id: 'a'.repeat(129) }]), /open: /],
    ['a number where an index goes', q('scan', ['0']), /scan: /],
    ['a negative index', q('scan', [-1]), /scan: /],
    ['a fractional index', q('scan', [0.5]), /scan: /],
    ['an offset above 2^53', q('heatmap', [0, 0, 2 ** 60, 10]), /heatmap: /],
    ['zero heatmap cells', q('heatmap', [0, 0, 100, 0]), /heatmap: /],
    ['2^23 heatmap cells', q('heatmap', [0, 0, 100, 2 ** 23]), /heatmap: /],
    ['an extent page of 2^25', q('extentPage', [0, 0, 2 ** 25]), /extentPage: /],
    ['an edit of an unknown op', q('planEdits', [{ edits: [{ op: 'format', name: 'x' }] }]), /planEdits: /],
    ['an edit with an extra field', q('planEdits', [{ edits: [{ op: 'remove', name: 'x', path: '/x' }] }]), /planEdits: /],
    ['a copy without its new name', q('planEdits', [{ edits: [{ op: 'copy', name: 'x' }] }]), /planEdits: /],
    ['257 edits', q('planEdits', [{ edits: new Array(257).fill({ op: 'remove', name: 'x' }) }]), /planEdits: /],
    ['an empty bitmap name', q('planEdits', [{ edits: [{ op: 'add', name: '' }] }]), /planEdits: /],
    ['a granularity below 512', q('planEdits', [{ edits: [{ op: 'add', name: 'x', granularity: 256 }] }]), /planEdits: /],
    ['an unknown repair', q('planEdits', [{ edits: [], repair: 'rm-rf' }]), /planEdits: /],
    ['a plan id that is a string', q('commitPlan', ['1']), /commitPlan: /],
    ['257 checkpoint files', q('checkpoints', [new Array(257).fill({ name: 'a', text: '' })]), /checkpoints: /],
    ['a checkpoint text over 4 MiB', q('checkpoints', [[{ name: 'a', text: 'x'.repeat((4 << 20) + 1) }]]), /checkpoints: /],
    ['a set of 65 sources', q('openSet', [new Array(65).fill({ kind: 'host', id: 'a' })]), /openSet: /],
    ['a cancel of a string', q('cancel', ['all']), /cancel: /],
  ])('%s', (_what, msg, message) => {
    const r = checkRequest(msg)
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.message).toMatch(message)
    const id = msg && typeof msg === 'object' && !Array.isArray(msg) ? (msg as { i?: unknown }).i : undefined
    if (typeof id === 'string' && id.length <= 64) expect(r.id).toBe(id)
    else expect(r.id).toBeUndefined()
  })

  it('a request without an id (a call nobody waits for, which no limit would count)', () => {
    const r = checkRequest(q('hostCheck', ['abc'], null))
    expect(r.ok).toBe(false)
  })
})

describe('checkRequest passes', () => {
  it.each<[string, unknown[]]>([
    ['hostInfo', []],
    ['hostOverview', [3]],
    ['open', [{ kind: 'host', id: '0123456789abcdef', name: 'a.qcow2' }, 1]],
    ['open', [{ kind: 'host', id: '0123456789abcdef' }]],
    ['scan', [0, 7]],
    ['heatmap', [0, 0, 2 ** 40, 4096, 9]],
    ['planEdits', [{ edits: [{ op: 'add', name: 'n', granularity: 65536 }, { op: 'merge', name: 'n', source: 'a' }] }, 2]],
    ['planEdits', [{ edits: [], repair: 'retrust' }]],
    ['planEdits', [{ edits: [{ op: 'copy', name: 'a', newName: 'a2' }, { op: 'set-ranges', name: 'a2', resultId: 3, what: 'a ∖ b' }, { op: 'merge', name: 'a', source: 's', sourceImageId: 2 }] }]],
    ['commitPlan', [1, 5]],
    ['cancel', [7]],
  ])('%s %j, padding left-out optional arguments', (m, a) => {
    const r = checkRequest(q(m, a))
    expect(r.ok, r.ok ? '' : r.message).toBe(true)
    if (!r.ok) return
    expect(r.msg.m).toBe(m)
    expect(r.msg.i).toBe('r1')
    expect(r.msg.a.slice(0, a.length)).toEqual(a)
  })

  it('every method of the API has a rule', () => {
    for (const m of ENGINE_METHODS) expect(checkRequest(q(m, [])).ok ? 'ok' : (checkRequest(q(m, [])) as { message: string }).message).not.toMatch(/unknown method/)
  })
})
