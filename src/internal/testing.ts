import type { Script } from '../scripts.js'
import type { Clock } from './clock.js'

/**
 * Seams for the test suite's negative controls and timing tests; not part of the
 * public API (nothing here is exported from the package entry point). A checker
 * that cannot tell a broken lock from ours proves nothing, so the soak runs
 * deliberately broken variants built through these.
 */
export interface LockerInternals {
  /** Time source for deadlines (default: the monotonic clock). */
  clock?: Clock
  /** Replacement scripts, e.g. a release that deletes without checking the owner. */
  scripts?: { acquire?: Script; extend?: Script; release?: Script }
  /** Returns an acquisition even when its reply came after the lease had run out. */
  skipValidityCheck?: boolean
}

let pending: LockerInternals | undefined

/** Runs `make` (which constructs one Locker) with `internals` applied to it. */
export function withInternals<T>(internals: LockerInternals, make: () => T): T {
  pending = internals
  try {
    return make()
  } finally {
    pending = undefined
  }
}

/** Called by the Locker constructor: the internals meant for it, if any. */
export function takeInternals(): LockerInternals {
  const taken = pending ?? {}
  pending = undefined
  return taken
}
