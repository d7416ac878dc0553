import type { LockLostError } from '../errors.js'
import type { ResolvedLockOptions } from '../options.js'
import { checkOnRead } from './abort.js'

/** Where a lease is in its life. */
export type LeaseState = 'held' | 'released' | 'lost'

/**
 * The state of one held lock: what the renewer schedules and what the public
 * `Lock` reads. It never references the `Lock` object, so an unreleased Lock can
 * be garbage-collected (and its lease then released) while the renewer still runs.
 */
export class Lease {
  readonly keys: readonly string[]
  readonly token: string
  /** Undefined when acquired without fencing. */
  readonly fence: bigint | undefined
  readonly lifetimeMs: number
  readonly extendIntervalMs: number
  /** Subtracted from every validity period for clock-rate differences and timer lateness. */
  readonly driftMs: number
  /** Leases due within this much of a batch are extended with it, so batches coalesce. */
  readonly batchWindowMs: number
  /** Created on first use of `lock.signal`: most locks never need one. */
  #controller: AbortController | undefined
  /** Set by the Locker (its renewer): declares the lease lost if its deadline has passed. */
  checker: { check(lease: Lease): boolean } | undefined
  state: LeaseState = 'held'
  /** Monotonic time after which the lease may have expired on the server. */
  deadline: number
  /** Monotonic time of the next scheduled extension. */
  nextDueAt: number
  /** The extension in flight, if any (at most one); it never rejects. */
  inFlight: Promise<void> | undefined
  /** The error of the last failed extension, cleared by a successful one. */
  lastError: unknown
  lostError: LockLostError | undefined
  /**
   * The lease's Lock, held strongly until the lease's first extension, when the Locker
   * hands it to its FinalizationRegistry (and clears this). Registering costs about
   * as much as the rest of the Locker's work in an uncontended cycle, and most locks
   * are released before their first extension, so a short-lived lock never pays it;
   * a dropped lock is then noticed after its first extension instead of at once.
   */
  unwatched: object | undefined

  constructor(
    keys: readonly string[],
    token: string,
    fence: bigint | undefined,
    options: ResolvedLockOptions,
    sentAt: number,
  ) {
    this.keys = keys
    this.token = token
    this.fence = fence
    this.lifetimeMs = options.lifetimeMs
    this.extendIntervalMs = options.extendIntervalMs
    this.driftMs = driftFor(options.lifetimeMs)
    this.batchWindowMs = options.extendIntervalMs / 5
    this.deadline = sentAt + options.lifetimeMs - this.driftMs
    this.nextDueAt = sentAt + options.extendIntervalMs
  }

  /**
   * The loss signal. Reading its state (`aborted`, `reason`, `throwIfAborted()`)
   * first compares the deadline with the monotonic clock, so code that runs after
   * a pause or a blocked event loop sees it aborted even before any timer fired.
   */
  get signal(): AbortSignal {
    if (this.#controller) return this.#controller.signal
    this.#controller = new AbortController()
    if (this.lostError) this.#controller.abort(this.lostError)
    else checkOnRead(this.#controller.signal, () => this.checker?.check(this))
    return this.#controller.signal
  }

  /** Aborts the signal (if anyone asked for it) with the loss error. */
  abort(error: LockLostError): void {
    this.lostError = error
    this.#controller?.abort(error)
  }
}

/** 1% of the lease plus 2 ms: room for clock-rate error between us and Redis, and timer lateness. */
export function driftFor(lifetimeMs: number): number {
  return Math.ceil(lifetimeMs * 0.01) + 2
}
