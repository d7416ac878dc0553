import type { LockBackend } from './backends/lock-backend.js'
import { InvalidArgumentError } from './errors.js'
import { describe, type ResolvedLockOptions } from './options.js'
import { type ArrivalQueue, EXCLUSIVE, type HoldMode, type KeyState, SHARED } from './scripts/index.js'
import type { KeyInspection } from './types.js'
import type { Waiters } from './waiters.js'

/**
 * The kinds of lock beside the mutex (shared locks, semaphores) as the Locker sees
 * them: their rules on keys, their errors, their inspection. Their Redis side is in
 * scripts/holders.ts.
 */

/**
 * How long the mark of an exclusive acquisition waiting for shared holders lasts: a
 * few of its retry bounds and an attempt, so it stays while the waiter keeps trying
 * and ends soon after it gives up.
 */
export function writerMarkMs(opts: ResolvedLockOptions): number {
  return 3 * opts.retryIntervalMs + opts.attemptTimeoutMs
}

/**
 * Which acquisitions of one key can wait in one local queue: exclusive and shared ones
 * are one family (a writer and its readers), a semaphore is a family of its own per
 * limit. An acquisition of another family than the waiters before it does not queue
 * behind them: its own attempt tells whether the key is held as another kind.
 */
export function familyOf(mode: HoldMode): string {
  return mode.kind === 'semaphore' ? `semaphore:${mode.limit}` : LOCK_FAMILY
}

/** The family of exclusive and shared acquisitions (see {@link familyOf}). */
export const LOCK_FAMILY = 'lock'

/**
 * A semaphore attempt's part in its key's arrival queue (see ArrivalQueue): none for
 * the other kinds, nor on a backend without queues (a quorum). The entry outlives the
 * Locker's retry bound as the writer mark does, so only a crashed Locker's runs out.
 */
export function arrivalQueue(
  backend: LockBackend,
  waiters: Waiters,
  id: string,
  keys: readonly string[],
  opts: ResolvedLockOptions,
  single: boolean,
): ArrivalQueue | undefined {
  if (opts.mode.kind !== 'semaphore' || backend.arrivalQueue !== true) return undefined
  const more = waiters.hasWaiters(keys[0] as string)
  return { id, join: !single, more, ttlMs: writerMarkMs(opts) }
}

/**
 * A semaphore waiter that leaves without a permit (timeout, abort, close, failure) takes
 * its Locker out of the key's arrival queue, unless another of the Locker's waiters on
 * it stays or attempts; otherwise its entry would hold back the Lockers behind it until
 * it ran out.
 */
export function leaveQueue(
  backend: LockBackend,
  waiters: Waiters,
  id: string,
  keys: readonly string[],
  mode: HoldMode,
): Promise<unknown> {
  const key = keys[0] as string
  if (
    mode.kind !== 'semaphore' ||
    backend.arrivalQueue !== true ||
    waiters.hasWaiters(key) ||
    waiters.isAttempting(key)
  )
    return Promise.resolve()
  try {
    return backend.release({ keys, token: '', publisherId: id, mode, leaveQueue: id }, 5000)
  } catch (err) {
    // Never throws: it runs where the acquisition's own error is on its way out.
    return Promise.reject(err)
  }
}

/** What a kind of lock is called in messages. */
function kindText(mode: HoldMode): string {
  if (mode.kind === 'semaphore') return `a semaphore with limit ${mode.limit}`
  return mode.kind === 'shared' ? 'a shared lock' : 'an exclusive lock'
}

/** The error of an acquisition of a key that is held as another kind of lock. */
export function kindConflict(key: string, current: HoldMode, wanted: HoldMode): InvalidArgumentError {
  return new InvalidArgumentError(
    wanted.kind === 'semaphore' || current.kind === 'semaphore' ? 'limit' : 'shared',
    `key ${JSON.stringify(key)} is held as ${kindText(current)}; it cannot be acquired as ${kindText(wanted)} until its holders are gone (one key, one kind)`,
  )
}

/** A semaphore takes one key (checked before anything is sent). */
export function checkModeKeys(mode: HoldMode, keys: readonly string[]): void {
  if (mode.kind === 'semaphore' && keys.length > 1) {
    throw new InvalidArgumentError(
      'limit',
      `a semaphore (limit) takes one key; received ${keys.length} keys (several keys at once: an exclusive or shared lock)`,
    )
  }
}

/** What `inspect` reports, from what the backend read. */
export function inspection(key: string, state: KeyState): KeyInspection {
  const remaining = state.pttl >= 0 ? state.pttl : null
  const holders =
    state.kind === 'exclusive'
      ? [{ remainingMs: remaining }]
      : state.holders.map((ms) => ({ remainingMs: ms }))
  const held = holders.length > 0
  return {
    key,
    isHeld: held,
    kind: held ? state.kind : null,
    limit: held ? state.limit : null,
    holders,
    token: state.token,
    // A shared lock's or semaphore's key may outlive its holders: its longest holder counts.
    remainingMs: !held ? null : state.kind === 'exclusive' ? remaining : Math.max(...state.holders),
    fence: state.fence,
  }
}

/** The largest semaphore limit: far more holders than one key should ever have. */
export const MAX_LIMIT = 1_000_000

/** Checks `shared` and `limit` (call options) and returns the kind they ask for. */
export function resolveMode(shared: unknown, limit: unknown): HoldMode {
  if (shared !== undefined && typeof shared !== 'boolean') {
    throw new InvalidArgumentError('shared', `shared must be true or false; received ${describe(shared)}`)
  }
  if (limit === undefined) return shared === true ? SHARED : EXCLUSIVE
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new InvalidArgumentError(
      'limit',
      `limit must be an integer between 1 and ${MAX_LIMIT} (the most holders of the key at once); received ${describe(limit)}`,
    )
  }
  if (shared === true) {
    throw new InvalidArgumentError(
      'shared',
      'shared and limit cannot be combined: a key is a shared lock or a semaphore, not both',
    )
  }
  return { kind: 'semaphore', limit }
}
