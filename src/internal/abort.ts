import type { Clock } from './clock.js'

/** The callbacks waiting on each signal: one listener on the signal serves them all. */
const watchers = new WeakMap<AbortSignal, Set<() => void>>()

/**
 * Calls `fn` once when `signal` aborts; returns the function that stops watching. A
 * caller's signal is often shared by many acquisitions (a request's signal): one
 * listener per signal, however many of them wait, so Node never warns of a leak
 * (MaxListenersExceededWarning past ten listeners) and the caller's signal is left as
 * it was when they are done.
 */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  let set = watchers.get(signal)
  if (!set) {
    const fns = new Set<() => void>()
    set = fns
    watchers.set(signal, fns)
    signal.addEventListener(
      'abort',
      () => {
        watchers.delete(signal)
        for (const f of [...fns]) f()
      },
      { once: true },
    )
  }
  const own = () => fn()
  set.add(own)
  return () => {
    set.delete(own)
  }
}

/**
 * Settles like `pending`, but rejects with the signal's reason if it aborts first;
 * `onAbandoned` then gets `pending`, to undo a success that arrives too late.
 */
export function raceAbort<T>(
  pending: Promise<T>,
  signal: AbortSignal,
  onAbandoned: (late: Promise<T>) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const stop = onAbort(signal, () => {
      reject(signal.reason)
      onAbandoned(pending)
    })
    pending.then(
      (r) => {
        stop()
        resolve(r)
      },
      (e: unknown) => {
        stop()
        reject(e)
      },
    )
  })
}

const proto = AbortSignal.prototype
const abortedGetter = Object.getOwnPropertyDescriptor(proto, 'aborted')?.get
const reasonGetter = Object.getOwnPropertyDescriptor(proto, 'reason')?.get
const nativeThrowIfAborted = proto.throwIfAborted
const kCheck = Symbol('checkBeforeRead')

type Checked = AbortSignal & { [kCheck]: () => void }

// Shared accessors (one set for all signals, not closures per lock): each runs the
// signal's own check, then defers to the built-in behaviour.
const shadow: PropertyDescriptorMap = {
  aborted: {
    configurable: true,
    get(this: Checked) {
      this[kCheck]()
      return abortedGetter?.call(this)
    },
  },
  reason: {
    configurable: true,
    get(this: Checked) {
      this[kCheck]()
      return reasonGetter?.call(this)
    },
  },
  throwIfAborted: {
    configurable: true,
    writable: true,
    value(this: Checked) {
      this[kCheck]()
      nativeThrowIfAborted.call(this)
    },
  },
}

/** Makes every read of `signal`'s state run `check` first (which may abort it). */
export function checkOnRead(signal: AbortSignal, check: () => void): void {
  ;(signal as Checked)[kCheck] = check
  Object.defineProperties(signal, shadow)
}

/** Sleeps `ms` (a backoff), ended early by any of `signals`. Never rejects. */
export function pause(
  clock: Clock,
  ms: number,
  signals: readonly (AbortSignal | undefined)[],
): Promise<void> {
  if (signals.some((s) => s?.aborted)) return Promise.resolve()
  return new Promise<void>((resolve) => {
    const stops: (() => void)[] = []
    const done = () => {
      clock.clearTimer(timer)
      for (const stop of stops) stop()
      resolve()
    }
    const timer = clock.setTimer(done, ms)
    for (const s of signals) if (s) stops.push(onAbort(s, done))
  })
}
