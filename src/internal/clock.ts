/**
 * The one source of time for every deadline in the library. Production uses the
 * monotonic clock, so wall-clock steps (NTP, a manual `date -s`, a VM resume) never
 * move a deadline; tests inject a fake clock to drive timing logic without sleeping.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale; only differences are meaningful. */
  now(): number
  /** Calls `fn` after `ms`; the returned handle never keeps the process alive. */
  setTimer(fn: () => void, ms: number): TimerHandle
  clearTimer(handle: TimerHandle): void
}

/** An opaque timer handle returned by {@link Clock.setTimer}. */
export type TimerHandle = { readonly __timer: unique symbol } | object

/** setTimeout's documented maximum; longer delays would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS))
    t.unref()
    return t
  },
  clearTimer(handle) {
    clearTimeout(handle as NodeJS.Timeout)
  },
}
