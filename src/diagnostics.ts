/**
 * Lock events on `node:diagnostics_channel`, for metrics, logs and tracers
 * (OpenTelemetry, APMs) without a dependency on any of them.
 *
 * Every publisher first checks `hasSubscribers`, so with nobody listening no
 * payload is built and nothing but a property read is added to the hot path.
 * No payload carries a lock's owner token: it is the capability to release or
 * extend the lock, and subscribers are often log exporters.
 *
 * Every payload says how the keys are held: `kind` (`exclusive`, `shared` or
 * `semaphore`) and `limit` (a semaphore's limit; null for the other kinds); an
 * extension payload has them per lease (`kinds`, `limits`).
 *
 * @module
 */
import { channel, tracingChannel } from 'node:diagnostics_channel'
import { LockError, type LockErrorCode, type LockLostReason } from './errors.js'
import type { HoldMode } from './scripts/index.js'
import type { LockKind } from './types.js'

/**
 * The names of the channels a {@link Locker} publishes on. Subscribe with
 * `diagnostics_channel.subscribe(name, fn)`; the two tracing names are for
 * `diagnostics_channel.tracingChannel(name)`, which wraps each `acquire`/
 * `tryAcquire`/`withLock` acquisition and each `release` in start/end/asyncStart/
 * asyncEnd/error events.
 */
export const diagnosticsChannels = {
  /** {@link AcquireStartMessage}: an acquisition begins (after its arguments were checked). */
  acquireStart: 'async-redis-lock:acquire:start',
  /** {@link AcquireSuccessMessage}: an acquisition got the lock. */
  acquireSuccess: 'async-redis-lock:acquire:success',
  /** {@link AcquireFailureMessage}: an acquisition failed, or `tryAcquire` found the keys held. */
  acquireFailure: 'async-redis-lock:acquire:failure',
  /** {@link ExtendMessage}: one extension script call settled (a batch of leases). */
  extend: 'async-redis-lock:extend',
  /** {@link LostMessage}: a held lock was lost. */
  lost: 'async-redis-lock:lost',
  /** {@link ReleaseMessage}: a release was sent to Redis and answered. */
  release: 'async-redis-lock:release',
  /** TracingChannel around each acquisition; context {@link AcquireTraceContext}. */
  acquireTrace: 'async-redis-lock:acquire',
  /** TracingChannel around each `release()`; context {@link ReleaseTraceContext}. */
  releaseTrace: 'async-redis-lock:release',
} as const

/** Published on `async-redis-lock:acquire:start`. */
export interface AcquireStartMessage {
  /** The keys asked for, with the Locker's prefix. */
  readonly keys: readonly string[]
  /** How the keys are held: `exclusive` (a plain lock), `shared` (a shared hold) or `semaphore` (a permit). */
  readonly kind: LockKind
  /** The semaphore's limit; null for an exclusive or shared lock. */
  readonly limit: number | null
  /** True for `tryAcquire` (one attempt, no waiting). */
  readonly tryOnce: boolean
}

/** Published on `async-redis-lock:acquire:success`. */
export interface AcquireSuccessMessage {
  /** The locked keys, with the Locker's prefix. */
  readonly keys: readonly string[]
  /** How the keys are held: `exclusive` (a plain lock), `shared` (a shared hold) or `semaphore` (a permit). */
  readonly kind: LockKind
  /** The semaphore's limit; null for an exclusive or shared lock. */
  readonly limit: number | null
  /** The lock's fencing token; undefined when acquired without `fencing`. */
  readonly fence: bigint | undefined
  /** Milliseconds from the start of the acquisition to the lock. */
  readonly waitedMs: number
  /** Acquisition attempts sent to Redis. */
  readonly attempts: number
}

/** Published on `async-redis-lock:acquire:failure`. */
export interface AcquireFailureMessage {
  /** The keys asked for, with the Locker's prefix. */
  readonly keys: readonly string[]
  /** How the keys are held: `exclusive` (a plain lock), `shared` (a shared hold) or `semaphore` (a permit). */
  readonly kind: LockKind
  /** The semaphore's limit; null for an exclusive or shared lock. */
  readonly limit: number | null
  /** `busy` when `tryAcquire` found a key held (it resolves null); `error` when the acquisition threw. */
  readonly outcome: 'busy' | 'error'
  /** The {@link LockError} code thrown; undefined for `busy` and for other errors (an abort reason). */
  readonly code: LockErrorCode | undefined
  /** What the acquisition threw (undefined for `busy`). */
  readonly error: unknown
  /** Milliseconds from the start of the acquisition to the failure. */
  readonly waitedMs: number
  /** Acquisition attempts sent to Redis. */
  readonly attempts: number
}

