import { InvalidArgumentError } from './errors.js'
import { MAX_TIMER_MS } from './internal/clock.js'

export { MAX_LIMIT } from './kinds.js'

import { resolveMode } from './kinds.js'
import { EXCLUSIVE, type HoldMode } from './scripts/index.js'

/** Timing of one lock. Every duration is in milliseconds. */
export interface LockOptions {
  /**
   * Lease length: the key's TTL after each acquisition or extension. If the process
   * dies, other processes can take the lock at most this long after the last extension.
   * @default 2000
   */
  lifetimeMs?: number
  /**
   * How often a held lease is extended in the background. Must be less than
   * `lifetimeMs`; the gap is how long Redis may be slow or the event loop blocked
   * before the lock is lost.
   * @default half of `lifetimeMs` (1000 with the default lifetime)
   */
  extendIntervalMs?: number
  /**
   * Longest wait between two attempts while the lock is held by someone else. Waiters
   * are woken by release notifications and by the holder's lease running out, so this
   * is only the fallback for a missed notification.
   * @default 500
   */
  retryIntervalMs?: number
  /**
   * How long `acquire` keeps trying before rejecting with `ERR_LOCK_ACQUIRE_TIMEOUT`.
   * `0` means a single attempt; `null` means forever.
   * @default 1000
   */
  retryTimeoutMs?: number | null
  /**
   * Longest time one acquisition attempt (and `tryAcquire`) may wait for Redis. An
   * attempt that gets no reply by then is given up (and its token released once the
   * connection delivers it, in case it was applied), so a Redis that is away costs a
   * waiter this much, not a whole lease; `acquire` then tries again within
   * `retryTimeoutMs`. On a client that is reconnecting an attempt fails at once
   * instead of waiting in the client's offline queue. With `replicas` the WAIT for
   * them comes on top (up to `replicaTimeoutMs`).
   * @default a quarter of `lifetimeMs`, at most 1000 (500 with the default lifetime)
   */
  attemptTimeoutMs?: number
  /**
   * How many replicas must confirm an acquisition (Redis `WAIT`) before it is granted.
   * If fewer confirm within `replicaTimeoutMs`, the acquisition is undone and rejected
   * with `ERR_LOCK_BACKEND`: a lock is never reported acquired that a failover to a
   * replica could lose. Extensions are not waited for (see SAFETY.md).
   * On a Redis Cluster the acquisition and its WAIT go to the master of the keys' slot.
   * Not supported on a quorum of independent masters (rejected with
   * `ERR_LOCK_INVALID_ARGUMENT`).
   * @default 0 (do not wait for replicas)
   */
  replicas?: number
  /**
   * How long an acquisition waits for `replicas` confirmations. Must be less than
   * `lifetimeMs`; the acquisition must still be confirmed before its lease's local
   * deadline, counted from when the acquisition was sent.
   * @default a quarter of `lifetimeMs`, at most 1000 (500 with the default lifetime)
   */
  replicaTimeoutMs?: number
  /**
   * Issue a fencing token with each acquisition (`lock.fence`): a number that strictly
   * increases across the acquisitions of a key, for a protected resource to reject
   * writes from a holder whose lease ran out (see the README's Fencing section).
   * Costs a little per acquisition (a script with a server clock read and a
   * high-water mark key beside the lock key, kept for an hour after each acquisition);
   * without it a single-key acquisition is a plain `SET NX PX`. Reading `lock.fence`
   * of a lock acquired without fencing throws.
   * @default false
   */
  fencing?: boolean
}

