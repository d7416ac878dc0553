import type { FaultWindow, Grant, History } from './history.js'
import { round } from './stats.js'

/**
 * The checks that tell the kinds of lock apart: which grants may hold a key at the
 * same time, how many did, and whether fences kept increasing across kinds. Used by
 * the checker (checker.ts).
 */

export interface GrantSummary {
  w: number
  token: string
  kind: Grant['kind']
  start: number
  end: number
  doa: boolean
}

/** A semaphore grant returned while `limit` other valid permits of its key were held. */
export interface OverLimit {
  key: string
  limit: number
  /** Valid permits at the grant's start, itself included. */
  holders: number
  grant: GrantSummary
}

/** A Redis restart began between the two times (either order). */
export function restartBetween(faults: readonly FaultWindow[], a: number, b: number): boolean {
  return faults.some(
    (f) => f.kind === 'redis-restart' && f.start >= Math.min(a, b) && f.start <= Math.max(a, b),
  )
}

/** A grant as the report shows it. */
export function summary(g: Grant): GrantSummary {
  return { w: g.w, token: g.token, kind: g.kind, start: round(g.start, 3), end: round(g.end, 3), doa: g.doa }
}

/** Grants that may hold a key at the same time: shared with shared, permits of one semaphore. */
export function compatible(a: Grant, b: Grant): boolean {
  if (a.kind === 'shared') return b.kind === 'shared'
  return a.kind === 'semaphore' && b.kind === 'semaphore' && a.limit === b.limit
}

/**
 * Concurrent holders, counted at each grant's start (with closed intervals the count
 * only rises there): for a semaphore grant, the valid permits of its key at that
 * instant, itself included, must not exceed the limit (a dead-on-arrival grant counts
 * as handed out at its instant, like an overlap). The maxima are over grants that
 * were valid on return, counting only valid ones: what the phase actually exercised.
 */
export function concurrency(byKey: Map<string, Grant[]>, faults: readonly FaultWindow[]) {
  const overLimit: OverLimit[] = []
  let restartOverLimit = 0
  let maxShared = 0
  let maxPermits = 0
  let semaphoreLimit: number | null = null
  for (const [key, grants] of byKey) {
    for (const b of grants) {
      if (b.kind === 'exclusive') continue
      let holders = 1
      let excused = 0
      let live = 1
      for (const a of grants) {
        if (a.start > b.start) break
        if (a === b || !compatible(a, b) || a.end < b.start) continue
        if (restartBetween(faults, a.start, b.start)) excused++
        else holders++
        if (!a.doa) live++
      }
      if (b.kind === 'shared') {
        if (!b.doa) maxShared = Math.max(maxShared, live)
        continue
      }
      if (!b.doa && live > maxPermits) {
        maxPermits = live
        semaphoreLimit = b.limit
      }
      semaphoreLimit ??= b.limit
      if (holders > b.limit) overLimit.push({ key, limit: b.limit, holders, grant: summary(b) })
      else if (holders + excused > b.limit) restartOverLimit++
    }
  }
  return { overLimit, restartOverLimit, maxShared, maxPermits, semaphoreLimit }
}

/** Shared grants whose counter reads disagree: some write landed while they held. */
export function tornReads(h: History): number {
  const seen = new Map<string, Set<number>>()
  for (const r of h.reads) {
    const values = seen.get(r.token) ?? new Set<number>()
    values.add(r.value)
    seen.set(r.token, values)
  }
  let torn = 0
  for (const values of seen.values()) if (values.size > 1) torn++
  return torn
}

/**
 * Fences increase per key across every kind of holder: a grant whose attempt began
 * after another grant of the key was returned carries a greater fence. Only fenced
 * grants (the even workers) take part.
 */
export function fenceOrder(byKey: Map<string, Grant[]>) {
  let checked = 0
  let violations = 0
  for (const grants of byKey.values()) {
    const fenced = grants.filter((g) => /^\d+$/.test(g.fence)).map((g) => ({ g, fence: BigInt(g.fence) }))
    for (const a of fenced) {
      for (const b of fenced) {
        if (a.g.start >= b.g.attemptAt) continue
        checked++
        if (b.fence <= a.fence) violations++
      }
    }
  }
  return { checked, violations }
}
