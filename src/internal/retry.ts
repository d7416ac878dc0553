/** When an acquisition tries again after a transient failure, and what it says when it gives up. */
import { BackendError, type LockError, QuorumError } from '../errors.js'

/** A random share of `ms`: spreads retries of many processes apart. */
export function jitter(ms: number): number {
  return Math.random() * Math.max(0, ms)
}

/**
 * The wait before retrying after the `failures`-th transient failure in a row:
 * exponential from 50 ms up to the retry interval (at most 1 s), with full jitter,
 * so a restarting Redis is not hit by every waiter at once.
 */
export function backoffMs(failures: number, retryIntervalMs: number): number {
  const cap = Math.min(Math.max(50, retryIntervalMs), 1000)
  return jitter(Math.min(cap, 50 * 2 ** Math.min(failures - 1, 10)))
}

/**
 * The error of an acquire that gave up on transient failures: the last one as cause;
 * a quorum's own error as it is (its code and node outcomes say more).
 */
export function gaveUp(last: unknown, attempts: number, waitedMs: number): LockError {
  if (last instanceof QuorumError) return last
  const text = last instanceof Error ? last.message : String(last)
  return new BackendError(
    'acquire',
    `acquire gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} in ${Math.round(waitedMs)} ms (retryTimeoutMs), Redis failing: ${text}`,
    { cause: last, attempts },
  )
}
