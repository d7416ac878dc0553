import type { ExtendRequest, ExtendStatus, LockBackend } from './backends/lock-backend.js'
import { extendObserved, publishExtend, publishLost } from './diagnostics.js'
import { BackendError, LockLostError, type LockLostReason, QuorumError } from './errors.js'
import type { Clock, TimerHandle } from './internal/clock.js'
import type { Lease } from './internal/lease.js'

/** Most leases per extension script call: bounds how long one call blocks Redis. */
export const MAX_BATCH = 500

/**
 * The one lease-extension scheduler of a Locker.
 *
 * It keeps every held lease and a single timer set for the earliest moment that
 * matters: the next extension due or the next local deadline. When it fires, every
 * lease due within a small window is extended in one script call (chunks of
 * {@link MAX_BATCH}), so leases acquired at different times converge into a few
 * batches per interval instead of one round trip each. A lease whose deadline
 * passes without a confirmed extension is declared lost right then, before Redis
 * could hand its keys to anyone else.
 */
export class Renewer {
  readonly #backend: LockBackend
  readonly #clock: Clock
  readonly #onLost: (lease: Lease) => void
  readonly #onFirstExtension: (lease: Lease) => void
  readonly #leases = new Set<Lease>()
  #timer: TimerHandle | undefined
  #timerAt = Number.POSITIVE_INFINITY
  #stopped = false
  /** Extension script calls sent so far (for stats and tests). */
  batches = 0
  /** Leases lost so far, by reason (for stats). */
  readonly lostByReason: Record<LockLostReason, number> = {
    expired: 0,
    stolen: 0,
    unreachable: 0,
    abandoned: 0,
    closed: 0,
  }

  /**
   * @param onLost called once per lease lost, before its signal aborts (for cleanup).
   * @param onFirstExtension called for a lease whose `unwatched` Lock is set, when it
   * is first due for extension.
   */
  constructor(
    backend: LockBackend,
    clock: Clock,
    onLost: (lease: Lease) => void,
    onFirstExtension: (lease: Lease) => void = () => {},
  ) {
    this.#backend = backend
    this.#clock = clock
    this.#onLost = onLost
    this.#onFirstExtension = onFirstExtension
  }

  get size(): number {
    return this.#leases.size
  }

  leases(): IterableIterator<Lease> {
    return this.#leases.values()
  }

  add(lease: Lease): void {
    this.#leases.add(lease)
    this.#arm(Math.min(lease.nextDueAt, lease.deadline))
  }

  /** Stops tracking a lease that was released; an extension in flight for it is ignored. */
  remove(lease: Lease): void {
    // The timer is left to fire once (it is unref'd): re-creating it on every
    // acquire/release cycle would cost more than the empty tick.
    this.#leases.delete(lease)
  }

  /**
   * True while the lease is held and its deadline has not passed. Declares it
   * lost on the spot when the deadline has passed but no timer has run yet (the
   * event loop was blocked or the process paused).
   */
  check(lease: Lease): boolean {
    if (lease.state !== 'held') return false
    if (this.#clock.now() < lease.deadline) return true
    this.lose(
      lease,
      lease.lastError !== undefined || lease.inFlight ? 'unreachable' : 'expired',
      lease.lastError,
    )
    return false
  }

  /** Extends one lease now (or joins the extension in flight); rejects if it is or becomes lost. */
  async extendNow(lease: Lease): Promise<void> {
    if (this.check(lease) && !lease.inFlight) this.#send([lease], this.#clock.now())
    if (lease.inFlight) await lease.inFlight
    if (lease.state === 'lost' && lease.lostError) throw lease.lostError
    if (lease.state !== 'held') throw new LockLostError(lease.keys, 'expired')
    if (lease.lastError !== undefined) {
      // A quorum's own error carries every node's outcome: pass it on as is.
      throw lease.lastError instanceof BackendError || lease.lastError instanceof QuorumError
        ? lease.lastError
        : new BackendError('extend', 'extend failed', { cause: lease.lastError })
    }
  }

  /** Marks a held lease lost: stops extending it, runs cleanup, then aborts its signal. */
  lose(lease: Lease, reason: LockLostReason, cause?: unknown): void {
    if (lease.state !== 'held') return
    lease.state = 'lost'
    this.#leases.delete(lease)
    if (this.#leases.size === 0) this.#disarm()
    const error = new LockLostError(lease.keys, reason, cause === undefined ? undefined : { cause })
    lease.lostError = error
    this.lostByReason[reason]++
    this.#onLost(lease)
    publishLost(lease.keys, reason)
    // Last, because user listeners run synchronously inside abort().
    lease.abort(error)
  }

  stop(): void {
    this.#stopped = true
    this.#disarm()
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer)
    this.#timer = undefined
    this.#timerAt = Number.POSITIVE_INFINITY
  }

  #arm(at: number): void {
    if (this.#stopped || at >= this.#timerAt) return
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer)
    this.#timerAt = at
    this.#timer = this.#clock.setTimer(() => this.#tick(), at - this.#clock.now())
  }

