import { AcquireLoop, type Blocked } from './acquire-loop.js'
import { backendFor } from './backends/detect.js'
import type { LockBackend } from './backends/lock-backend.js'
import {
  acquireObserved,
  observeAcquire,
  publishRelease,
  releaseTraced,
  traceRelease,
} from './diagnostics.js'
import { BackendError, InvalidArgumentError, LockerClosedError } from './errors.js'
import { raceAbort } from './internal/abort.js'
import { type Clock, systemClock } from './internal/clock.js'
import { checkFromUrl, connectIoRedis } from './internal/from-url.js'
import { HandoffYield } from './internal/handoff-yield.js'
import { driftFor, Lease } from './internal/lease.js'
import { takeInternals } from './internal/testing.js'
import { newToken } from './internal/token.js'
import { type Lock, LockHandle, type LockOwner } from './lock.js'
import {
  ACQUIRE_OPTION_NAMES,
  type AcquireOptions,
  checkOptionNames,
  describe,
  type FromUrlOptions,
  LOCKER_OPTION_NAMES,
  type LockerOptions,
  type LockOptions,
  type ResolvedLockOptions,
  replicaAck,
  resolveKeys,
  resolveLockOptions,
  resolvePrefix,
} from './options.js'
import { Renewer } from './renewer.js'
import type { KeyInspection, LockerStats, RedisClient } from './types.js'
import { Waiters } from './waiters.js'

type Attempt = LockHandle | Blocked

const fenceOfLock = (lock: Lock) => LockHandle.fenceOf(lock as LockHandle)

/** Clients that `fromUrl` created: the Locker owns and closes them. */
const ownedClients = new WeakSet<object>()

/**
 * Hands out {@link Lock}s on Redis keys, keeps their leases extended, wakes waiters on
 * release. One Locker per Redis deployment and process is the intended use: it
 * shares one extension timer and one subscriber connection among all its locks.
 *
 * @example
 * ```ts
 * const locker = await Locker.fromUrl('redis://127.0.0.1:6379')
 * await using lock = await locker.acquire('orders:42')
 * // ... critical section; lock.signal aborts if the lock is lost
 * ```
 */
export class Locker implements AsyncDisposable {
  readonly #backend: LockBackend
  readonly #clock: Clock
  readonly #skipValidityCheck: boolean
  readonly #renewer: Renewer
  readonly #waiters: Waiters
  readonly #defaults: LockOptions
  readonly #resolvedDefaults: ResolvedLockOptions
  readonly #prefix: string
  /** Identifies this Locker's own release messages. */
  readonly #id = newToken()
  /** Aborted on close; read, never listened to (Waiters.close() ends every wait). */
  readonly #closeController = new AbortController()
  readonly #cleanups = new Set<Promise<unknown>>()
  readonly #registry = new FinalizationRegistry<Lease>((lease) => this.#renewer.lose(lease, 'abandoned'))
  readonly #owner: LockOwner
  readonly #yields: HandoffYield
  readonly #loop: AcquireLoop<LockHandle>
  readonly #now = () => this.#clock.now()
  #closing: Promise<void> | undefined
  #acquired = 0
  #released = 0
  #lost = 0

