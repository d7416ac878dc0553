import { setTimeout as delay } from 'node:timers/promises'

export interface WaitForOptions {
  timeoutMs?: number | undefined
  intervalMs?: number | undefined
  /** Describes the awaited condition in the timeout error, e.g. 'lock key to expire'. */
  message?: string | undefined
}

export function sleep(ms: number): Promise<void> {
  return delay(ms)
}

/**
 * Polls `predicate` until it returns true. A throwing predicate counts as "not yet" so that
 * conditions like "key exists" can be written without try/catch, but the last error is kept
 * for the timeout message because it usually explains why the condition never became true.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  options: WaitForOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 5_000
  const intervalMs = options.intervalMs ?? 20
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      if (await predicate()) return
      lastError = undefined
    } catch (error) {
      lastError = error
    }
    if (Date.now() >= deadline) {
      const what = options.message ? ` waiting for ${options.message}` : ''
      const cause = lastError === undefined ? '' : `; last predicate error: ${String(lastError)}`
      throw new Error(`waitFor timed out after ${timeoutMs} ms${what}${cause}`, { cause: lastError })
    }
    await delay(Math.min(intervalMs, Math.max(0, deadline - Date.now())))
  }
}

/** Rejects with `message` if `promise` has not settled within `ms`; the timer never outlives the race. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message?: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message ?? `timed out after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A pending promise whose settlement can be checked without awaiting it. */
export interface Tracked<T> {
  readonly promise: Promise<T>
  settled: boolean
}

export function track<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { promise, settled: false }
  const done = () => {
    t.settled = true
  }
  void promise.then(done, done)
  return t
}