  #tick(): void {
    this.#timer = undefined
    this.#timerAt = Number.POSITIVE_INFINITY
    const now = this.#clock.now()
    const due: Lease[] = []
    let next = Number.POSITIVE_INFINITY
    for (const lease of this.#leases) {
      if (!this.check(lease)) continue
      if (!lease.inFlight && lease.nextDueAt <= now + lease.batchWindowMs) due.push(lease)
      else next = Math.min(next, lease.inFlight ? lease.deadline : Math.min(lease.nextDueAt, lease.deadline))
    }
    for (const lease of due) if (lease.unwatched !== undefined) this.#onFirstExtension(lease)
    if (due.length > 0) this.#send(due, now)
    for (const lease of due) next = Math.min(next, lease.deadline)
    if (next < Number.POSITIVE_INFINITY) this.#arm(next)
  }

  #send(leases: readonly Lease[], sentAt: number): void {
    for (let i = 0; i < leases.length; i += MAX_BATCH) {
      const chunk = leases.slice(i, i + MAX_BATCH)
      // A Lease is an ExtendRequest (keys, token, lifetimeMs): no copy per lease and round.
      const requests: readonly ExtendRequest[] = chunk
      // No point waiting past the latest deadline in the chunk: by then every lease in it is lost.
      let timeoutMs = 1
      for (const l of chunk) timeoutMs = Math.max(timeoutMs, l.deadline - sentAt)
      this.batches++
      const flight = this.#backend.extend(requests, timeoutMs).then(
        (statuses) => this.#settle(chunk, sentAt, statuses, undefined),
        (err: unknown) => this.#settle(chunk, sentAt, undefined, err),
      )
      for (const l of chunk) l.inFlight = flight
    }
  }

  #settle(
    chunk: readonly Lease[],
    sentAt: number,
    statuses: readonly (ExtendStatus | undefined)[] | undefined,
    err: unknown,
  ): void {
    const now = this.#clock.now()
    let next = Number.POSITIVE_INFINITY
    for (const [i, lease] of chunk.entries()) {
      lease.inFlight = undefined
      if (statuses === undefined) lease.lastError = err ?? new BackendError('extend', 'extend failed')
      // A lease already past its deadline stays lost even if Redis said yes late:
      // isHeld() may have told the holder so already, and that must never flip back.
      if (!this.check(lease)) continue
      const status = statuses?.[i]
      if (status === 1) {
        lease.lastError = undefined
        lease.deadline = Math.max(lease.deadline, sentAt + lease.lifetimeMs - lease.driftMs)
        lease.nextDueAt = sentAt + lease.extendIntervalMs
      } else if (status === 0 || status === -1) {
        this.lose(lease, status === 0 ? 'expired' : 'stolen')
        continue
      } else {
        // Redis failed or did not answer: retry soon, well before the deadline.
        lease.lastError ??= new BackendError('extend', 'extend returned no status')
        const left = lease.deadline - now
        lease.nextDueAt = now + Math.max(5, Math.min(lease.extendIntervalMs / 4, left / 3))
      }
      next = Math.min(next, lease.nextDueAt, lease.deadline)
    }
    if (extendObserved()) {
      publishExtend(
        chunk.map((l) => l.keys),
        chunk.map((l, i) => statuses?.[i] === 1 && l.state === 'held'),
        err,
      )
    }
    if (next < Number.POSITIVE_INFINITY) this.#arm(next)
  }
}
