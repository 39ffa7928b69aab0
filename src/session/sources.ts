/** What to call an OpenSource before it is open. */
import type { OpenSource } from './api.js'

/** The name to show for `source` while it opens. */
export function sourceName(source: OpenSource): string {
  switch (source.kind) {
    case 'file': return source.file.name
    case 'handle': return source.handle.name
    case 'url': return source.name
    case 'host': return source.name ?? source.id
  }
}
