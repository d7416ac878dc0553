import type { Clock, TimerHandle } from '../../src/internal/clock.js'

interface FakeTimer {
  readonly id: number
  readonly at: number
  readonly fn: () => void
}

/** Lets every promise reaction queued so far (and those they queue) run. */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/**
 * A manual {@link Clock}: time moves only when a test says so, and timers fire in
 * time order (ties in creation order) while it moves. Nothing here sleeps.
 */
export class FakeClock implements Clock {
  #now: number
  #nextId = 1
  readonly #timers = new Map<number, FakeTimer>()
  readonly #handles = new WeakMap<object, number>()

  constructor(start = 1000) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const id = this.#nextId++
    // Like the system clock: a negative or NaN delay fires as soon as time moves.
    const delay = Number.isNaN(ms) ? 0 : Math.max(0, ms)
    this.#timers.set(id, { id, at: this.#now + delay, fn })
    const handle = Object.freeze({ fakeTimer: id })
    this.#handles.set(handle, id)
    return handle
  }

  clearTimer(handle: TimerHandle): void {
    const id = this.#handles.get(handle)
    if (id !== undefined) this.#timers.delete(id)
  }

  /** Timers set and not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.size
  }

  /** When the earliest pending timer is due, or undefined when none is. */
  get nextTimerAt(): number | undefined {
    return this.#next(Number.POSITIVE_INFINITY)?.at
  }

  /** Moves time forward by `ms`, firing due timers in order, synchronously. */
  advance(ms: number): void {
    const target = this.#target(ms)
    for (let t = this.#next(target); t; t = this.#next(target)) this.#fire(t)
    this.#now = target
  }

  /**
   * Moves time forward by `ms`, firing due timers in order and letting pending
   * promise reactions run before the first timer and after each one, so a reply
   * that arrives "now" is handled before the next timer is due.
   */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.#target(ms)
    await flushMicrotasks()
    for (let t = this.#next(target); t; t = this.#next(target)) {
      this.#fire(t)
      await flushMicrotasks()
    }
    this.#now = target
    await flushMicrotasks()
  }

  /** Advances to the absolute time `at` (see {@link advanceAsync}). */
  advanceToAsync(at: number): Promise<void> {
    return this.advanceAsync(at - this.#now)
  }

  /**
   * Moves time forward WITHOUT firing any timer: what a blocked event loop or a
   * paused process looks like to the code under test.
   */
  jump(ms: number): void {
    this.#now = this.#target(ms)
  }

  #target(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`cannot advance a FakeClock by ${ms} ms`)
    return this.#now + ms
  }

  #next(until: number): FakeTimer | undefined {
    let best: FakeTimer | undefined
    for (const t of this.#timers.values()) {
      if (t.at > until) continue
      if (!best || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t
    }
    return best
  }

  #fire(t: FakeTimer): void {
    this.#timers.delete(t.id)
    if (t.at > this.#now) this.#now = t.at
    t.fn()
  }
}
