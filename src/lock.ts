import { InvalidArgumentError } from './errors.js'
import type { Lease, Leases } from './leases.js'

/**
 * One held lock on one or more keys, from a {@link Locker}.
 *
 * While held, its lease is extended in the background. Release it with
 * `await lock.release()` or by scope with `await using lock = await locker.acquire(k)`.
 * A Lock that is dropped without release is released once garbage-collected; do
 * not rely on that timing.
 *
 * @example
 * ```ts
 * await using lock = await locker.acquire('orders:42', { fencing: true })
 * await chargeCard({ signal: lock.signal, fence: lock.fence })
 * ```
 */
export interface Lock extends AsyncDisposable {
  /** The locked Redis keys, with the Locker's prefix. */
  readonly keys: readonly string[]
  /** The random owner token stored in each key: `arl1.` and 128 random bits, base64url (27 characters). */
  readonly token: string
  /**
   * Fencing token, for locks acquired with `fencing: true`: strictly greater than the
   * fence of every earlier fenced acquisition of any of these keys on this Redis. Pass
   * it to the resource you protect and have it reject writes carrying a smaller fence
   * than it has seen.
   * @throws InvalidArgumentError `ERR_LOCK_INVALID_ARGUMENT` (argument `fencing`) when
   * the lock was acquired without `fencing: true`: there is no token to read. Read it
   * only on locks from a Locker or an `acquire` call with `fencing: true`.
   */
  readonly fence: bigint
  /**
   * Aborts when the lock is lost (reason: a `LockLostError` with code `ERR_LOCK_LOST`
   * and a `reason`), no later than the local deadline, i.e. before Redis can give the
   * keys to someone else. Not aborted by a normal `release()`.
   */
  readonly signal: AbortSignal
  /**
   * Synchronous: false once released, lost, or past the local deadline by the
   * monotonic clock, even if no timer has run yet (a blocked event loop, a paused
   * process).
   */
  isHeld(): boolean
  /** Milliseconds until the local deadline (0 when not held). */
  remainingMs(): number
  /**
   * Extends the lease now (auto-extension runs anyway). After `release()` (also one
   * still in flight) it does nothing.
   * @throws LockLostError `ERR_LOCK_LOST` if the lock is or turns out to be lost.
   * @throws BackendError `ERR_LOCK_BACKEND` if Redis failed; the lock stays held until its deadline.
   */
  extend(): Promise<void>
  /**
   * Releases the lock: deletes each key that still holds this token and wakes a
   * waiter. Idempotent.
   * @returns true if this call removed the lock, false if it was already gone
   *          (released before, expired or taken over, or released by `locker.close()`).
   * @throws BackendError `ERR_LOCK_BACKEND` if Redis failed; the lease then expires by itself.
   */
  release(): Promise<boolean>
  /** Releases like `release()` but never rejects: a failure leaves the lease to expire. */
  [Symbol.asyncDispose](): Promise<void>
}

/** The Lock handed to users: a thin view of one lease, answered by the lease table. */
export class LockHandle implements Lock {
  readonly keys: readonly string[]
  readonly token: string
  readonly #lease: Lease
  readonly #leases: Leases

  constructor(lease: Lease, leases: Leases) {
    this.#lease = lease
    this.#leases = leases
    this.keys = lease.keys
    this.token = lease.token
  }

  /** The lease a Lock views (the lease table's own record of it). */
  static leaseOf(lock: Lock): Lease {
    return (lock as LockHandle).#lease
  }

  /** The fence without the throw: undefined for a lock acquired without fencing. */
  static fenceOf(lock: Lock): bigint | undefined {
    return (lock as LockHandle).#lease.fence
  }

  get fence(): bigint {
    const fence = this.#lease.fence
    if (fence === undefined) {
      throw new InvalidArgumentError(
        'fencing',
        'lock.fence: this lock was acquired without fencing, so it has no fencing token; pass { fencing: true } to acquire() or to the Locker',
      )
    }
    return fence
  }

  get signal(): AbortSignal {
    return this.#leases.signal(this.#lease)
  }

  isHeld(): boolean {
    return this.#leases.isHeld(this.#lease)
  }

  remainingMs(): number {
    return this.#leases.remainingMs(this.#lease)
  }

  extend(): Promise<void> {
    return this.#leases.extend(this.#lease)
  }

  release(): Promise<boolean> {
    return this.#leases.release(this.#lease)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#leases.release(this.#lease).catch(() => {})
  }

  get [Symbol.toStringTag](): string {
    return 'Lock'
  }
}
