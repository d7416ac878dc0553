import { Locker } from '../locker.js'
import type { LockerOptions } from '../options.js'
import type { ScriptOverrides } from '../scripts/index.js'
import type { RedisClient } from '../types.js'
import type { Clock } from './clock.js'

/**
 * Seams for the test suite's negative controls and timing tests; not part of the
 * public API (nothing here is exported from the package entry point). A checker
 * that cannot tell a broken lock from ours proves nothing, so the soak runs
 * deliberately broken variants built through these.
 */
export interface LockerInternals {
  /** Time source for deadlines (default: the monotonic clock). */
  readonly clock?: Clock
  /** Replacement Lua sources with the same contract, e.g. a release that deletes without checking the owner. */
  readonly scripts?: ScriptOverrides
  /** Returns an acquisition even when its reply came after the lease had run out. */
  readonly skipValidityCheck?: boolean
}

/** A Locker with `internals` applied (the test suite's seam). */
export function createLocker(
  client: RedisClient,
  options: LockerOptions | undefined,
  internals: LockerInternals,
): Locker {
  return new Locker(client, options, internals)
}
