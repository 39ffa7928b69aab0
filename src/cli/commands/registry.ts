/** Commands beyond the read path register here (check, bitmap, repair, ...). */
import type { OptionSpec, Parsed } from '../args.js'

export interface ExtraCommand {
  name: string
  usage: string
  spec: Record<string, OptionSpec>
  /** how many positional arguments: exactly N, or [min, max] */
  positional: number | [number, number]
  run: (p: Parsed, args: string[]) => Promise<number>
}

export const COMMANDS: ExtraCommand[] = []

// `qbm check`. Imports are hoisted, so check.ts is evaluated before COMMANDS exists whatever the
// position of this line; that is safe because check.ts imports only a type from this file.
import { checkCommand } from './check.js'
COMMANDS.push(checkCommand)
