/**
 * The only platform globals the engine uses: TextDecoder/TextEncoder exist in browsers, workers
 * and Node alike. Declared here so the engine compiles without DOM or Node types.
 */
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean })
  decode(input?: Uint8Array): string
}
declare class TextEncoder {
  encode(input?: string): Uint8Array
}
