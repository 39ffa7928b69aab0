/**
 * `qbm serve [--write] [--listen HOST:PORT] [--libvirt-checkpoint-dir DIR] [-r] PATH...`: the app
 * and the engine on the host, for a browser over an SSH tunnel. The first line on stdout is the
 * URL to open (the access token in its fragment); everything after goes to stderr, and the
 * token is never printed again.
 */
import { existsSync, realpathSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { checkpointDirToUse } from '../../host/libvirt.js'
import { NodeHost } from '../../server/node-host.js'
import { isWildcard } from '../../server/security.js'
import { startServer } from '../../server/server.js'
import { type Parsed, UsageError, has, one } from '../args.js'
import { err } from '../io.js'
import { CliError } from './common.js'
import pkg from '../../../package.json' with { type: 'json' }


/** HOST:PORT, [V6]:PORT or :PORT; port 0 takes any free port. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:[\]]*):(\d{1,5})$/.exec(s)
  if (!m) throw new UsageError(`--listen expects HOST:PORT (got '${s}')`)
  const port = Number(m[2])
  if (port > 65535) throw new UsageError(`--listen: port ${port} is out of range`)
  return { host: m[1] || '127.0.0.1', port }
}

/** The built app: dist/ in the qbm checkout that holds this bundle, as `npm run build:app` makes it. */
function appDir(): string {
  // From the command that runs (bin/qbm.cjs in the checkout), up to the checkout's package.json.
  let dir = dirname(realpathSync(process.argv[1] ?? '.'))
  for (let up = 0; up < 4; up++, dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) {
      const app = join(dir, 'dist')
      if (existsSync(join(app, 'index.html'))) return app
      throw new CliError(`the app is not built (no ${join(app, 'index.html')}): run \`npm run build:app\` in the qbm checkout`)
    }
  }
  throw new CliError('cannot find the qbm checkout this command runs from (no package.json above it)')
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1'])

/** Run the server until SIGINT or SIGTERM. */
export async function cmdServe(p: Parsed, paths: string[], defaultListen: string): Promise<number> {
  if (paths.length === 0) throw new UsageError("'serve' expects at least one PATH (see 'qbm --help')")
  const listen = parseListen(one(p, 'listen') ?? defaultListen)
  const writable = has(p, 'write')
  const host = new NodeHost({
    paths, recursive: has(p, 'recursive'), writable, version: pkg.version,
    ...((d) => (d !== undefined ? { checkpointDir: d } : {}))(checkpointDirToUse(one(p, 'libvirt-checkpoint-dir'))),
  })
  const server = await startServer({
    host, appDir: appDir(), listenHost: listen.host, port: listen.port,
    ...(process.env.QBM_SERVE_LOG ? { log: (l: string) => err(`qbm serve: ${l}\n`) } : {}),
  })
  process.stdout.write(`${server.url}\n`)
  if (!LOOPBACK.has(listen.host)) {
    err(`qbm serve: warning: listening on ${isWildcard(listen.host) ? 'every interface' : listen.host}, not loopback: anyone who can reach this port and has the token can ${writable ? 'rewrite' : 'read'} these images; prefer the default and an SSH tunnel\n`)
  }
  const n = host.entries.length
  err(`qbm serve: ${n} image${n === 1 ? '' : 's'} under ${paths.join(', ')}; ${writable ? 'edits are written in place (--write)' : 'read-only (start with --write to edit)'}; Ctrl+C stops\n`)
  await new Promise<void>((resolve) => {
    const stop = (): void => { void server.close().then(resolve) }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  return 0
}
