import type { NodeOutcome } from '../errors.js'
import type { AttemptResult, ExtendStatus } from './lock-backend.js'

/** What one node did with one request of a quorum operation. */
export type Settled<T> =
  | { readonly node: number; readonly ok: true; readonly value: T }
  | { readonly node: number; readonly ok: false; readonly error: unknown; readonly timedOut: boolean }

/**
 * Runs one request per node in parallel. After each settles, `decide` gets what
 * has settled and how many are pending; its first non-undefined result (or throw)
 * settles the whole call, so a hung node never delays a decided outcome. With
 * nothing pending `decide` must decide. Late settlements are ignored.
 */
export function gather<T, R>(
  calls: readonly Promise<T>[],
  nodeTimeout: number,
  decide: (settled: readonly Settled<T>[], pending: number) => R | undefined,
): Promise<R> {
  const started = performance.now()
  return new Promise<R>((resolve, reject) => {
    const settled: Settled<T>[] = []
    let done = false
    const step = (s: Settled<T>) => {
      if (done) return
      settled.push(s)
      try {
        const r = decide(settled, calls.length - settled.length)
        if (r !== undefined) {
          done = true
          resolve(r)
        }
      } catch (err) {
        done = true
        reject(err)
      }
    }
    for (const [node, call] of calls.entries()) {
      call.then(
        (value) => step({ node, ok: true, value }),
        // The node's own watchdog rejects a hung call; one that failed only at about
        // the deadline was a timeout, anything earlier an error.
        (error: unknown) =>
          step({ node, ok: false, error, timedOut: performance.now() - started >= nodeTimeout - 1 }),
      )
    }
  })
}

/** A failed node's outcome: `timeout` when it failed at about its deadline, else `error`. */
export function failedOutcome(s: Settled<unknown> & { ok: false }): NodeOutcome {
  return { node: s.node, outcome: s.timedOut ? 'timeout' : 'error', error: s.error }
}

/** One line per node for error messages, in node order. */
export function summary<T>(
  settled: readonly Settled<T>[],
  answered: (value: T) => string = () => 'answered',
): string {
  return [...settled]
    .sort((a, b) => a.node - b.node)
    .map((s) => {
      if (s.ok) return `node ${s.node} ${answered(s.value)}`
      const text = s.error instanceof Error ? s.error.message : String(s.error)
      return `node ${s.node} ${s.timedOut ? 'timed out' : 'failed'} (${text})`
    })
    .join('; ')
}

type AcquiredSettled = { node: number; ok: true; value: { acquired: true; fence: bigint | undefined } }
type HeldSettled = { node: number; ok: true; value: { acquired: false; pttl: number; blockedIndex: number } }

export function isAcquired(s: Settled<AttemptResult>): s is AcquiredSettled {
  return s.ok && s.value.acquired
}

export function isHeld(s: Settled<AttemptResult>): s is HeldSettled {
  return s.ok && !s.value.acquired
}

/**
 * Contention: retry once `mustExpire` of the holding nodes could have expired
 * (then a majority may be free), blocked on the key most nodes reported.
 */
export function contention(held: readonly HeldSettled[], mustExpire: number): AttemptResult {
  const ttls = held
    .map((s) => s.value.pttl)
    .filter((t) => t >= 0)
    .sort((a, b) => a - b)
  const pttl = ttls.length === 0 ? -1 : (ttls[Math.min(Math.max(1, mustExpire), ttls.length) - 1] as number)
  const votes = new Map<number, number>()
  let blockedIndex = 0
  let best = 0
  for (const s of held) {
    const v = (votes.get(s.value.blockedIndex) ?? 0) + 1
    votes.set(s.value.blockedIndex, v)
    if (v > best) [best, blockedIndex] = [v, s.value.blockedIndex]
  }
  return { acquired: false, pttl, blockedIndex }
}

export function acquireOutcome(s: Settled<AttemptResult>): NodeOutcome {
  if (!s.ok) return failedOutcome(s)
  return { node: s.node, outcome: s.value.acquired ? 'acquired' : 'held' }
}

/** For an extension: `acquired` = extended, `held` = the node no longer holds the lease for us. */
export function extendOutcome(s: Settled<readonly (ExtendStatus | undefined)[]>, lease: number): NodeOutcome {
  if (!s.ok) return failedOutcome(s)
  return { node: s.node, outcome: s.value[lease] === 1 ? 'acquired' : 'held' }
}