/** Published on `async-redis-lock:extend`, once per extension script call. */
export interface ExtendMessage {
  /** How many leases the call extended or tried to. */
  readonly size: number
  /** Each lease's keys, in the order of `ok`. */
  readonly keys: readonly (readonly string[])[]
  /** Each lease's kind, in the order of `ok`. */
  readonly kinds: readonly LockKind[]
  /** Each lease's semaphore limit (null for an exclusive or shared lock), in the order of `ok`. */
  readonly limits: readonly (number | null)[]
  /**
   * Per lease: true if extended and still held. False when it was found lost, or
   * Redis failed or did not answer (then it is retried until its deadline).
   */
  readonly ok: readonly boolean[]
  /** The error of the whole call when Redis failed, else undefined. */
  readonly error: unknown
}

/** Published on `async-redis-lock:lost`. */
export interface LostMessage {
  /** The lost lock's keys, with the Locker's prefix. */
  readonly keys: readonly string[]
  /** How the keys are held: `exclusive` (a plain lock), `shared` (a shared hold) or `semaphore` (a permit). */
  readonly kind: LockKind
  /** The semaphore's limit; null for an exclusive or shared lock. */
  readonly limit: number | null
  /** Why it was lost (as in the signal's `LockLostError`). */
  readonly reason: LockLostReason
}

/** Published on `async-redis-lock:release`. */
export interface ReleaseMessage {
  /** The released lock's keys, with the Locker's prefix. */
  readonly keys: readonly string[]
  /** How the keys are held: `exclusive` (a plain lock), `shared` (a shared hold) or `semaphore` (a permit). */
  readonly kind: LockKind
  /** The semaphore's limit; null for an exclusive or shared lock. */
  readonly limit: number | null
  /** True if this release removed the lock; false if it was already gone from Redis. */
  readonly removed: boolean
}

/**
 * The context object of the `async-redis-lock:acquire` TracingChannel. As with
 * every TracingChannel, `result` is set before asyncEnd and `error` before error.
 */
export interface AcquireTraceContext {
  /** The keys asked for, with the Locker's prefix. */
  readonly keys: readonly string[]
  /** How the keys are held: `exclusive` (a plain lock), `shared` (a shared hold) or `semaphore` (a permit). */
  readonly kind: LockKind
  /** The semaphore's limit; null for an exclusive or shared lock. */
  readonly limit: number | null
  /** True for `tryAcquire`. */
  readonly tryOnce: boolean
  /** The lock got (token-free: keys and fence), or null when `tryAcquire` found it held. */
  result?: {
    /** The locked keys. */
    readonly keys: readonly string[]
    /** How they are held (as on the context). */
    readonly kind: LockKind
    /** The semaphore's limit; null for an exclusive or shared lock. */
    readonly limit: number | null
    /** The lock's fencing token; undefined when acquired without `fencing`. */
    readonly fence: bigint | undefined
  } | null
  /** What the acquisition threw. */
  error?: unknown
}

/** The context object of the `async-redis-lock:release` TracingChannel. */
export interface ReleaseTraceContext {
  /** The lock's keys, with the Locker's prefix. */
  readonly keys: readonly string[]
  /** How the keys are held: `exclusive` (a plain lock), `shared` (a shared hold) or `semaphore` (a permit). */
  readonly kind: LockKind
  /** The semaphore's limit; null for an exclusive or shared lock. */
  readonly limit: number | null
  /** What `release()` resolved to. */
  result?: boolean
  /** What `release()` threw. */
  error?: unknown
}

const acquireStart = channel(diagnosticsChannels.acquireStart)
const acquireSuccess = channel(diagnosticsChannels.acquireSuccess)
const acquireFailure = channel(diagnosticsChannels.acquireFailure)
const extend = channel(diagnosticsChannels.extend)
const lost = channel(diagnosticsChannels.lost)
const release = channel(diagnosticsChannels.release)
const acquireTrace = tracingChannel<unknown, AcquireTraceContext>(diagnosticsChannels.acquireTrace)
const releaseTrace = tracingChannel<unknown, ReleaseTraceContext>(diagnosticsChannels.releaseTrace)

/** What the publishers need of a lease: its keys and how they are held (never its token). */
export interface HeldKeys {
  readonly keys: readonly string[]
  readonly mode: HoldMode
}

/** The payload's `limit` for `mode`: the semaphore's limit, null for the other kinds. */
function limitOf(mode: HoldMode): number | null {
  return mode.kind === 'semaphore' ? mode.limit : null
}

