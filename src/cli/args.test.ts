import { describe, expect, it } from 'vitest'
import { parseArgs } from './args.js'

const spec = {
  add: { repeat: true }, merge: { value: true, repeat: true }, rename: { value: true, repeat: true },
  granularity: { value: true, alias: 'g' }, force: {},
}

describe('parseArgs (node:util tokens, qbm\'s checks)', () => {
  it('keeps options in command-line order, with short forms, attached and inline values, and positionals anywhere', () => {
    const p = parseArgs(['--merge', 's', 'img', '-g512', '--add', '--rename=n', 'bm', '--merge', '--add'], spec)
    expect(p.ordered).toEqual([['merge', 's'], ['granularity', '512'], ['add', undefined], ['rename', 'n'], ['merge', '--add']])
    expect(p.positional).toEqual(['img', 'bm'])
    expect(p.opts.get('merge')).toEqual(['s', '--add'])
  })

  it('takes everything after -- as positional', () => {
    expect(parseArgs(['--', '--add', '-'], spec).positional).toEqual(['--add', '-'])
  })

  it.each([
    [['--frobnicate'], "unknown option '--frobnicate'"],
    [['-x'], "unknown option '-x'"],
    [['img', '--rename'], "option '--rename' needs a value"],
    [['--add=yes'], "option '--add' takes no value"],
    [['-g', '1', '--granularity', '2'], "option '--granularity' given twice"],
  ])('%j is refused: %s', (argv, message) => {
    expect(() => parseArgs(argv, spec)).toThrow(message)
  })
})
