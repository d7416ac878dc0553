import {
  compatible,
  concurrency,
  fenceOrder,
  type GrantSummary,
  type OverLimit,
  restartBetween,
  summary,
  tornReads,
} from './concurrency.js'
import type { FaultWindow, Grant, History } from './history.js'
import { countBy, type Dist, dist, round } from './stats.js'
import type { StoreState } from './store.js'

/**
 * The independent checker. It knows nothing of the library's internals: it reads
 * the workers' logs, the nemesis log and the final state of the store Redis, and
 * judges the run by the library's own published account of each grant.
 */

export type { GrantSummary, OverLimit } from './concurrency.js'

export interface Overlap {
  key: string
  a: GrantSummary
  b: GrantSummary
  overlapMs: number
}

export interface CheckResult {
  grants: number
  grantsByKind: Record<string, number>
  /**
   * Pairs of intersecting valid grants of one key that may not coexist: an exclusive
   * grant with any other, or grants of different kinds. Shared with shared, and
   * permits of one semaphore, are counted by {@link CheckResult.overLimit} and the
   * concurrency figures instead.
   */
  overlaps: number
  /** Overlaps between grants on either side of a Redis restart: outside the contract. */
  restartOverlaps: number
  /** Grants returned already not held, with no pause of their process to explain it. */
  deadOnArrival: number
  deadOnArrivalExcused: number
  examples: Overlap[]
  /** Semaphore grants returned while the key already had `limit` valid permits. */
  overLimit: number
  /** The same across a Redis restart: outside the contract. */
  restartOverLimit: number
  overLimitExamples: OverLimit[]
  /** Most valid shared grants of one key at once (0: no shared grant). */
  maxShared: number
  /** Most valid permits of one semaphore key at once, and that key's limit (0 / null: no semaphore). */
  maxPermits: number
  semaphoreLimit: number | null
  /** Shared grants whose reads of the counter saw different values: a write landed while they held. */
  tornReads: number
  /**
   * Pairs of fenced grants of a key where the later acquisition (its attempt began
   * after the earlier one was returned) has a fence that is not greater.
   */
  fenceOrder: { checked: number; violations: number }
  counter: {
    writes: number
    unconfirmed: number
    final: number
    lostUpdates: number
    /** Of the lost updates seen as duplicate values, those between grants on either side of a restart. */
    acrossRestart: number
  }
  fenced: { accepted: number; rejected: number; storeRejected: number }
  acquireLatencyMs: Dist
  acquireErrors: Record<string, number>
  losses: Record<string, number>
  /** Estimated server expiry minus the moment the holder was told, per loss (see README.md). */
  lossLeadMs: Dist
  lossLeadPausedMs: Dist
  negativeLeadUnpaused: number
  recoveryAfterKillMs: Dist
  idleGapMs: { all: Dist; quiet: Dist }
  faults: Record<string, number>
}

/**
 * The drift allowance the README documents ("1% + 2 ms"), restated here rather than
 * imported so the checker depends on the library's published account only.
 */
const driftFor = (lifetimeMs: number): number => Math.ceil(lifetimeMs * 0.01) + 2

const overlaps = (f: FaultWindow, from: number, to: number): boolean => f.start <= to && f.end >= from

/** Pauses (SIGSTOP) of the process `pid` that intersect [from, to]. */
function pausedDuring(faults: readonly FaultWindow[], pid: number, from: number, to: number): boolean {
  return faults.some((f) => f.kind === 'worker-pause' && f.pid === pid && overlaps(f, from, to))
}

/**
 * Pairs of grants on one key whose validity intervals intersect (closed intervals)
 * and that may not coexist (see {@link compatible}).
 */
function findOverlaps(byKey: Map<string, Grant[]>, faults: readonly FaultWindow[]) {
  const found: Overlap[] = []
  const excused: Overlap[] = []
  for (const [key, grants] of byKey) {
    for (let i = 0; i < grants.length; i++) {
      const a = grants[i] as Grant
      for (let j = i + 1; j < grants.length; j++) {
        const b = grants[j] as Grant
        if (b.start > a.end) break
        if (compatible(a, b)) continue
        // A single-instant (dead-on-arrival) grant inside another one counts too:
        // at that instant both were handed out as valid.
        const o: Overlap = {
          key,
          a: summary(a),
          b: summary(b),
          overlapMs: round(Math.min(a.end, b.end) - b.start, 3),
        }
        if (restartBetween(faults, a.start, b.start)) excused.push(o)
        else found.push(o)
      }
    }
  }
  return { found, excused }
}

