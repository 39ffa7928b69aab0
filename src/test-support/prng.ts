/**
 * A small seeded PRNG (splitmix32 seeding xoshiro128**) for reproducible randomized tests.
 * Every randomized suite prints or names its seed so a failure can be replayed.
 */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(readonly seed: number) {
    let s = seed >>> 0
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = next(); this.b = next(); this.c = next(); this.d = next()
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5) >>> 0, 7), 9) >>> 0
    const t = (this.b << 9) >>> 0
    this.c ^= this.a; this.d ^= this.b; this.b ^= this.c; this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    this.a >>>= 0; this.b >>>= 0; this.c >>>= 0; this.d >>>= 0
    return r
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return (this.u32() * 2 ** 21 + (this.u32() >>> 11)) / 2 ** 53
  }

  /** Uniform integer in [0, n) for 0 < n <= 2^53. */
  int(n: number): number {
    if (n <= 0) return 0
    if (n <= 2 ** 32) return Math.floor((this.u32() / 2 ** 32) * n)
    return Math.floor(this.float() * n)
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }

  bool(p = 0.5): boolean {
    return this.float() < p
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list')
    return xs[this.int(xs.length)]!
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i += 4) {
      const x = this.u32()
      out[i] = x & 0xff
      if (i + 1 < n) out[i + 1] = (x >>> 8) & 0xff
      if (i + 2 < n) out[i + 2] = (x >>> 16) & 0xff
      if (i + 3 < n) out[i + 3] = x >>> 24
    }
    return out
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}
