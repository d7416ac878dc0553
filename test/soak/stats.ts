/** Summary of a sample of durations, in ms, rounded for the report. */
export interface Dist {
  n: number
  min: number | null
  p50: number | null
  p99: number | null
  max: number | null
}

export function dist(values: readonly number[]): Dist {
  if (values.length === 0) return { n: 0, min: null, p50: null, p99: null, max: null }
  const s = [...values].sort((a, b) => a - b)
  const at = (q: number): number => round(s[Math.min(s.length - 1, Math.floor(q * s.length))] as number)
  return {
    n: s.length,
    min: round(s[0] as number),
    p50: at(0.5),
    p99: at(0.99),
    max: round(s[s.length - 1] as number),
  }
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

export function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const item of items) {
    const k = key(item)
    out[k] = (out[k] ?? 0) + 1
  }
  return out
}