/** Options of one `acquire` call: the lock timing plus a cancellation signal. */
export interface AcquireOptions extends LockOptions {
  /** Cancels a pending `acquire`, which then rejects with `signal.reason`. */
  signal?: AbortSignal
  /**
   * Hold the keys shared: the reader of a readers/writer lock. Any number of shared
   * holders of a key at once, never together with an exclusive holder (an `acquire`
   * without `shared` or `limit`: the writer). Each shared holder has its own lease,
   * extended and lost like any lock's. Several keys are taken all or none.
   *
   * Writers are preferred: an exclusive acquisition that finds shared holders sets a
   * writer mark (lasting `3 × retryIntervalMs + attemptTimeoutMs`, re-armed by each of
   * its attempts); while it exists new shared acquisitions wait, and once the writer
   * has held and released the key the waiting shared holders go next. A key held as a
   * semaphore rejects a shared acquisition with `ERR_LOCK_INVALID_ARGUMENT`. Not with
   * `limit`; per call only (a Locker rejects it as a default).
   * @default false (exclusive)
   */
  shared?: boolean
  /**
   * Take a semaphore permit: at most `limit` holders of the key at once, across every
   * process, each with its own lease (a crashed holder's permit frees itself within
   * `lifetimeMs`, whatever the other holders do). A released permit wakes one waiter.
   *
   * An integer from 1 to 1,000,000 (`limit: 1`: one holder at a time, as a semaphore
   * key); one key only; not with `shared`; per call only (a Locker rejects it as a
   * default). Bad values are rejected with `ERR_LOCK_INVALID_ARGUMENT` before anything
   * is sent. One key, one kind: while the key has holders, every acquisition of it must
   * use the same limit; another limit, or a plain or shared acquisition (and a
   * semaphore acquisition of a key held as a plain or shared lock), rejects with
   * `ERR_LOCK_INVALID_ARGUMENT` naming the key's current kind and limit, and changes
   * nothing. Rejected above 1 on a quorum of independent masters, where majorities of
   * different nodes could admit more than `limit` holders.
   * @default none (not a semaphore)
   */
  limit?: number
}

/** Options of a `Locker`: default lock timing for every call plus Locker-wide settings. */
export interface LockerOptions extends LockOptions {
  /** Prepended to every key, e.g. `'myapp:locks:'`. @default '' */
  prefix?: string
}

/** Options of `Locker.fromUrl`. */
export interface FromUrlOptions extends LockerOptions {
  /**
   * Longest time to wait for the first connection; `fromUrl` rejects with
   * `ERR_LOCK_BACKEND` instead of retrying forever.
   * @default 5000
   */
  connectTimeoutMs?: number
}

/** Fully resolved lock timing. */
export interface ResolvedLockOptions {
  readonly lifetimeMs: number
  readonly extendIntervalMs: number
  readonly retryIntervalMs: number
  readonly retryTimeoutMs: number | null
  readonly replicas: number
  readonly replicaTimeoutMs: number
  readonly attemptTimeoutMs: number
  readonly fencing: boolean
  /** How the keys are held (call option `shared` / `limit`). */
  readonly mode: HoldMode
}

export const DEFAULTS: ResolvedLockOptions = Object.freeze({
  lifetimeMs: 2000,
  extendIntervalMs: 1000,
  retryIntervalMs: 500,
  retryTimeoutMs: 1000,
  replicas: 0,
  replicaTimeoutMs: 500,
  attemptTimeoutMs: 500,
  fencing: false,
  mode: EXCLUSIVE,
})

/** The default `replicaTimeoutMs` and `attemptTimeoutMs`: a quarter of the lease, at most a second. */
export function defaultReplicaTimeoutMs(lifetimeMs: number): number {
  return Math.max(1, Math.min(Math.floor(lifetimeMs / 4), 1000))
}

const LOCK_OPTION_NAMES = [
  'lifetimeMs',
  'extendIntervalMs',
  'retryIntervalMs',
  'retryTimeoutMs',
  'replicas',
  'replicaTimeoutMs',
  'attemptTimeoutMs',
  'fencing',
] as const

/** Throws unless `options` is an object with only the listed keys. */
export function checkOptionNames(options: unknown, allowed: readonly string[], where: string): void {
  if (options === undefined) return
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidArgumentError(
      'options',
      `${where} options must be an object; received ${describe(options)}`,
    )
  }
  for (const name of Object.keys(options)) {
    if (!allowed.includes(name)) {
      throw new InvalidArgumentError(
        name,
        `unknown ${where} option ${JSON.stringify(name)}; expected one of ${allowed.join(', ')}`,
      )
    }
  }
}

