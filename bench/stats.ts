// Small, dependency-free statistics for the benchmark tables.

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN when empty. */
export function percentile(values: ArrayLike<number>, p: number): number {
  const n = values.length
  if (n === 0) return Number.NaN
  const sorted = Float64Array.from(values).sort()
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n)))
  return sorted[rank - 1] as number
}

export function median(values: ArrayLike<number>): number {
  const n = values.length
  if (n === 0) return Number.NaN
  const sorted = Float64Array.from(values).sort()
  const mid = Math.floor(n / 2)
  return n % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** Jain's fairness index (Σx)²/(n·Σx²): 1 when all equal, 1/n when one takes all. */
export function jain(counts: readonly number[]): number {
  const n = counts.length
  if (n === 0) return Number.NaN
  let sum = 0
  let squares = 0
  for (const x of counts) {
    sum += x
    squares += x * x
  }
  return squares === 0 ? Number.NaN : (sum * sum) / (n * squares)
}

/** Milliseconds between two `process.hrtime.bigint()` readings. */
export function msBetween(from: bigint, to: bigint): number {
  return Number(to - from) / 1e6
}

/** Sums two name → count maps. */
export function addCounts(
  into: Record<string, number>,
  from: Record<string, number>,
): Record<string, number> {
  for (const [name, n] of Object.entries(from)) into[name] = (into[name] ?? 0) + n
  return into
}

/** Per-name difference `after − before`, keeping only names that changed. */
export function diffCounts(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, n] of Object.entries(after)) {
    const d = n - (before[name] ?? 0)
    if (d !== 0) out[name] = d
  }
  return out
}

export function sumCounts(counts: Record<string, number>): number {
  let total = 0
  for (const n of Object.values(counts)) total += n
  return total
}
