import type { TimerHandle } from './clock.js'
import { releaseChannel } from './keys.js'

// The state Waiters (waiters.ts) keeps per waiter and per key.

/**
 * Why a wait ended: `woken` by a release, `timeout` when its bound (the holder's TTL
 * or the retry interval) ran out, `deadline` when the caller's give-up time came
 * first, `aborted` by a signal or close.
 */
export type WaitOutcome = 'woken' | 'timeout' | 'deadline' | 'aborted' | 'granted'

/**
 * A semaphore waiter that a local release may hand its permit to (see
 * Waiters.reserveSuccessor): what the release needs to know, and where it leaves the
 * grant before the wait ends with `granted`.
 */
export interface HandOverSlot {
  readonly lifetimeMs: number
  /** The TTL of the Locker's arrival-queue entry (ArrivalQueue.ttlMs). */
  readonly queueTtlMs: number
  /** Set with the `granted` outcome: the permit's token and when its lease began at the latest (monotonic ms). */
  grant: { readonly token: string; readonly sentAt: number } | undefined
  /** Set once the acquisition holds a permit handed over (its queue place went with it). */
  held: boolean
}

export interface Waiter {
  readonly seq: number
  /** How long this waiter waits before attempting again, once it is the head of its queue. */
  readonly boundMs: number
  /** The bound's timer: armed only while this waiter heads its queue. */
  bound: TimerHandle | undefined
  /** When the bound's timer fires (monotonic ms), while armed. */
  boundAt: number
  /** A shared hold: a release may admit it together with the shared waiters next to it. */
  readonly shared: boolean
  /** Its acquisition's family (see familyOf in kinds.ts): newcomers queue only behind their own. */
  readonly family: string
  /** Present when a local release may hand it a permit. */
  readonly slot: HandOverSlot | undefined
  /**
   * A release offering it the permit is in flight: a wake-up or its bound waits for
   * the answer (kept in `deferred`); a deadline or an abort still ends the wait at once.
   */
  reserved: boolean
  deferred: WaitOutcome | undefined
  settle(outcome: WaitOutcome): void
}

export interface KeyQueue {
  readonly key: string
  readonly channel: string
  /** FIFO by first arrival; a waiter that failed after a wake keeps its place. */
  readonly waiters: Waiter[]
  /** Bumped on every release seen for the key, so an attempt can tell it raced one. */
  generation: number
  subscription: 'none' | 'pending' | 'active'
  subscribing: Promise<boolean> | undefined
  /** Monotonic time before which we do not retry a failed SUBSCRIBE. */
  retrySubscribeAt: number
  linger: TimerHandle | undefined
  /** Named by a semaphore release while an attempt was in flight (see notifyNamed). */
  namedPending: boolean
  /** A waiter was woken for a naming release and has not sent its attempt yet (see notifyNamed). */
  namedWake: boolean
}

/** A key's empty queue, not subscribed yet. */
export function newKeyQueue(key: string): KeyQueue {
  return {
    key,
    channel: releaseChannel(key),
    waiters: [],
    generation: 0,
    subscription: 'none',
    subscribing: undefined,
    retrySubscribeAt: 0,
    linger: undefined,
    namedPending: false,
    namedWake: false,
  }
}
