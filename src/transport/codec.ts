/**
 * The WebSocket's wire format: MessagePack (msgpackr), so typed arrays (heatmap cells, export
 * bytes) travel as binary, never inflated through JSON or base64. Records and other msgpackr
 * extensions that could build unexpected objects are off; what the server decodes is checked
 * again by src/server/validate.ts.
 */
import { Packr } from 'msgpackr'

const packr = new Packr({ useRecords: false, moreTypes: true, bundleStrings: false, structuredClone: false, mapsAsObjects: true })

/** Encode one message. */
export function encodeMessage(msg: unknown): Uint8Array {
  return packr.pack(msg)
}

/** Decode one message (throws on malformed input). */
export function decodeMessage(data: Uint8Array): unknown {
  return packr.unpack(data)
}
