import type { LockLostReason } from './errors.js'

/**
 * How a key is held: `exclusive` (one holder: a plain `acquire`), `shared` (any
 * number of `shared: true` holders) or `semaphore` (at most `limit` holders).
 */
export type LockKind = 'exclusive' | 'shared' | 'semaphore'

export type { RedisClient } from './adapters/client-types.js'

/** What {@link Locker.inspect} reports about one key. */
export interface KeyInspection {
  /** The key as stored (with the prefix). */
  readonly key: string
  /** Whether some owner holds the key now. */
  readonly isHeld: boolean
  /** How the key is held; null when it is free. */
  readonly kind: LockKind | null
  /** A semaphore's limit; null for the other kinds. */
  readonly limit: number | null
  /**
   * Every holder with its remaining lease in ms (null: no TTL): one for an exclusive
   * lock, each unexpired holder of a shared lock or semaphore (shortest lease first).
   */
  readonly holders: readonly {
    /** This holder's remaining lease in ms; null when the key has no TTL. */
    readonly remainingMs: number | null
  }[]
  /** The exclusive holder's token; null when free or held by shared holders or permits (their tokens are not shown). */
  readonly token: string | null
  /** Remaining lease in ms (of the longest holder for a shared lock or semaphore); null when free or when the key has no TTL. */
  readonly remainingMs: number | null
  /** The last fence issued for the key, or null if none is remembered. */
  readonly fence: bigint | null
}

/** Counters of a Locker since it was created (`held` and `waiting` are current values). */
export interface LockerStats {
  /** Locks held now. */
  readonly held: number
  /** Locks held now, by kind (a permit or a shared hold counts as one). */
  readonly heldByKind: Readonly<Record<LockKind, number>>
  /** Acquisitions waiting now for a key held elsewhere. */
  readonly waiting: number
  /** Locks acquired. */
  readonly acquired: number
  /** Locks acquired, by kind. */
  readonly acquiredByKind: Readonly<Record<LockKind, number>>
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
  /**
   * Semaphore permits a release of this Locker handed straight to one of its own
   * waiters (no attempt of the waiter's, see the README's semaphore section); also
   * counted in `acquired`.
   */
  readonly handedOver: number
}