export const ACQUIRE_OPTION_NAMES: readonly string[] = [...LOCK_OPTION_NAMES, 'signal', 'shared', 'limit']
export const LOCKER_OPTION_NAMES: readonly string[] = [...LOCK_OPTION_NAMES, 'prefix']
export const FROM_URL_OPTION_NAMES: readonly string[] = [...LOCKER_OPTION_NAMES, 'connectTimeoutMs']

/** Checks a duration option: a positive integer within setTimeout's range. */
export function checkDuration(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value > MAX_TIMER_MS) {
    throw new InvalidArgumentError(
      name,
      `${name} must be an integer number of milliseconds between 1 and ${MAX_TIMER_MS}; received ${describe(value)}`,
    )
  }
  return value
}

/**
 * Merges call options over Locker defaults over the library defaults, then checks
 * the result. `extendIntervalMs` that nobody set follows `lifetimeMs` (half of it),
 * so `{ lifetimeMs: 500 }` alone is valid.
 */
export function resolveLockOptions(layers: readonly (LockOptions | undefined)[]): ResolvedLockOptions {
  let lifetimeMs: unknown = DEFAULTS.lifetimeMs
  let extendIntervalMs: unknown
  let retryIntervalMs: unknown = DEFAULTS.retryIntervalMs
  let retryTimeoutMs: unknown = DEFAULTS.retryTimeoutMs
  let replicas: unknown = DEFAULTS.replicas
  let replicaTimeoutMs: unknown
  let attemptTimeoutMs: unknown
  let fencing: unknown = DEFAULTS.fencing
  let shared: unknown
  let limit: unknown
  for (const layer of layers as readonly (AcquireOptions | undefined)[]) {
    if (!layer) continue
    if (layer.lifetimeMs !== undefined) lifetimeMs = layer.lifetimeMs
    if (layer.extendIntervalMs !== undefined) extendIntervalMs = layer.extendIntervalMs
    if (layer.retryIntervalMs !== undefined) retryIntervalMs = layer.retryIntervalMs
    if ('retryTimeoutMs' in layer && layer.retryTimeoutMs !== undefined) retryTimeoutMs = layer.retryTimeoutMs
    if (layer.replicas !== undefined) replicas = layer.replicas
    if (layer.replicaTimeoutMs !== undefined) replicaTimeoutMs = layer.replicaTimeoutMs
    if (layer.attemptTimeoutMs !== undefined) attemptTimeoutMs = layer.attemptTimeoutMs
    if (layer.fencing !== undefined) fencing = layer.fencing
    if (layer.shared !== undefined) shared = layer.shared
    if (layer.limit !== undefined) limit = layer.limit
  }
  if (typeof fencing !== 'boolean') {
    throw new InvalidArgumentError('fencing', `fencing must be true or false; received ${describe(fencing)}`)
  }
  const lifetime = checkDuration('lifetimeMs', lifetimeMs)
  if (lifetime < 10) {
    // Below this the drift allowance would eat the whole lease.
    throw new InvalidArgumentError('lifetimeMs', `lifetimeMs must be an integer >= 10; received ${lifetime}`)
  }
  const interval =
    extendIntervalMs === undefined
      ? Math.max(1, Math.floor(lifetime / 2))
      : checkDuration('extendIntervalMs', extendIntervalMs)
  if (interval >= lifetime) {
    throw new InvalidArgumentError(
      'extendIntervalMs',
      `extendIntervalMs must be less than lifetimeMs (${lifetime}); received ${interval}`,
    )
  }
  const retryInterval = checkDuration('retryIntervalMs', retryIntervalMs)
  let retryTimeout: number | null = null
  if (retryTimeoutMs !== null) {
    if (
      typeof retryTimeoutMs !== 'number' ||
      !Number.isInteger(retryTimeoutMs) ||
      retryTimeoutMs < 0 ||
      retryTimeoutMs > MAX_TIMER_MS
    ) {
      throw new InvalidArgumentError(
        'retryTimeoutMs',
        `retryTimeoutMs must be null (wait forever) or an integer number of milliseconds between 0 and ${MAX_TIMER_MS}; received ${describe(retryTimeoutMs)}`,
      )
    }
    retryTimeout = retryTimeoutMs
  }
  return {
    lifetimeMs: lifetime,
    extendIntervalMs: interval,
    retryIntervalMs: retryInterval,
    retryTimeoutMs: retryTimeout,
    ...resolveReplicas(replicas, replicaTimeoutMs, lifetime),
    attemptTimeoutMs:
      attemptTimeoutMs === undefined
        ? defaultReplicaTimeoutMs(lifetime)
        : checkDuration('attemptTimeoutMs', attemptTimeoutMs),
    fencing,
    mode: resolveMode(shared, limit),
  }
}

