/** Resolves after `ms` or when `signal` aborts, whichever comes first; never rejects. */
export function abortableSleep(ms: number, signal: AbortSignal | undefined, ref = true): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    if (!ref) timer.unref()
    signal?.addEventListener('abort', done, { once: true })
  })
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
    const onAbort = () => {
      reject(signal.reason)
      onAbandoned(pending)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    pending.then(
      (r) => {
        signal.removeEventListener('abort', onAbort)
        resolve(r)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
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
