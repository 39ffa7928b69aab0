/**
 * qemu-img style arguments, tokenized by node:util's parseArgs (--opt=value, --opt value,
 * -x value, -xvalue, flags, positionals anywhere, `--`) and checked here with qbm's messages.
 * The tokens keep command-line order, which `qbm bitmap` needs: its actions apply in order.
 */
import { parseArgs as tokenize } from 'node:util'

/** One option of a command. */
export interface OptionSpec {
  /** takes a value */
  value?: boolean
  /** may repeat (values collected in order) */
  repeat?: boolean
  /** a one-letter short form: -g for --granularity */
  alias?: string
}

/** A parsed command line. */
export interface Parsed {
  opts: Map<string, string[]>
  /** every option in command-line order, for order-sensitive commands */
  ordered: Array<[string, string | undefined]>
  positional: string[]
}

/** A command line qbm cannot run: exit 1 with the message. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/** Parse `argv` against `spec`: unknown options, missing or extra values and repeats are UsageErrors. */
export function parseArgs(argv: string[], spec: Record<string, OptionSpec>): Parsed {
  const options = Object.fromEntries(Object.entries(spec).map(([name, s]) => [name, {
    type: s.value ? 'string' as const : 'boolean' as const,
    ...(s.alias ? { short: s.alias } : {}),
  }]))
  // Not strict: the checks below give qbm's (and qemu-img's) messages, by the tokens' fields.
  const { tokens } = tokenize({ args: argv, options, strict: false, allowPositionals: true, tokens: true })
  const opts = new Map<string, string[]>()
  const ordered: Array<[string, string | undefined]> = []
  const positional: string[] = []
  for (const t of tokens) {
    if (t.kind === 'positional') { positional.push(t.value); continue }
    if (t.kind !== 'option') continue // the `--` terminator
    const s = Object.hasOwn(spec, t.name) ? spec[t.name] : undefined
    if (!s) throw new UsageError(`unknown option '${t.rawName}'`)
    if (s.value && t.value === undefined) throw new UsageError(`option '--${t.name}' needs a value`)
    if (!s.value && t.value !== undefined) throw new UsageError(`option '--${t.name}' takes no value`)
    const list = opts.get(t.name) ?? []
    if (list.length > 0 && !s.repeat) throw new UsageError(`option '--${t.name}' given twice`)
    list.push(t.value ?? '')
    opts.set(t.name, list)
    ordered.push([t.name, t.value])
  }
  return { opts, ordered, positional }
}

/** The value of a single-valued option, when given. */
export function one(p: Parsed, name: string): string | undefined {
  return p.opts.get(name)?.[0]
}

/** Whether an option was given. */
export function has(p: Parsed, name: string): boolean {
  return p.opts.has(name)
}

/** --output=human|json (human by default). */
export function outputFormat(p: Parsed): 'human' | 'json' {
  const o = one(p, 'output') ?? 'human'
  if (o !== 'human' && o !== 'json') throw new UsageError(`--output must be human or json (got '${o}')`)
  return o
}
