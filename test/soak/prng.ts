/**
 * A small seeded PRNG (mulberry32): the same seed replays the same nemesis
 * schedule and the same worker choices, so a failing soak can be rerun with
 * `SEED=… npm run soak`.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number
  /** Uniform integer in [0, n). */
  int(n: number): number
  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number
  pick<T>(items: readonly T[]): T
}

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number): number => Math.floor(next() * n)
  return {
    next,
    int,
    range: (lo, hi) => lo + next() * (hi - lo),
    pick: (items) => {
      if (items.length === 0) throw new Error('pick from an empty list')
      return items[int(items.length)] as (typeof items)[number]
    },
  }
}

/** Derives an independent stream per (seed, label): workers and phases do not share draws. */
export function deriveSeed(seed: number, label: string): number {
  let h = (seed ^ 0x9e3779b9) >>> 0
  for (let i = 0; i < label.length; i++) {
    h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0
  }
  return (h ^ (h >>> 16)) >>> 0
}

/** The seed from SEED (decimal or 0x hex), else a fresh random one. */
export function seedFromEnv(): number {
  const raw = process.env.SEED
  if (raw === undefined || raw === '') return (Math.random() * 2 ** 32) >>> 0
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** 32) {
    throw new Error(`SEED must be an integer in [0, 2^32); received ${raw}`)
  }
  return value
}
