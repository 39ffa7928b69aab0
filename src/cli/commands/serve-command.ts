/**
 * `qbm serve`'s entry in the command table. The server (ws, msgpackr, zod, the session) loads
 * only when the command runs: every other command starts without it.
 */
import { COMMANDS } from './registry.js'

/** The default address: loopback only, port 8421. */
export const DEFAULT_LISTEN = '127.0.0.1:8421'

COMMANDS.push({
  name: 'serve',
  usage: `serve PATH... [--write] [--listen HOST:PORT] [-r] [--libvirt-checkpoint-dir DIR]   (the app on this host; default ${DEFAULT_LISTEN}, read-only)`,
  spec: { write: {}, listen: { value: true }, recursive: { alias: 'r' }, 'libvirt-checkpoint-dir': { value: true } },
  positional: [0, Infinity],
  run: async (p, a) => (await import('./serve.js')).cmdServe(p, a, DEFAULT_LISTEN),
})
