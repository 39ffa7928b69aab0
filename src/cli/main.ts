/** The `qbm` command line: QEMU's habits (one-line errors on stderr, qemu-img exit codes). */
import { FormatError } from '../engine/index.js'
import { type OptionSpec, UsageError, parseArgs } from './args.js'
import { err, flushOut } from './io.js'
import { CliError } from './commands/common.js'
import { cmdInfo } from './commands/info.js'
import { cmdMap } from './commands/map.js'
import { cmdHeatmap } from './commands/heatmap.js'
import { cmdAllocation, cmdChain, cmdEstimate } from './commands/allocation.js'
import { COMMANDS as EXTRA } from './commands/registry.js'
import './commands/bitmap.js'
import './commands/diff.js'
import './commands/scan.js'
import './commands/serve-command.js'

const USAGE = `usage: qbm COMMAND [options]

  info IMAGE [--output=human|json] [--sha256]
  map IMAGE BITMAP [--output=human|json] [--all]
  map IMAGE --allocation [--output=human|json]   (qemu-img map's fields, through the backing chain)
  estimate IMAGE BITMAP [--output=human|json]   (dirty bytes split into data / zero / unallocated)
  chain IMAGE [--output=human|json]
  heatmap IMAGE BITMAP [--cells N] [--start OFF] [--length LEN] [--output=human|json]
${EXTRA.map((c) => '  ' + c.usage).join('\n')}

Sizes take k, M, G, T suffixes (binary), like qemu-img.
`

interface Command {
  spec: Record<string, OptionSpec>
  positional: number | [number, number]
  run: (p: ReturnType<typeof parseArgs>, args: string[]) => Promise<number>
}

const COMMANDS: Record<string, Command> = {
  info: { spec: { output: { value: true }, sha256: {} }, positional: 1, run: (p, a) => cmdInfo(p, a[0]!) },
  map: {
    spec: { output: { value: true }, all: {}, allocation: {} },
    positional: [1, 2],
    run: (p, a) => {
      if (p.opts.has('allocation')) {
        if (a.length !== 1) throw new UsageError("'map --allocation' takes only IMAGE")
        return cmdAllocation(p, a[0]!)
      }
      if (a.length !== 2) throw new UsageError("'map' expects IMAGE BITMAP (or IMAGE --allocation)")
      return cmdMap(p, a[0]!, a[1]!)
    },
  },
  estimate: { spec: { output: { value: true } }, positional: 2, run: (p, a) => cmdEstimate(p, a[0]!, a[1]!) },
  chain: { spec: { output: { value: true } }, positional: 1, run: (p, a) => cmdChain(p, a[0]!) },
  heatmap: {
    spec: { output: { value: true }, cells: { value: true }, start: { value: true }, length: { value: true } },
    positional: 2,
    run: (p, a) => cmdHeatmap(p, a[0]!, a[1]!),
  },
}
for (const c of EXTRA) COMMANDS[c.name] = c

/** The IMAGE argument of the running command, once parsed: error lines start with it, as qemu-img's do. */
let imageArg: string | undefined

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name) {
    err("usage: qbm COMMAND [options] (see 'qbm --help')\n")
    return 1
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE)
    return 0
  }
  const cmd = COMMANDS[name]
  if (!cmd) throw new UsageError(`unknown command '${name}'`)
  const p = parseArgs(rest, cmd.spec)
  imageArg = p.positional[0]
  const [min, max] = typeof cmd.positional === 'number' ? [cmd.positional, cmd.positional] : cmd.positional
  if (p.positional.length < min || p.positional.length > max) {
    throw new UsageError(`'${name}' expects ${min === max ? min : `${min} to ${max}`} argument${max > 1 ? 's' : ''} (see 'qbm --help')`)
  }
  return cmd.run(p, p.positional)
}

const argv = process.argv.slice(2)
main(argv).then(
  (code) => { flushOut(); process.exitCode = code },
  (e: unknown) => {
    flushOut()
    const image = imageArg
    if (e instanceof UsageError) { err(`qbm: ${e.message}\n`); process.exitCode = 1; return }
    if (e instanceof CliError) {
      const about = e.image ?? image
      err(`qbm: ${about ? about + ': ' : ''}${e.message}\n`)
      process.exitCode = e.exitCode
      return
    }
    const msg = e instanceof Error ? e.message : String(e)
    err(`qbm: ${image ? image + ': ' : ''}${msg}\n`)
    if (!(e instanceof FormatError) && process.env.QBM_DEBUG) err(`${(e as Error).stack}\n`)
    process.exitCode = 1
  },
)
