/**
 * The writer that gives image D its bitmap data through qbm's engine. It lives in
 * src/test-support/fill-bitmap.ts: like the test fixtures, it uses the engine's internals (the
 * allocator, the header and table encoders), which only test support may reach past
 * src/engine/index.ts (.dependency-cruiser.cjs).
 */
export { type FillResult, fillBitmap } from '../src/test-support/fill-bitmap.js'
