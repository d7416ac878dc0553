// Issue 13: the rows of the permit scenarios (7–11). Each row is a library holding keys
// one way: our semaphore permit, our shared hold, our mutex (the reference the issue
// compares against), redis-semaphore's `Semaphore`, and the floors.
import { holdNote, type LibraryName, type Variant } from '../adapters.js'
import type { Hold } from '../lock-adapter.js'

export const OURS: LibraryName = 'async-redis-lock'
export const PEER: LibraryName = 'redis-semaphore'

export const EXCLUSIVE: Hold = { kind: 'exclusive' }
export const SHARED: Hold = { kind: 'shared' }
export const semaphore = (limit: number): Hold => ({ kind: 'semaphore', limit })

export const oursPermit = (limit: number): Variant => ({
  label: `${OURS} limit ${limit}`,
  lib: OURS,
  hold: semaphore(limit),
})
export const oursShared: Variant = { label: `${OURS} shared`, lib: OURS, hold: SHARED }
export const oursMutex: Variant = { label: `${OURS} mutex`, lib: OURS, hold: EXCLUSIVE }
export const peerPermit = (limit: number): Variant => ({
  label: `${PEER} Semaphore(${limit})`,
  lib: PEER,
  hold: semaphore(limit),
})
export const floor = (lib: 'raw' | 'raw-pubsub'): Variant => ({ label: lib, lib, hold: EXCLUSIVE })

/** The rows whose library was selected with `--libs`. */
export function pick(variants: readonly Variant[], libs: readonly LibraryName[]): Variant[] {
  return variants.filter((v) => libs.includes(v.lib))
}

/** One note line per row: how it holds its keys, at which defaults. */
export function variantNotes(variants: readonly Variant[]): string {
  return variants.map((v) => `${v.label}: ${holdNote(v.lib, v.hold)}`).join('; ')
}

/** The row of `lib` holding keys as `kind`, if it ran without error. */
export function rowOf<T extends { lib: LibraryName; hold?: Hold; error?: string }>(
  rows: readonly T[] | undefined,
  lib: LibraryName,
  kind: Hold['kind'],
): T | undefined {
  return rows?.find((r) => r.lib === lib && (r.hold?.kind ?? 'exclusive') === kind && r.error === undefined)
}

/** Per-command counts divided by `per`, largest first: "evalsha 2.00, publish 0.01". */
export function perCommand(counts: Record<string, number>, per: number): string {
  const entries = Object.entries(counts)
    .map(([name, n]) => [name, n / per] as const)
    .filter(([, x]) => x >= 0.005)
    .sort((a, b) => b[1] - a[1])
  return entries.length === 0 ? '–' : entries.map(([name, x]) => `${name} ${x.toFixed(2)}`).join(', ')
}

/** Median over rounds of `f(row's round i) / f(base's round i)`. */
export function roundRatio<R>(rows: readonly R[], base: readonly R[], f: (r: R) => number): number {
  const ratios: number[] = []
  rows.forEach((r, i) => {
    const b = base[i]
    if (b !== undefined && f(b) > 0) ratios.push(f(r) / f(b))
  })
  ratios.sort((a, b) => a - b)
  const n = ratios.length
  if (n === 0) return Number.NaN
  const mid = Math.floor(n / 2)
  return n % 2 === 1 ? (ratios[mid] as number) : ((ratios[mid - 1] as number) + (ratios[mid] as number)) / 2
}
