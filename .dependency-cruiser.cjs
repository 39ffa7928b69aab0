/**
 * The layers of qbm and which way imports may point (STYLE.md, "The shape of the repo"),
 * checked by dependency-cruiser in `npm test`:
 *
 *   engine     pure format + edits: imports only itself (no Node, no DOM, no other layer)
 *   io         BlockDevice implementations: the engine
 *   session    the engine session behind one API: the engine (no platform, no transport)
 *   transport  carries the session's API: the session's types
 *   worker     the browser's host + the worker transport: engine, io, session, transport
 *   host       Node on a hypervisor host (catalog, locks, in-place edits): engine, io, session types
 *   server     qbm serve: engine, io, session, transport, host
 *   cli        the qbm command: engine, io, host, and the server (qbm serve)
 *   ui         React: the session's types and the client; never the engine, io, host or server,
 *              except src/engine/shared.ts (edit descriptions, human sizes: pure, reads no image)
 *
 * Outside the engine, the engine is reached through src/engine/index.ts (and shared.ts) only.
 */
const layer = (name) => `^src/${name}/`
const others = (...allowed) => ['engine', 'io', 'session', 'transport', 'worker', 'host', 'server', 'cli', 'ui']
  .filter((l) => !allowed.includes(l)).map(layer)

/** The engine's part the page loads itself. */
const SHARED = '^src/engine/shared\\.ts$'

/** A layer that may import only `allowed` layers (and itself), and the modules `alsoPath`. */
function only(name, allowed, comment, alsoPath) {
  return {
    name: `${name}-imports-only-${allowed.join('-') || 'itself'}`,
    comment,
    severity: 'error',
    from: { path: layer(name), pathNot: '\\.test\\.tsx?$' },
    to: { path: others(name, ...allowed), ...(alsoPath ? { pathNot: alsoPath } : {}) },
  }
}

module.exports = {
  forbidden: [
    only('engine', [], 'The engine is pure: it never knows where bytes come from or who shows them.'),
    {
      name: 'engine-no-platform',
      comment: 'The engine runs in a worker and in Node alike: no Node built-ins.',
      severity: 'error',
      from: { path: layer('engine'), pathNot: '\\.test\\.ts$' },
      to: { dependencyTypes: ['core'] },
    },
    only('io', ['engine'], 'Devices implement the engine\'s BlockDevice.'),
    only('session', ['engine'], 'The session is the same object under every transport: no platform, no transport.'),
    {
      name: 'session-no-platform',
      severity: 'error',
      from: { path: layer('session'), pathNot: '\\.test\\.ts$' },
      to: { dependencyTypes: ['core'] },
    },
    only('transport', ['session'], 'A transport carries the API; it does not know the engine.'),
    only('worker', ['engine', 'io', 'session', 'transport'], 'The worker wires the browser host to the session.'),
    only('host', ['engine', 'io', 'session'], 'Host code is Node-side tooling under the CLI and the server.'),
    only('server', ['engine', 'io', 'session', 'transport', 'host'], 'The server wires the node host to the session.'),
    only('cli', ['engine', 'io', 'host', 'server'], 'The CLI runs the engine on files, devices and hosts.'),
    only('ui', ['session', 'transport'], 'The UI talks to the engine only through the client and the session\'s types (and engine/shared.ts).', SHARED),
    {
      name: 'engine-shared-reads-no-image',
      comment: 'What the page loads of the engine stays small and pure: edit kinds, units, the heatmap request, constants, errors; never a reader or the WebAssembly kernel.',
      severity: 'error',
      from: { path: SHARED },
      to: {
        reachable: true,
        path: '^src/engine/',
        pathNot: '^src/engine/(shared\\.ts|errors\\.ts|analysis/units\\.ts|analysis/heat-request\\.ts|qcow2/bitmaps/data/bits\\.ts|qcow2/constants\\.ts|qcow2/bitmaps/constraints\\.ts|edits/bits\\.ts|edits/kinds/)',
      },
    },
    {
      name: 'ui-picks-transport-only-at-the-root',
      comment: 'Only the entry point chooses a transport; the rest of the UI holds an EngineClient.',
      severity: 'error',
      from: { path: layer('ui'), pathNot: '^src/ui/main\\.tsx$|\\.test\\.tsx?$' },
      to: { path: layer('transport'), dependencyTypes: ['local', 'npm', 'core', 'aliased', 'type-only'], pathNot: '^src/transport/client\\.ts$' },
    },
    {
      name: 'engine-through-its-index',
      comment: 'Outside the engine, its whole public surface is src/engine/index.ts.',
      severity: 'error',
      from: { pathNot: '^src/engine/|\\.test\\.tsx?$|^src/test-support/' },
      to: { path: '^src/engine/', pathNot: '^src/engine/(index|shared)\\.ts$' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|dist-cli|node_modules)/' },
  },
}
