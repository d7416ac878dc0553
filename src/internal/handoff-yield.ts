import type { Clock } from './clock.js'

/** Upper bound of the head start given to other processes' waiters after a release. */
export const MAX_YIELD_MS = 20

/**
 * Cross-process fairness after a release. When a release message reached
 * subscribers in other processes, their woken waiter needs about one round trip to
 * send its attempt, while this process could re-take the key at once (a loop of
 * acquire/release nearly always would). So for about two round trips this Locker
 * queues its own newcomers for the key instead of racing.
 */
export class HandoffYield {
  readonly #clock: Clock
  /** Per key: monotonic time until which this Locker lets remote waiters go first. */
  readonly #until = new Map<string, number>()

  constructor(clock: Clock) {
    this.#clock = clock
  }

  /** Yields `keys` for about two round trips of `rttMs` (the release's own). */
  grant(keys: readonly string[], rttMs: number): void {
    const until = this.#clock.now() + Math.min(MAX_YIELD_MS, 2 * rttMs + 1)
    if (this.#until.size > 1000) this.#sweep()
    for (const key of keys) this.#until.set(key, until)
  }

  /** Milliseconds this Locker should still hold back from `key`. */
  left(key: string): number {
    const until = this.#until.get(key)
    if (until === undefined) return 0
    const left = until - this.#clock.now()
    if (left <= 0) this.#until.delete(key)
    return Math.max(0, left)
  }

  #sweep(): void {
    const now = this.#clock.now()
    for (const [key, until] of this.#until) if (until <= now) this.#until.delete(key)
  }
}
