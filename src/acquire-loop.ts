import type { AcquireTally } from './diagnostics.js'
import { AcquireTimeoutError } from './errors.js'
import type { Clock } from './internal/clock.js'
import type { HandoffYield } from './internal/handoff-yield.js'
import type { ResolvedLockOptions } from './options.js'
import type { Waiters } from './waiters.js'

/** A failed attempt: which key was held, and for how much longer (ms; -1: no TTL). */
export interface Blocked {
  readonly pttl: number
  readonly blockedIndex: number
}

/** What the loop needs from its Locker. */
export interface AcquireLoopHost<L> {
  readonly clock: Clock
  readonly waiters: Waiters
  readonly yields: HandoffYield
  /** Aborted when the Locker closes. */
  readonly closed: AbortSignal
  /** One attempt at all `keys`: the lock, or what blocked it. */
  attempt(keys: string[], opts: ResolvedLockOptions, signal: AbortSignal | undefined): Promise<L | Blocked>
  /** True when an attempt's result is the lock. */
  isLock(result: L | Blocked): result is L
  /** Throws the Locker's closed error once it is closed. */
  throwIfClosed(): void
}

const NO_SIGNALS: readonly (AbortSignal | undefined)[] = []

/**
 * The acquire loop of a Locker: attempts, then waits for a wake-up (a release message,
 * the holder's TTL running out, `retryIntervalMs`), until the lock is got, the timeout
 * passes or a signal aborts.
 */
export class AcquireLoop<L> {
  readonly #host: AcquireLoopHost<L>

  constructor(host: AcquireLoopHost<L>) {
    this.#host = host
  }

  async run(
    keys: string[],
    opts: ResolvedLockOptions,
    signal: AbortSignal | undefined,
    single: boolean,
    tally: AcquireTally | undefined,
  ): Promise<L | null> {
    const { clock, waiters, yields } = this.#host
    const start = clock.now()
    const giveUpAt = opts.retryTimeoutMs === null ? Number.POSITIVE_INFINITY : start + opts.retryTimeoutMs
    // Closing the Locker ends every wait through Waiters.close(): no listener per waiter.
    const signals = signal === undefined ? NO_SIGNALS : [signal]
    let attempts = 0
    let seq: number | undefined
    let watched = keys[0] as string
    // Local fairness: a newcomer queues behind this process's waiters instead of
    // racing them, so a releaser does not simply take its own lock back.
    let firstWait = 0
    if (!single) {
      firstWait = waiters.hasWaiters(watched) ? opts.retryIntervalMs : yields.left(watched)
    }
    // The key whose release message this waiter consumed, until its next attempt shows
    // what became of that key. A release message wakes one waiter per Locker; if the
    // woken one then leaves that key (blocked on another of its keys, or the attempt
    // throws), the wake-up is passed to the next local waiter on it, which may never
    // have attempted, so no holder of the key carries its waiting mark.
    let wokenOn: string | undefined
    try {
      for (;;) {
        if (firstWait > 0) {
          seq ??= waiters.nextSeq()
          const wait = Math.min(firstWait, giveUpAt - clock.now())
          firstWait = 0
          if (await this.#waitTurn(watched, wait, seq, signals)) wokenOn = watched
          this.#throwIfStopped(signal)
        }
        const generation = waiters.generation(watched)
        const wasSubscribed = waiters.isSubscribed(watched)
        const result = await this.#host.attempt(keys, opts, signal)
        attempts++
        if (tally !== undefined) tally.attempts = attempts
        if (this.#host.isLock(result)) {
          wokenOn = undefined // ours now: its release hands over locally
          return result
        }
        const blocked = keys[result.blockedIndex] ?? watched
        // Blocked on the key it was woken for: the attempt marked that key's new holder.
        if (blocked === wokenOn) wokenOn = undefined
        if (single) return null
        const now = clock.now()
        if (now >= giveUpAt) throw new AcquireTimeoutError(keys, now - start, attempts)
        if (blocked !== watched) {
          watched = blocked
          continue
        }
        if (!wasSubscribed) {
          // Subscribe, then retry at once: a release between the failed attempt and the
          // subscription taking effect would otherwise go unnoticed.
          if (await waiters.subscribe(watched, opts.retryIntervalMs)) continue
        } else if (waiters.generation(watched) !== generation) {
          continue // a release raced the attempt
        }
        seq ??= waiters.nextSeq()
        if (wokenOn !== undefined) {
          waiters.wakeOne(wokenOn) // left that key: pass the wake-up on
          wokenOn = undefined
        }
        // The holder's TTL bounds the wait: an expiry sends no message.
        const ttlBound = result.pttl >= 0 ? result.pttl + 1 : Number.POSITIVE_INFINITY
        const wait = Math.min(opts.retryIntervalMs, ttlBound, giveUpAt - now)
        if (await this.#waitTurn(watched, wait, seq, signals)) wokenOn = watched
        this.#throwIfStopped(signal)
      }
    } finally {
      // Leaving without the lock (timeout, abort, close, error, tryAcquire): do not
      // keep the wake-up.
      if (wokenOn !== undefined) waiters.wakeOne(wokenOn)
    }
  }

  /** Waits for this waiter's turn on `key`: true when a release woke it. */
  async #waitTurn(
    key: string,
    ms: number,
    seq: number,
    signals: readonly (AbortSignal | undefined)[],
  ): Promise<boolean> {
    return (await this.#host.waiters.wait(key, Math.max(0, ms), seq, signals)) === 'woken'
  }

  /** Throws once the Locker is closed or the caller's signal aborted. */
  #throwIfStopped(signal: AbortSignal | undefined): void {
    this.#host.throwIfClosed()
    signal?.throwIfAborted()
  }
}