function lostUpdates(h: History, store: ReadonlyMap<string, StoreState>) {
  const grantOf = new Map(h.grants.map((g) => [g.token, g]))
  let writes = 0
  let unconfirmed = 0
  let final = 0
  let lost = 0
  let acrossRestart = 0
  for (const [key, state] of store) {
    const ws = h.writes.filter((w) => w.key === key)
    const confirmed = ws.filter((w) => w.confirmed)
    // Two confirmed writes of the same value both read the same old value: one of
    // them overwrote the other. A final count below the confirmed writes means the
    // same, for overwrites that happened to leave distinct values.
    const seen = new Map<number, string>()
    let duplicates = 0
    for (const w of confirmed) {
      const other = seen.get(w.value)
      seen.set(w.value, w.token)
      if (other === undefined) continue
      duplicates++
      const a = grantOf.get(other)
      const b = grantOf.get(w.token)
      if (a && b && restartBetween(h.faults, a.start, b.start)) acrossRestart++
    }
    lost += Math.max(duplicates, confirmed.length - state.counter)
    writes += ws.length
    unconfirmed += ws.length - confirmed.length
    final += state.counter
  }
  return { writes, unconfirmed, final, lostUpdates: lost, acrossRestart }
}

/**
 * How long a key sat free while some attempt on it was pending. "Free" starts at the
 * release reply, or for a lease that was not released at the estimated server
 * expiry. An exclusive or shared key is free when it has no holder at all (a reader
 * joining other readers is not a wait for a free key); a semaphore has `limit`
 * places, each free from the moment its holder left. Each grant takes the place that
 * has been free longest, and its gap runs from the later of that moment and the
 * first attempt still pending then. The first grants of a key are not measured.
 */
function idleGaps(h: History, byKey: Map<string, Grant[]>, lifetimeMs: number) {
  const all: number[] = []
  const quiet: number[] = []
  const drift = driftFor(lifetimeMs)
  for (const [key, grants] of byKey) {
    const attempts = h.attempts.filter((a) => a.key === key)
    const first = grants[0]
    const capacity =
      first?.kind === 'semaphore' && grants.every((g) => compatible(g, first)) ? first.limit : 1
    const events: { t: number; start: boolean }[] = []
    for (const g of grants) {
      const freeAt =
        g.releaseResult === true && g.releasedAt !== undefined
          ? g.releasedAt
          : (g.deadline ?? g.start) + drift
      events.push({ t: g.start, start: true }, { t: Math.max(freeAt, g.start), start: false })
    }
    // At equal times the place is freed before it is taken.
    events.sort((x, y) => x.t - y.t || Number(x.start) - Number(y.start))
    // Places free now, oldest first; undefined: free since before the first grant.
    const free: (number | undefined)[] = Array.from({ length: capacity }, () => undefined)
    let count = 0
    for (const e of events) {
      if (!e.start) {
        count--
        if (count < capacity) free.push(e.t)
        continue
      }
      count++
      if (free.length === 0) continue
      const freeAt = free.shift()
      if (freeAt === undefined || e.t <= freeAt) continue
      const waiting = attempts.filter((a) => a.at < e.t && a.endAt > freeAt)
      if (waiting.length === 0) continue
      const from = Math.max(freeAt, Math.min(...waiting.map((a) => a.at)))
      const gap = e.t - from
      all.push(gap)
      if (!h.faults.some((f) => overlaps(f, from - lifetimeMs, e.t))) quiet.push(gap)
    }
  }
  return { all: dist(all), quiet: dist(quiet) }
}

/**
 * Kill time to the next acquisition of each key the killed worker held, counted
 * only when somebody was already waiting for the key when its lease ran out (else
 * the delay measures nobody's interest, not the lock).
 */
