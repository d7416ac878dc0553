import type { LockLostReason } from './errors.js'

export type { RedisClient } from './adapters/client-types.js'

/** What {@link Locker.inspect} reports about one key. */
export interface KeyInspection {
  /** The key as stored (with the prefix). */
  readonly key: string
  /** Whether some owner holds the key now. */
  readonly isHeld: boolean
  /** The holder's token, or null when free. */
  readonly token: string | null
  /** Remaining lease in ms; null when free or when the key has no TTL. */
  readonly remainingMs: number | null
  /** The last fence issued for the key, or null if none is remembered. */
  readonly fence: bigint | null
}

/** Counters of a Locker since it was created (`held` and `waiting` are current values). */
export interface LockerStats {
  /** Locks held now. */
  readonly held: number
  /** Acquisitions waiting now for a key held elsewhere. */
  readonly waiting: number
  /** Locks acquired. */
  readonly acquired: number
  /** Releases Redis answered (whether or not the lock was still there). */
  readonly released: number
  /** Locks lost (also counted by reason in `lostByReason`). */
  readonly lost: number
  /** Locks lost, by reason. */
  readonly lostByReason: Readonly<Record<LockLostReason, number>>
  /** Extension script calls sent; each extends a batch of leases. */
  readonly extendCalls: number
  /** Waiters woken by a release. */
  readonly wakeups: number
}