  /**
   * Wraps a connected client you own (it is never closed by the Locker), or an array
   * of clients of independent masters: a Redlock quorum, where a lock needs a majority.
   * @throws InvalidArgumentError `ERR_LOCK_INVALID_ARGUMENT` for an unknown client, an
   * empty array, the same client twice, or bad options.
   */
  constructor(client: RedisClient, options?: LockerOptions) {
    const internals = takeInternals()
    this.#clock = internals.clock ?? systemClock
    this.#skipValidityCheck = internals.skipValidityCheck === true
    checkOptionNames(options, LOCKER_OPTION_NAMES, 'Locker')
    this.#prefix = resolvePrefix(options?.prefix)
    const { prefix: _prefix, ...defaults } = options ?? {}
    this.#resolvedDefaults = resolveLockOptions([defaults]) // also fails fast on bad defaults
    this.#defaults = defaults
    this.#backend = backendFor(client, ownedClients.has(client), internals.scripts)
    this.#renewer = new Renewer(
      this.#backend,
      this.#clock,
      (lease) => this.#onLost(lease),
      (lease) => this.#watch(lease),
    )
    this.#waiters = new Waiters(this.#backend, this.#clock, this.#id)
    this.#yields = new HandoffYield(this.#clock)
    this.#loop = new AcquireLoop<LockHandle>({
      clock: this.#clock,
      waiters: this.#waiters,
      yields: this.#yields,
      closed: this.#closeController.signal,
      attempt: (keys, opts, signal) => this.#attempt(keys, opts, signal),
      isLock: (result): result is LockHandle => result instanceof LockHandle,
      throwIfClosed: () => this.#throwIfClosed(),
    })
    this.#owner = {
      check: (lease) => this.#renewer.check(lease),
      remainingMs: (lease) => (this.#renewer.check(lease) ? lease.deadline - this.#clock.now() : 0),
      extend: (lease) => this.#renewer.extendNow(lease),
      release: (lease) =>
        releaseTraced() ? traceRelease(lease.keys, () => this.#release(lease)) : this.#release(lease),
    }
  }

  /**
   * Connects to `url` with ioredis and returns a Locker that owns the connection
   * (closed by {@link Locker.close}). The first connection is bounded by
   * `connectTimeoutMs`; after that the client reconnects on its own.
   * @throws InvalidArgumentError `ERR_LOCK_INVALID_ARGUMENT` for a malformed URL or options.
   * @throws BackendError `ERR_LOCK_BACKEND` when Redis cannot be reached in time.
   */
  static async fromUrl(url: string, options?: FromUrlOptions): Promise<Locker> {
    const { connectTimeoutMs, lockerOptions } = checkFromUrl(url, options)
    const client = await connectIoRedis(url, connectTimeoutMs)
    ownedClients.add(client)
    try {
      return new Locker(client, lockerOptions)
    } catch (err) {
      client.disconnect()
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
    // #acquire is async: bad input rejects, it never throws synchronously.
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
   * @throws BackendError `ERR_LOCK_BACKEND` when Redis fails.
   */
  async inspect(key: string): Promise<KeyInspection> {
    this.#throwIfClosed()
    const [full] = resolveKeys(key, this.#prefix) as [string]
    const state = await this.#backend.inspect(full, 5000)
    return {
      key: full,
      isHeld: state.token !== null,
      token: state.token,
      remainingMs: state.token !== null && state.pttl >= 0 ? state.pttl : null,
      fence: state.fence,
    }
  }

  /** Counters since creation. */
  stats(): LockerStats {
    return {
      held: this.#renewer.size,
      waiting: this.#waiters.waiting,
      acquired: this.#acquired,
      released: this.#released,
      lost: this.#lost,
      lostByReason: { ...this.#renewer.lostByReason },
      extendCalls: this.#renewer.batches,
      wakeups: this.#waiters.wakeups,
    }
  }

  /**
   * Releases every lock it holds (their signals abort with reason `closed`), rejects
   * pending acquisitions with `ERR_LOCK_CLOSED`, stops its timers and closes the
   * connections it owns. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  /** Same as {@link Locker.close}, for `await using locker = ...`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  async #close(): Promise<void> {
    this.#closeController.abort(new LockerClosedError())
    for (const lease of [...this.#renewer.leases()]) this.#renewer.lose(lease, 'closed')
    this.#renewer.stop()
    await this.#waiters.close()
    await Promise.allSettled([...this.#cleanups])
    await this.#backend.close()
  }

  async #acquire(
    keysIn: unknown,
    options: AcquireOptions | undefined,
    single: boolean,
  ): Promise<Lock | null> {
    checkOptionNames(options, ACQUIRE_OPTION_NAMES, 'acquire')
    const opts =
      options === undefined ? this.#resolvedDefaults : resolveLockOptions([this.#defaults, options])
    const keys =
      typeof keysIn === 'string' && keysIn.length > 0
        ? [this.#prefix + keysIn]
        : resolveKeys(keysIn, this.#prefix)
    this.#backend.checkKeys(keys)
    const signal = options?.signal
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidArgumentError('signal', `signal must be an AbortSignal; received ${describe(signal)}`)
    }
    this.#throwIfClosed()
    signal?.throwIfAborted()
    if (!acquireObserved()) return this.#loop.run(keys, opts, signal, single, undefined)
    return observeAcquire(keys, single, this.#now, fenceOfLock, (tally) =>
      this.#loop.run(keys, opts, signal, single, tally),
    )
  }

  async #attempt(
    keys: string[],
    opts: ResolvedLockOptions,
    signal: AbortSignal | undefined,
  ): Promise<Attempt> {
    const token = newToken()
    const sentAt = this.#clock.now()
    // The lease counts from when the script was sent (replica WAIT included); a later reply is useless.
    const validityMs = opts.lifetimeMs - driftFor(opts.lifetimeMs)
    const pending = this.#backend.acquire(
      keys,
      token,
      opts.lifetimeMs,
      validityMs,
      replicaAck(opts),
      opts.fencing,
    )
    const reply = signal
      ? await raceAbort(pending, signal, (late) =>
          this.#track(late.then((r) => (r.acquired ? this.#undo(keys, token, 5000) : undefined))),
        )
      : await pending
    if (!reply.acquired) return { pttl: reply.pttl, blockedIndex: reply.blockedIndex }
    if (this.#closeController.signal.aborted) {
      this.#track(this.#undo(keys, token, 5000))
      throw new LockerClosedError()
    }
    const lease = new Lease(keys, token, reply.fence, opts, sentAt)
    if (this.#clock.now() >= lease.deadline && !this.#skipValidityCheck) {
      this.#track(this.#undo(keys, token, 5000))
      throw new BackendError(
        'acquire',
        `Redis answered after the lease had already run out (lifetimeMs ${opts.lifetimeMs}); the acquisition was undone`,
      )
    }
    lease.checker = this.#renewer
    const lock = new LockHandle(lease, this.#owner)
    lease.unwatched = lock // watched for garbage collection from its first extension on
    this.#renewer.add(lease)
    this.#acquired++
    return lock
  }

  async #release(lease: Lease): Promise<boolean> {
    if (lease.state === 'released') return false
    lease.state = 'released'
    this.#renewer.remove(lease)
    if (lease.unwatched === undefined) this.#registry.unregister(lease)
    else lease.unwatched = undefined
    const sentAt = this.#clock.now()
    const { removed, receivers } = await this.#backend.release(
      lease.keys,
      lease.token,
      this.#id,
      Math.max(1000, lease.lifetimeMs),
    )
    this.#released++
    publishRelease(lease.keys, removed > 0)
    if (removed === 0) return false
    let own = 0
    for (const key of lease.keys) if (this.#waiters.isSubscribed(key)) own++
    if (receivers > own) {
      // Other processes wait for these keys and have just been told: let their
      // woken waiter go first instead of taking the keys straight back.
      this.#yields.grant(lease.keys, this.#clock.now() - sentAt)
    }
    // Our own release message is ignored by our subscriber; hand over locally right away.
    for (const key of lease.keys) this.#waiters.notify(key)
    return true
  }

  /** From its first extension on, a Lock dropped without release is released once collected. */
  #watch(lease: Lease): void {
    const lock = lease.unwatched
    lease.unwatched = undefined
    if (lock !== undefined) this.#registry.register(lock, lease, lease)
  }

  #onLost(lease: Lease): void {
    this.#lost++
    if (lease.unwatched === undefined) this.#registry.unregister(lease)
    else lease.unwatched = undefined
    // Whatever is left of the lease in Redis is ours to free: a blackholed extension
    // may still land, a multi-key lease may have kept some keys.
    this.#track(this.#undo(lease.keys, lease.token, Math.max(1000, lease.lifetimeMs)))
  }

  /**
   * Releases keys that no Lock stands for (a lost lease's remains, an acquisition
   * undone). Our subscriber ignores our own release messages, so local waiters on the
   * keys are woken here, as {@link Locker.#release} does.
   */
  async #undo(keys: readonly string[], token: string, timeoutMs: number): Promise<void> {
    const { removed } = await this.#backend.release(keys, token, this.#id, timeoutMs)
    if (removed > 0) for (const key of keys) this.#waiters.notify(key)
  }

  #track(p: Promise<unknown>): void {
    const quiet = p.catch(() => {})
    this.#cleanups.add(quiet)
    void quiet.finally(() => this.#cleanups.delete(quiet))
  }

  #throwIfClosed(): void {
    if (this.#closeController.signal.aborted) throw new LockerClosedError()
  }
}