/** Counts attempts for the acquire events; only allocated while someone listens. */
export interface AcquireTally {
  attempts: number
}

/** True when anyone listens to an acquire channel (then {@link observeAcquire} has work to do). */
export function acquireObserved(): boolean {
  return (
    acquireTrace.hasSubscribers ||
    acquireStart.hasSubscribers ||
    acquireSuccess.hasSubscribers ||
    acquireFailure.hasSubscribers
  )
}

/**
 * Runs one acquisition (`run`), publishing its start/success/failure and tracing
 * it. Without subscribers it is just `run(undefined)`.
 */
export function observeAcquire<L>(
  keys: readonly string[],
  mode: HoldMode,
  tryOnce: boolean,
  now: () => number,
  fenceOf: (lock: L) => bigint | undefined,
  run: (tally: AcquireTally | undefined) => Promise<L | null>,
): Promise<L | null> {
  const tracing = acquireTrace.hasSubscribers
  if (!acquireObserved()) return run(undefined)
  const tally: AcquireTally = { attempts: 0 }
  const startedAt = now()
  const { kind } = mode
  const limit = limitOf(mode)
  if (acquireStart.hasSubscribers) {
    acquireStart.publish({ keys, kind, limit, tryOnce } satisfies AcquireStartMessage)
  }
  const settle = (lock: L | null, error: unknown, failed: boolean) => {
    const waitedMs = now() - startedAt
    if (lock !== null && !failed) {
      if (acquireSuccess.hasSubscribers) {
        const message: AcquireSuccessMessage = {
          keys,
          kind,
          limit,
          fence: fenceOf(lock),
          waitedMs,
          attempts: tally.attempts,
        }
        acquireSuccess.publish(message)
      }
    } else if (acquireFailure.hasSubscribers) {
      const message: AcquireFailureMessage = {
        keys,
        kind,
        limit,
        outcome: failed ? 'error' : 'busy',
        code: error instanceof LockError ? error.code : undefined,
        error,
        waitedMs,
        attempts: tally.attempts,
      }
      acquireFailure.publish(message)
    }
  }
  const observe = () =>
    run(tally).then(
      (lock) => {
        settle(lock, undefined, false)
        return lock
      },
      (err: unknown) => {
        settle(null, err, true)
        throw err
      },
    )
  if (!tracing) return observe()
  // The traced function resolves to a token-free view: TracingChannel puts it on the
  // context, and the Lock itself would hand every subscriber the owner token. It runs
  // `run` itself so that stores bound to the start channel (a span) are active in it.
  let got: L | null = null
  const context: AcquireTraceContext = { keys, kind, limit, tryOnce }
  return acquireTrace
    .tracePromise(async () => {
      got = await observe()
      return got === null ? null : { keys, kind, limit, fence: fenceOf(got) }
    }, context)
    .then(() => got)
}

/** True when the release TracingChannel has subscribers. */
export function releaseTraced(): boolean {
  return releaseTrace.hasSubscribers
}

/** Runs one `release()` inside the release TracingChannel when it has subscribers. */
export function traceRelease(lease: HeldKeys, run: () => Promise<boolean>): Promise<boolean> {
  if (!releaseTrace.hasSubscribers) return run()
  const context: ReleaseTraceContext = { keys: lease.keys, kind: lease.mode.kind, limit: limitOf(lease.mode) }
  return releaseTrace.tracePromise(run, context)
}

/** Publishes a release Redis answered. */
export function publishRelease(lease: HeldKeys, removed: boolean): void {
  if (!release.hasSubscribers) return
  const { keys, mode } = lease
  release.publish({ keys, kind: mode.kind, limit: limitOf(mode), removed } satisfies ReleaseMessage)
}

/** Publishes a loss. */
export function publishLost(lease: HeldKeys, reason: LockLostReason): void {
  if (!lost.hasSubscribers) return
  const { keys, mode } = lease
  lost.publish({ keys, kind: mode.kind, limit: limitOf(mode), reason } satisfies LostMessage)
}

/** True when an extension batch should be described (see {@link publishExtend}). */
export function extendObserved(): boolean {
  return extend.hasSubscribers
}

/**
 * Publishes one settled extension call of `leases` (only their keys and kinds go in
 * the payload); the caller checks {@link extendObserved} first.
 */
export function publishExtend(leases: readonly HeldKeys[], ok: readonly boolean[], error: unknown): void {
  const message: ExtendMessage = {
    size: leases.length,
    keys: leases.map((l) => l.keys),
    kinds: leases.map((l) => l.mode.kind),
    limits: leases.map((l) => limitOf(l.mode)),
    ok,
    error,
  }
  extend.publish(message)
}
