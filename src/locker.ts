import { Acquisition } from './acquisition.js'
import { connectUrl } from './adapters/connect.js'
import { backendFor } from './backends/detect.js'
import { acquireObserved, observeAcquire } from './diagnostics.js'
import { InvalidArgumentError, LockerClosedError } from './errors.js'
import { evictionCheck } from './eviction.js'
import { systemClock } from './internal/clock.js'
import type { LockerInternals } from './internal/testing.js'
import { checkModeKeys, inspection } from './kinds.js'
import { type Lock, LockHandle } from './lock.js'
import {
  ACQUIRE_OPTION_NAMES,
  type AcquireOptions,
  checkFromUrl,
  checkOptionNames,
  describe,
  type FromUrlOptions,
  LOCKER_OPTION_NAMES,
  type LockerOptions,
  type LockOptions,
  type ResolvedLockOptions,
  resolveKeys,
  resolveLockOptions,
  resolvePrefix,
} from './options.js'
import type { KeyInspection, LockerStats, RedisClient } from './types.js'

/** Clients that `fromUrl` created: the Locker owns and closes them. */
const ownedClients = new WeakSet<object>()

/** How long `inspect` and the operator's forced release wait for Redis. */
const INSPECT_TIMEOUT_MS = 5000

/** The operator's forced release (`release --force` of the CLI); not part of the public API. */
let releaseToken: (locker: Locker, key: string, token: string) => Promise<boolean>

/**
 * Hands out {@link Lock}s on Redis keys, keeps their leases extended, wakes waiters on
 * release. One Locker per Redis deployment and process is the intended use: it
 * shares one extension timer and one subscriber connection among all its locks.
 * It keeps its connection open (and so the process alive) until {@link Locker.close}.
 *
 * @example
 * ```ts
 * const locker = await Locker.fromUrl('redis://127.0.0.1:6379')
 * await using lock = await locker.acquire('orders:42')
 * // ... critical section; lock.signal aborts if the lock is lost
 * ```
 */
export class Locker implements AsyncDisposable {
  readonly #acquisition: Acquisition
  readonly #defaults: LockOptions
  readonly #resolvedDefaults: ResolvedLockOptions
  readonly #prefix: string
  readonly #now: () => number
  #closing: Promise<void> | undefined
  /** Warns once if Redis may evict lock keys (eviction.ts); started by the first acquisition. */
  readonly #checkEviction: () => void

  static {
    releaseToken = (locker, key, token) =>
      locker.#acquisition.releaseToken(locker.#key(key), token, INSPECT_TIMEOUT_MS)
  }

