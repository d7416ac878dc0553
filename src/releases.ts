import type { LockBackend } from './backends/lock-backend.js'
import { publishRelease } from './diagnostics.js'
import type { Clock } from './internal/clock.js'
import type { HandoffYield } from './internal/handoff-yield.js'
import type { Waiter } from './internal/key-queue.js'
import { newToken } from './internal/token.js'
import { familyOf } from './kinds.js'
import type { Lease } from './leases.js'
import type { HoldMode, ReleaseResult } from './scripts/index.js'
import type { Successor } from './scripts/release.js'
import type { Waiters } from './waiters.js'

/** A release offering its permit to a local waiter (see Waiters.reserveSuccessor). */
interface Offer {
  readonly key: string
  readonly waiter: Waiter
  readonly successor: Successor
}

/** What the release side is built from: the Acquisition's backend, clock, waiters and yields. */
export interface ReleasesOptions {
  readonly backend: LockBackend
  readonly clock: Clock
  readonly waiters: Waiters
  readonly yields: HandoffYield
  /** The Locker's id, published with each release (its own subscriber skips it). */
  readonly id: string
}

/**
 * Every release a Locker sends: a Lock's release, with the local hand-over of a
 * semaphore's permit to the Locker's next waiter and the wake-ups it owes; the undo of
 * keys no Lock stands for; and the background work both leave, awaited on close.
 */
export class Releases {
  readonly #backend: LockBackend
  readonly #clock: Clock
  readonly #waiters: Waiters
  readonly #yields: HandoffYield
  readonly #id: string
  readonly #cleanups = new Set<Promise<unknown>>()
  /** Releases Redis answered. */
  released = 0
  /** Semaphore permits a release handed straight to a local waiter. */
  handedOver = 0

  constructor(options: ReleasesOptions) {
    this.#backend = options.backend
    this.#clock = options.clock
    this.#waiters = options.waiters
    this.#yields = options.yields
    this.#id = options.id
  }

  /** Releases a Lock's lease; resolves whether Redis still had it. */
  release(lease: Lease): Promise<boolean> {
    const offer = this.#offer(lease)
    const request = {
      keys: lease.keys,
      token: lease.token,
      publisherId: this.#id,
      mode: lease.mode,
      successor: offer?.successor,
    }
    // Before the write: a permit handed over counts its lease from here.
    const before = offer === undefined ? 0 : this.#clock.now()
    // A reaction, not an async function: one frame less on every release.
    let pending: Promise<ReleaseResult>
    try {
      pending = this.#backend.release(request, Math.max(1000, lease.lifetimeMs))
    } catch (err) {
      if (offer !== undefined) this.#waiters.unreserve(offer.key, offer.waiter)
      return Promise.reject(err)
    }
    const sentAt = this.#clock.now() // after the write: it only sizes the hand-over yield
    if (offer === undefined) return pending.then((result) => this.#released(lease, result, sentAt))
    return pending.then(
      (result) => {
        this.#settleOffer(offer, lease, result.handedOver === true, before)
        return this.#released(lease, result, sentAt)
      },
      (err: unknown) => {
        // Perhaps handed over before the answer was lost: give that permit back.
        this.#settleOffer(offer, lease, false, before)
        this.#giveBack(offer, lease)
        throw err
      },
    )
  }

  /**
   * Releases keys that no Lock stands for (a lost lease's remains, an acquisition
   * undone, a permit handed to a waiter that had left), in the background. Our
   * subscriber ignores our own release messages, so local waiters on the keys are
   * woken here, as a release does.
   */
  undo(keys: readonly string[], token: string, timeoutMs: number, mode: HoldMode | undefined): void {
    this.track(
      this.#backend.release({ keys, token, publisherId: this.#id, mode }, timeoutMs).then(({ removed }) => {
        if (removed > 0) for (const key of keys) this.#waiters.notify(key)
      }),
    )
  }

  /** Background work to await on close; its failure is nobody's to handle. */
  track(p: Promise<unknown>): void {
    const quiet = p.catch(() => {})
    this.#cleanups.add(quiet)
    void quiet.finally(() => this.#cleanups.delete(quiet))
  }

  /** Resolves once the background work tracked so far has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#cleanups])
  }

  /**
   * The local waiter a semaphore's release offers its permit to, if any: the first one
   * waiting for the key (see Waiters.reserveSuccessor); only on a backend with arrival
   * queues, which decide whether this Locker may have the permit now.
   */
  #offer(lease: Lease): Offer | undefined {
    const { mode, keys } = lease
    if (mode?.kind !== 'semaphore' || keys.length !== 1 || this.#backend.arrivalQueue !== true) {
      return undefined
    }
    const key = keys[0] as string
    const reserved = this.#waiters.reserveSuccessor(key, familyOf(mode))
    const slot = reserved?.waiter.slot
    if (reserved === undefined || slot === undefined) return undefined
    const successor = {
      token: newToken(),
      lifetimeMs: slot.lifetimeMs,
      more: reserved.more,
      queueTtlMs: slot.queueTtlMs,
    }
    return { key, waiter: reserved.waiter, successor }
  }

  /** The offered waiter gets the permit, or goes on waiting; a permit nobody waits for any more is given back. */
  #settleOffer(offer: Offer, lease: Lease, handedOver: boolean, sentAt: number): void {
    if (!handedOver) {
      this.#waiters.unreserve(offer.key, offer.waiter)
      return
    }
    if (this.#waiters.handOver(offer.key, offer.waiter, offer.successor.token, sentAt)) this.handedOver++
    else this.#giveBack(offer, lease)
  }

  /** Releases the permit an offer may have handed over, which no waiter holds. */
  #giveBack(offer: Offer, lease: Lease): void {
    this.undo(lease.keys, offer.successor.token, Math.max(1000, offer.successor.lifetimeMs), lease.mode)
  }

  /** After Redis answered a release: count it, announce it, hand the keys over locally. */
  #released(lease: Lease, result: ReleaseResult, sentAt: number): boolean {
    const { removed, receivers, named } = result
    this.released++
    publishRelease(lease, removed > 0)
    // A semaphore's release that names who goes next (even one whose entry an extension
    // had already dropped: it deleted the key left empty and announced it) is handled below.
    if (removed === 0 && named === undefined) return false
    let own = 0
    for (const key of lease.keys) if (this.#waiters.isSubscribed(key)) own++
    if (removed > 0 && receivers > own) {
      // Other processes wait for these keys and have just been told: let their
      // woken waiter go first instead of taking the keys straight back.
      this.#yields.grant(lease.keys, this.#clock.now() - sentAt)
    }
    // Our own release message is ignored by our subscriber; hand over locally right away,
    // unless the permit goes to other Lockers queued first (then only they are told).
    for (const key of lease.keys) {
      if (named === 'us') this.#waiters.notifyNamed(key)
      else if (named === 'others') this.#waiters.othersGoFirst(key, result.othersExpireInMs ?? 0)
      // Handed over to a local waiter: others are woken only for permits still free.
      else if (result.handedOver !== true || result.moreFree === true) this.#waiters.notify(key)
    }
    return removed > 0
  }
}
