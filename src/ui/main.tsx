/** Entry point: one engine client, one store, the App; the service worker in production builds. */
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { createEngineClient } from '../transport/client.js'
import { pickTransport } from '../transport/pick.js'
import { App } from './App.js'
import { indexedDbRecentFiles } from './recent.js'
import { createAppStore } from './store/app-store.js'
import { StoreProvider } from './store/hooks.js'
import { registerServiceWorker } from './sw-register.js'
import './styles.css'

const recent = indexedDbRecentFiles()
const { transport, host } = pickTransport()
const store = createAppStore({ client: createEngineClient(transport), ...(recent ? { recent } : {}) })
void store.getState().loadRecent()
if (host) void store.getState().loadHost()

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <StoreProvider store={store}>
      <App />
    </StoreProvider>
  </StrictMode>,
)

if (import.meta.env.PROD && !host) window.addEventListener('load', registerServiceWorker)

