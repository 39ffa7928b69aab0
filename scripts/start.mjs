// `npm start`: install dependencies if missing, build the app, serve it on localhost and print
// the URL. The demo image is one click away ("Open demo image").
import { ensureNodeModules, sh } from './ensure.mjs'

ensureNodeModules()
const port = process.env.PORT ?? '5173'
if (sh('npx', ['vite', 'build', '--logLevel', 'warn']) !== 0) process.exit(1)
console.log(`\nqbm is served at http://127.0.0.1:${port}/  (Ctrl+C to stop)\n`)
process.exit(sh('npx', ['vite', 'preview', '--host', '127.0.0.1', '--port', port, '--strictPort']))