  /**
   * Wraps a connected client you own (it is never closed by the Locker), or an array
   * of clients of independent masters: a Redlock quorum, where a lock needs a majority.
   * @throws InvalidArgumentError `ERR_LOCK_INVALID_ARGUMENT` for an unknown client, an
   * empty array, the same client twice, a cluster client in an array, or bad options.
   */
  constructor(client: RedisClient, options?: LockerOptions)
  /** @internal The test suite's seams (negative controls, injected clock). */
  constructor(client: RedisClient, options: LockerOptions | undefined, internals: LockerInternals)
  constructor(client: RedisClient, options?: LockerOptions, internals: LockerInternals = {}) {
    checkOptionNames(options, LOCKER_OPTION_NAMES, 'Locker')
    this.#prefix = resolvePrefix(options?.prefix)
    const { prefix: _prefix, ...defaults } = options ?? {}
    this.#resolvedDefaults = resolveLockOptions([defaults]) // also fails fast on bad defaults
    this.#defaults = defaults
    const clock = internals.clock ?? systemClock
    this.#now = () => clock.now()
    this.#acquisition = new Acquisition({
      backend: backendFor(client, ownedClients.has(client), internals.scripts),
      clock,
      skipValidityCheck: internals.skipValidityCheck === true,
    })
    this.#checkEviction = evictionCheck(client)
  }

  /**
   * Connects to `url` (ioredis) and returns a Locker that owns the connection (closed
   * by {@link Locker.close}). The first connection is bounded by `connectTimeoutMs`;
   * after that the client reconnects on its own.
   * @throws InvalidArgumentError `ERR_LOCK_INVALID_ARGUMENT` for a malformed URL or options.
   * @throws BackendError `ERR_LOCK_BACKEND` when Redis cannot be reached in time, refuses
   * the credentials or the database: its `cause` is the client's last error.
   */
  static async fromUrl(url: string, options?: FromUrlOptions): Promise<Locker> {
    const { connectTimeoutMs, lockerOptions } = checkFromUrl(url, options)
    const { client, close } = await connectUrl(url, connectTimeoutMs)
    ownedClients.add(client)
    try {
      return new Locker(client as RedisClient, lockerOptions)
    } catch (err) {
      close()
      throw err
    }
  }

  /**
   * Acquires a lock on one key or on several keys at once (all or none), waiting
   * while it is held elsewhere: woken by the holder's release, by its lease running
   * out, or at the latest every `retryIntervalMs`, until `retryTimeoutMs`.
   * @throws AcquireTimeoutError `ERR_LOCK_ACQUIRE_TIMEOUT` when still held by others at the timeout.
   * @throws BackendError `ERR_LOCK_BACKEND` when Redis fails (never retried as if it were contention).
   * @throws InvalidArgumentError `ERR_LOCK_INVALID_ARGUMENT` for bad keys or options (nothing is sent).
   * @throws LockerClosedError `ERR_LOCK_CLOSED` once the Locker is closed.
   * @throws `options.signal.reason` when that signal aborts first.
   */
  acquire(keys: string | readonly string[], options?: AcquireOptions): Promise<Lock> {
    return this.#acquire(keys, options, false) as Promise<Lock>
  }

  /**
   * One attempt: the lock, or null if any key is held by someone else.
   * @throws BackendError, InvalidArgumentError, LockerClosedError as {@link Locker.acquire}.
   */
  tryAcquire(keys: string | readonly string[], options?: AcquireOptions): Promise<Lock | null> {
    return this.#acquire(keys, options, true)
  }

  /**
   * Runs `fn` under the lock and releases it when `fn` settles, whatever happens.
   * `fn` gets the lock's loss signal; a release failure never replaces `fn`'s own
   * result or error.
   * @throws as {@link Locker.acquire}, or whatever `fn` throws.
   */
  async withLock<T>(
    keys: string | readonly string[],
    fn: (signal: AbortSignal, lock: Lock) => T | PromiseLike<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    if (typeof fn !== 'function') {
      throw new InvalidArgumentError('fn', `withLock needs a function to run; received ${describe(fn)}`)
    }
    const lock = await this.acquire(keys, options)
    try {
      return await fn(lock.signal, lock)
    } finally {
      await lock.release().catch(() => {})
    }
  }

  /**
   * Reads a key's lock state without changing it.
   * @throws BackendError `ERR_LOCK_BACKEND` when Redis fails, or the key holds a value
   * this library did not write (another type, or a string not of its stored format):
   * "not a lock".
   * @throws InvalidArgumentError `ERR_LOCK_INVALID_ARGUMENT` for anything but one key.
   */
  async inspect(key: string): Promise<KeyInspection> {
    this.#throwIfClosed()
    const full = this.#key(key)
    const state = await this.#acquisition.inspect(full, INSPECT_TIMEOUT_MS)
    return inspection(full, state)
  }

  /** Counters since creation. */
  stats(): LockerStats {
    const { leases, waiters, acquired, acquiredByKind, releases } = this.#acquisition
    return {
      held: leases.size,
      heldByKind: leases.byKind(),
      waiting: waiters.waiting,
      acquired,
      acquiredByKind: { ...acquiredByKind },
      released: releases.released,
      lost: leases.lost,
      lostByReason: { ...leases.lostByReason },
      extendCalls: leases.batches,
      wakeups: waiters.wakeups,
      handedOver: releases.handedOver,
    }
  }

  /**
   * Releases every lock it holds (their signals abort with reason `closed`), rejects
   * pending acquisitions with `ERR_LOCK_CLOSED`, stops its timers and closes the
   * connections it owns. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#acquisition.close()
    return this.#closing
  }

  /** Same as {@link Locker.close}, for `await using locker = ...`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** Checks the input, then runs the acquisition; bad input rejects, it never throws synchronously. */
  #acquire(keysIn: unknown, options: AcquireOptions | undefined, single: boolean): Promise<Lock | null> {
    try {
      checkOptionNames(options, ACQUIRE_OPTION_NAMES, 'acquire')
      const opts =
        options === undefined ? this.#resolvedDefaults : resolveLockOptions([this.#defaults, options])
      const keys = resolveKeys(keysIn, this.#prefix)
      checkModeKeys(opts.mode, keys)
      this.#acquisition.checkKeys(keys, opts.mode)
      const signal = options?.signal
      if (signal !== undefined && !(signal instanceof AbortSignal)) {
        throw new InvalidArgumentError(
          'signal',
          `signal must be an AbortSignal; received ${describe(signal)}`,
        )
      }
      this.#throwIfClosed()
      signal?.throwIfAborted()
      this.#checkEviction()
      if (!acquireObserved()) return this.#acquisition.run(keys, opts, signal, single, undefined)
      return observeAcquire(keys, opts.mode, single, this.#now, LockHandle.fenceOf, (tally) =>
        this.#acquisition.run(keys, opts, signal, single, tally),
      )
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** One key, checked, with the prefix. */
  #key(key: string): string {
    if (Array.isArray(key)) {
      throw new InvalidArgumentError('key', `inspect takes one key, not an array; received ${describe(key)}`)
    }
    return (resolveKeys(key, this.#prefix) as [string])[0]
  }

  #throwIfClosed(): void {
    if (this.#acquisition.isClosed) throw new LockerClosedError()
  }
}

/**
 * Deletes `key` (the Locker's prefix applied) if it still holds `token`: the
 * operator's forced release of a stuck lock, announced like any release. Resolves
 * whether it was removed.
 */
export function forceRelease(locker: Locker, key: string, token: string): Promise<boolean> {
  return releaseToken(locker, key, token)
}
