/**
 * Every error this library rejects with is a {@link LockError}. Match on its
 * `code`, never on the message text: codes are stable, messages may improve.
 *
 * @module
 */

/** The stable codes a {@link LockError} can carry. */
export type LockErrorCode =
  | 'ERR_LOCK_INVALID_ARGUMENT'
  | 'ERR_LOCK_ACQUIRE_TIMEOUT'
  | 'ERR_LOCK_LOST'
  | 'ERR_LOCK_BACKEND'
  | 'ERR_LOCK_CLOSED'
  | 'ERR_LOCK_QUORUM'
  | 'ERR_LOCK_CROSS_SLOT'

/** Why a held lock stopped being held. */
export type LockLostReason =
  /** The lease's local deadline passed before an extension was even tried (a blocked event loop, a paused process). */
  | 'expired'
  /**
   * The key was gone from Redis before the lease ran out: deleted (`DEL`, the CLI's
   * `release --force`), evicted, or lost in a restart without persistence.
   */
  | 'deleted'
  /** The key now holds another owner's token. */
  | 'stolen'
  /** Redis did not confirm an extension before the local deadline. */
  | 'unreachable'
  /** The `Lock` object was garbage-collected without being released. */
  | 'abandoned'
  /** The `Locker` was closed while the lock was held. */
  | 'closed'

/**
 * Marks this library's errors on their prototype, so {@link isLockError} also knows an
 * error created by another copy of the library in the same process (the CommonJS build
 * beside the ESM one, two installed versions), which `instanceof` does not.
 */
const LOCK_ERROR_BRAND = Symbol.for('async-redis-lock.LockError')

/**
 * Base class of every error the library produces.
 *
 * @example
 * ```ts
 * try {
 *   await locker.acquire('job')
 * } catch (err) {
 *   if (err instanceof LockError && err.code === 'ERR_LOCK_ACQUIRE_TIMEOUT') {
 *     // busy: somebody else holds it
 *   } else throw err
 * }
 * ```
 */
export class LockError extends Error {
  /** The class name, also shown in stack traces. */
  override name = 'LockError'
  /** Stable machine-readable code. */
  readonly code: LockErrorCode

  constructor(code: LockErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}
Object.defineProperty(LockError.prototype, LOCK_ERROR_BRAND, { value: true })

/** A caller passed a bad option, key or client. Nothing was sent to Redis. */
export class InvalidArgumentError extends LockError {
  /** The class name, also shown in stack traces. */
  override name = 'InvalidArgumentError' as const
  declare readonly code: 'ERR_LOCK_INVALID_ARGUMENT'
  /** The option or parameter at fault. */
  readonly argument: string

  constructor(argument: string, message: string) {
    super('ERR_LOCK_INVALID_ARGUMENT', message)
    this.argument = argument
  }
}

/** `acquire` kept finding the keys held by someone else until `retryTimeoutMs` ran out. */
export class AcquireTimeoutError extends LockError {
  /** The class name, also shown in stack traces. */
  override name = 'AcquireTimeoutError' as const
  declare readonly code: 'ERR_LOCK_ACQUIRE_TIMEOUT'
  /** The keys asked for (with the Locker's prefix). */
  readonly keys: readonly string[]
  /** How long `acquire` waited, in milliseconds. */
  readonly waitedMs: number
  /** How many acquisition attempts were sent. */
  readonly attempts: number

  constructor(keys: readonly string[], waitedMs: number, attempts: number) {
    super(
      'ERR_LOCK_ACQUIRE_TIMEOUT',
      `could not acquire ${describeKeys(keys)}: held by another owner for the whole ${Math.round(waitedMs)} ms ` +
        `(${attempts} attempt${attempts === 1 ? '' : 's'})`,
    )
    this.keys = keys
    this.waitedMs = waitedMs
    this.attempts = attempts
  }
}

/** A held lock was lost; `lock.signal` aborts with this error as its reason. */
export class LockLostError extends LockError {
  /** The class name, also shown in stack traces. */
  override name = 'LockLostError' as const
  declare readonly code: 'ERR_LOCK_LOST'
  /** What happened to the lease. */
  readonly reason: LockLostReason
  /** The keys of the lost lock. */
  readonly keys: readonly string[]

  constructor(keys: readonly string[], reason: LockLostReason, options?: { cause?: unknown }) {
    super('ERR_LOCK_LOST', `lock on ${describeKeys(keys)} was lost: ${LOST_TEXT[reason]}`, options)
    this.reason = reason
    this.keys = keys
  }
}

/**
 * Redis answered with an error, did not answer in time, or could not be reached.
 * This is never used for contention; the Redis error is the `cause`.
 */
export class BackendError extends LockError {
  /** The class name, also shown in stack traces. */
  override name = 'BackendError' as const
  declare readonly code: 'ERR_LOCK_BACKEND'
  /** The operation that failed. */
  readonly operation: 'connect' | 'acquire' | 'extend' | 'release' | 'inspect' | 'subscribe'
  /**
   * For an `acquire` that gave up on transient failures (a restart, a failover, a lost
   * connection) at its `retryTimeoutMs`: how many attempts it sent; the last failure is
   * the `cause`. Undefined for a failure that was not retried.
   */
  readonly attempts: number | undefined