function recoveries(h: History, byKey: Map<string, Grant[]>, lifetimeMs: number): number[] {
  const out: number[] = []
  const drift = driftFor(lifetimeMs)
  for (const f of h.faults) {
    if (f.kind !== 'worker-kill' || f.pid === undefined) continue
    const held = h.grants.filter(
      (g) =>
        g.pid === f.pid &&
        g.start <= f.start &&
        (g.releaseStartAt ?? Number.POSITIVE_INFINITY) > f.start &&
        (g.lostAt ?? Number.POSITIVE_INFINITY) > f.start,
    )
    for (const g of held) {
      const expiry = (g.deadline ?? g.start) + drift
      const waited = h.attempts.some((a) => a.key === g.key && a.at <= expiry && a.endAt > expiry)
      const next = (byKey.get(g.key) ?? []).find((n) => n.start > f.start)
      if (next && waited) out.push(next.start - f.start)
    }
  }
  return out
}

/**
 * Loss notification lead: the server lets a key expire no earlier than the send time
 * of the last confirmed extension plus lifetimeMs. The lock's deadline is that send
 * time plus lifetimeMs minus the drift allowance, so the estimate is the last
 * observed deadline plus the drift. It is a lower bound (Redis starts the TTL when it
 * runs the command, after the send), so a positive lead is conservative.
 */
function leads(h: History, lifetimeMs: number) {
  const drift = driftFor(lifetimeMs)
  const free: number[] = []
  const paused: number[] = []
  for (const g of h.grants) {
    if (g.lostAt === undefined || g.deadline === undefined || g.lostReason === 'closed') continue
    if (g.lostReason !== 'unreachable' && g.lostReason !== 'expired') continue
    const lead = g.deadline + drift - g.lostAt
    if (pausedDuring(h.faults, g.pid, g.lastHeldObsAt ?? g.start, g.lostAt)) paused.push(lead)
    else free.push(lead)
  }
  return { free, paused }
}

export function check(h: History, store: ReadonlyMap<string, StoreState>, lifetimeMs: number): CheckResult {
  const byKey = new Map<string, Grant[]>()
  for (const g of h.grants) {
    const list = byKey.get(g.key) ?? []
    list.push(g)
    byKey.set(g.key, list)
  }
  for (const list of byKey.values()) list.sort((x, y) => x.start - y.start)
  const { found, excused } = findOverlaps(byKey, h.faults)
  const held = concurrency(byKey, h.faults)
  const doa = h.grants.filter((g) => g.doa)
  const doaExcused = doa.filter((g) => pausedDuring(h.faults, g.pid, g.attemptAt, g.start))
  const lead = leads(h, lifetimeMs)
  let storeRejected = 0
  for (const s of store.values()) storeRejected += s.rejected
  return {
    grants: h.grants.length,
    grantsByKind: countBy(h.grants, (g) => g.kind),
    overlaps: found.length,
    restartOverlaps: excused.length,
    deadOnArrival: doa.length - doaExcused.length,
    deadOnArrivalExcused: doaExcused.length,
    examples: found.slice(0, 3),
    overLimit: held.overLimit.length,
    restartOverLimit: held.restartOverLimit,
    overLimitExamples: held.overLimit.slice(0, 3),
    maxShared: held.maxShared,
    maxPermits: held.maxPermits,
    semaphoreLimit: held.semaphoreLimit,
    tornReads: tornReads(h),
    fenceOrder: fenceOrder(byKey),
    counter: lostUpdates(h, store),
    fenced: {
      accepted: h.fenced.filter((f) => f.accepted).length,
      rejected: h.fenced.filter((f) => !f.accepted).length,
      storeRejected,
    },
    acquireLatencyMs: dist(h.grants.map((g) => g.start - g.attemptAt)),
    acquireErrors: countBy(
      h.attempts.filter((a) => a.outcome === 'error'),
      (a) => a.code ?? '?',
    ),
    losses: countBy(
      h.grants.filter((g) => g.lostReason !== undefined),
      (g) => g.lostReason as string,
    ),
    lossLeadMs: dist(lead.free),
    lossLeadPausedMs: dist(lead.paused),
    negativeLeadUnpaused: lead.free.filter((x) => x < 0).length,
    recoveryAfterKillMs: dist(recoveries(h, byKey, lifetimeMs)),
    idleGapMs: idleGaps(h, byKey, lifetimeMs),
    faults: countBy(h.faults, (f) => f.kind),
  }
}
