/** A small qemu-img style argument parser: --opt=value, --opt value, -x value, flags, positionals. */

export interface OptionSpec {
  /** takes a value */
  value?: boolean
  /** may repeat (values collected in order) */
  repeat?: boolean
  alias?: string
}

export interface Parsed {
  opts: Map<string, string[]>
  /** every option in command-line order, for order-sensitive commands */
  ordered: Array<[string, string | undefined]>
  positional: string[]
}

export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export function parseArgs(argv: string[], spec: Record<string, OptionSpec>): Parsed {
  const aliases = new Map<string, string>()
  for (const [k, v] of Object.entries(spec)) if (v.alias) aliases.set(v.alias, k)
  const opts = new Map<string, string[]>()
  const ordered: Array<[string, string | undefined]> = []
  const positional: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') { positional.push(...argv.slice(i + 1)); break }
    if (!a.startsWith('-') || a === '-') { positional.push(a); continue }
    let name: string
    let val: string | undefined
    if (a.startsWith('--')) {
      const eq = a.indexOf('=')
      name = eq >= 0 ? a.slice(2, eq) : a.slice(2)
      if (eq >= 0) val = a.slice(eq + 1)
    } else {
      name = aliases.get(a.slice(1, 2)) ?? a.slice(1, 2)
      if (a.length > 2) val = a.slice(2)
    }
    const s = spec[name]
    if (!s) throw new UsageError(`unknown option '${a}'`)
    if (s.value && val === undefined) {
      val = argv[++i]
      if (val === undefined) throw new UsageError(`option '--${name}' needs a value`)
    }
    if (!s.value && val !== undefined && spec[name]?.value !== true) {
      // flags like --clear-in-use=keep declare value: true; others take none
      throw new UsageError(`option '--${name}' takes no value`)
    }
    const list = opts.get(name) ?? []
    if (list.length > 0 && !s.repeat) throw new UsageError(`option '--${name}' given twice`)
    list.push(val ?? '')
    opts.set(name, list)
    ordered.push([name, val])
  }
  return { opts, ordered, positional }
}

export function one(p: Parsed, name: string): string | undefined {
  return p.opts.get(name)?.[0]
}

export function has(p: Parsed, name: string): boolean {
  return p.opts.has(name)
}

export function outputFormat(p: Parsed): 'human' | 'json' {
  const o = one(p, 'output') ?? 'human'
  if (o !== 'human' && o !== 'json') throw new UsageError(`--output must be human or json (got '${o}')`)
  return o
}
