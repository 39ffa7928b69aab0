/** Before any write: the image must pass its checks (no corruption), or nothing is written. */
import type { Image } from '../../engine/index.js'

export async function verifyBeforeEdit(_img: Image, _repair = false): Promise<void> {
  // Wired to the engine's checkImage once it lands.
}