/** What an acquisition must get from replicas (see `LockBackend.acquire`); none for `replicas: 0`. */
export function replicaAck(opts: ResolvedLockOptions): { replicas: number; timeoutMs: number } | undefined {
  return opts.replicas > 0 ? { replicas: opts.replicas, timeoutMs: opts.replicaTimeoutMs } : undefined
}

/** Checks `replicas` and `replicaTimeoutMs`; an unset timeout follows the lifetime. */
function resolveReplicas(
  replicas: unknown,
  replicaTimeoutMs: unknown,
  lifetimeMs: number,
): { replicas: number; replicaTimeoutMs: number } {
  if (typeof replicas !== 'number' || !Number.isSafeInteger(replicas) || replicas < 0) {
    throw new InvalidArgumentError(
      'replicas',
      `replicas must be an integer >= 0 (replicas that must confirm an acquisition); received ${describe(replicas)}`,
    )
  }
  if (replicaTimeoutMs === undefined) {
    return { replicas, replicaTimeoutMs: defaultReplicaTimeoutMs(lifetimeMs) }
  }
  const timeout = checkDuration('replicaTimeoutMs', replicaTimeoutMs)
  if (timeout >= lifetimeMs) {
    throw new InvalidArgumentError(
      'replicaTimeoutMs',
      `replicaTimeoutMs must be less than lifetimeMs (${lifetimeMs}); received ${timeout}`,
    )
  }
  return { replicas, replicaTimeoutMs: timeout }
}

export { resolveKeys, resolvePrefix } from './key-input.js'

/** A short, safe rendering of a received value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value)
  if (Array.isArray(value)) return `an array of ${value.length}`
  if (typeof value === 'function') return 'a function'
  return `an object (${(value as object).constructor?.name ?? 'null prototype'})`
}

/** Validates `fromUrl`'s arguments before anything connects. */
export function checkFromUrl(
  url: unknown,
  options: FromUrlOptions | undefined,
): { connectTimeoutMs: number; lockerOptions: LockerOptions } {
  checkOptionNames(options, FROM_URL_OPTION_NAMES, 'fromUrl')
  let parsed: URL | undefined
  try {
    if (typeof url === 'string') parsed = new URL(url)
  } catch {
    parsed = undefined
  }
  if (!parsed || (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')) {
    throw new InvalidArgumentError(
      'url',
      `url must be a redis:// or rediss:// URL such as redis://127.0.0.1:6379/0; received ${describe(url)}`,
    )
  }
  // The database: ioredis would parse '/abc' as NaN (and crash the process on the SELECT
  // it sends after connecting) and '/3.7' or '/1e3' as 3 or 1, a database not asked for.
  const db = parsed.searchParams.get('db')
  if (!/^(\/(\d+)?)?$/.test(parsed.pathname) || (db !== null && !/^\d+$/.test(db))) {
    throw new InvalidArgumentError(
      'url',
      `the database in a Redis URL must be a whole number, as in redis://127.0.0.1:6379/3; received ${describe(parsed.pathname + parsed.search)}`,
    )
  }
  const { connectTimeoutMs = 5000, ...lockerOptions } = options ?? {}
  return { connectTimeoutMs: checkDuration('connectTimeoutMs', connectTimeoutMs), lockerOptions }
}