  constructor(
    operation: BackendError['operation'],
    message: string,
    options?: { cause?: unknown; attempts?: number },
  ) {
    super('ERR_LOCK_BACKEND', message, options)
    this.operation = operation
    this.attempts = options?.attempts
  }
}

/** The `Locker` was closed; it takes no new work. */
export class LockerClosedError extends LockError {
  /** The class name, also shown in stack traces. */
  override name = 'LockerClosedError' as const
  declare readonly code: 'ERR_LOCK_CLOSED'

  constructor() {
    super('ERR_LOCK_CLOSED', 'the Locker is closed')
  }
}

/** What one node of a quorum did in the attempt that failed. */
export interface NodeOutcome {
  /** The node's position in the list the Locker was given. */
  readonly node: number
  /**
   * `acquired`, `held` (by someone else), `error` or `timeout`. For an extension
   * `acquired` means extended and `held` that the node no longer holds the lease for
   * us; for a release or an inspection `acquired` means the node answered.
   */
  readonly outcome: 'acquired' | 'held' | 'error' | 'timeout'
  /** The error, for `error` and `timeout`. */
  readonly error?: unknown
}

/**
 * A quorum of independent Redis nodes could not be reached: too many nodes failed
 * (errors, timeouts) for a majority. Contention alone is never this error.
 */
export class QuorumError extends LockError {
  /** The class name, also shown in stack traces. */
  override name = 'QuorumError' as const
  declare readonly code: 'ERR_LOCK_QUORUM'
  /** The operation that failed. */
  readonly operation: BackendError['operation']
  /** The settled outcome of every node in the failed attempt. */
  readonly outcomes: readonly NodeOutcome[]

  constructor(operation: BackendError['operation'], message: string, outcomes: readonly NodeOutcome[]) {
    super('ERR_LOCK_QUORUM', message)
    this.operation = operation
    this.outcomes = outcomes
  }
}

/** The keys of one multi-key lock map to different Redis Cluster hash slots. */
export class CrossSlotError extends LockError {
  /** The class name, also shown in stack traces. */
  override name = 'CrossSlotError' as const
  declare readonly code: 'ERR_LOCK_CROSS_SLOT'
  /** Each key with its hash slot. */
  readonly slots: readonly {
    /** A key of the lock, with the Locker's prefix. */
    readonly key: string
    /** Its hash slot (0 to 16383). */
    readonly slot: number
  }[]

  constructor(slots: readonly { readonly key: string; readonly slot: number }[]) {
    const shown = slots.map((s) => `${JSON.stringify(s.key)} → ${s.slot}`).join(', ')
    super(
      'ERR_LOCK_CROSS_SLOT',
      `on a Redis Cluster all keys of one lock must share a hash slot; got ${shown}. ` +
        'Give them a common hash tag, e.g. "{order:42}:a" and "{order:42}:b"',
    )
    this.slots = slots
  }
}

const LOST_TEXT: Record<LockLostReason, string> = {
  expired: 'its lease ran out before it could be extended',
  deleted: 'the key was gone from Redis before the lease ran out (deleted, evicted, or lost in a restart)',
  stolen: 'the key now belongs to another owner',
  unreachable: 'Redis did not confirm an extension before the lease ran out',
  abandoned: 'the Lock was garbage-collected without being released',
  closed: 'its Locker was closed',
}

/** Each error class by its code. */
export interface LockErrorsByCode {
  /** Bad keys, options or client. */
  ERR_LOCK_INVALID_ARGUMENT: InvalidArgumentError
  /** Held by others until `retryTimeoutMs`. */
  ERR_LOCK_ACQUIRE_TIMEOUT: AcquireTimeoutError
  /** A held lock was lost. */
  ERR_LOCK_LOST: LockLostError
  /** Redis failed. */
  ERR_LOCK_BACKEND: BackendError
  /** The Locker is closed. */
  ERR_LOCK_CLOSED: LockerClosedError
  /** A quorum could not decide. */
  ERR_LOCK_QUORUM: QuorumError
  /** Keys of several cluster slots. */
  ERR_LOCK_CROSS_SLOT: CrossSlotError
}

/**
 * Every error the library rejects with, as a union discriminated by `code`: after
 * `switch (err.code)` each branch sees its own class and fields.
 *
 * @example
 * ```ts
 * if (isLockError(err)) {
 *   switch (err.code) {
 *     case 'ERR_LOCK_ACQUIRE_TIMEOUT':
 *       console.log(`busy after ${err.waitedMs} ms`)
 *       break
 *     case 'ERR_LOCK_LOST':
 *       console.log(err.reason)
 *   }
 * }
 * ```
 */
export type AnyLockError = LockErrorsByCode[LockErrorCode]

/**
 * True when `err` is an error of this library (with `code`: of that code), narrowed
 * to its class. Unlike `instanceof`, it also holds for an error made by another copy
 * of the library loaded in the same process (its CommonJS and ESM builds side by side);
 * such an error has the class's fields, but `instanceof` that class is still false.
 *
 * @example
 * ```ts
 * if (isLockError(err, 'ERR_LOCK_ACQUIRE_TIMEOUT')) console.log(err.attempts)
 * ```
 */
export function isLockError<C extends LockErrorCode = LockErrorCode>(
  err: unknown,
  code?: C,
): err is LockErrorsByCode[C] {
  const ours =
    err instanceof LockError ||
    (typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[LOCK_ERROR_BRAND] === true)
  return ours && (code === undefined || (err as LockError).code === code)
}

function describeKeys(keys: readonly string[]): string {
  const shown = keys.slice(0, 3).map((k) => JSON.stringify(k))
  return keys.length > 3 ? `${shown.join(', ')} and ${keys.length - 3} more` : shown.join(', ')
}
