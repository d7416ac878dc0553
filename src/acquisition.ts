import type { LockBackend } from './backends/lock-backend.js'
import type { AcquireTally } from './diagnostics.js'
import { releaseTraced, traceRelease } from './diagnostics.js'
import { AcquireTimeoutError, BackendError, LockerClosedError } from './errors.js'
import { pause, raceAbort } from './internal/abort.js'
import type { Clock } from './internal/clock.js'
import { HandoffYield } from './internal/handoff-yield.js'
import { backoffMs, gaveUp, jitter } from './internal/retry.js'
import { newToken } from './internal/token.js'
import { isTransient } from './internal/transient.js'
import { arrivalQueue, familyOf, kindConflict, leaveQueue, writerMarkMs } from './kinds.js'
import { Leases, validityMs } from './leases.js'
import type { Lock } from './lock.js'
import { type ResolvedLockOptions, replicaAck } from './options.js'
import { Releases } from './releases.js'
import type { AttemptResult, HoldKind, HoldMode, KeyState } from './scripts/index.js'
import { type HandOverSlot, Waiters, type WaitOutcome } from './waiters.js'

/** A failed attempt: which key was held, and for how much longer (ms; -1: no TTL). */
type Blocked = Extract<AttemptResult, { acquired: false }>
const NO_SIGNALS: readonly (AbortSignal | undefined)[] = []
/** A hand-over's grant, checked as an attempt's reply is (the release said what became of other free permits). */
const HANDED_OVER: AttemptResult = Object.freeze({ acquired: true, fence: undefined, room: 0 })

/** What an Acquisition is built from. */
export interface AcquisitionOptions {
  readonly backend: LockBackend
  readonly clock: Clock
  /** Returns an acquisition even when its reply came after the lease had run out (negative control). */
  readonly skipValidityCheck?: boolean
}

/**
 * Everything between a caller asking for keys and a held lease, and back: the
 * acquire loop (attempt, wait for a wake-up or a permit handed over, attempt again)
 * and the attempt with its validity check; the releases (with their local hand-over)
 * and undos go through its {@link Releases}. It owns the lease table, the waiters,
 * the hand-over yields and the releases.
 */
export class Acquisition {
  readonly leases: Leases
  readonly waiters: Waiters
  readonly #backend: LockBackend
  readonly #clock: Clock
  readonly #skipValidityCheck: boolean
  readonly #yields: HandoffYield
  /** Identifies this Locker's own release messages. */
  readonly #id = newToken()
  /** Aborted on close; waits end through Waiters.close(), a backoff listens to it. */
  readonly #closed = new AbortController()
  /** Releases, undos and the background work they leave. */
  readonly releases: Releases
  /** Locks acquired. */
  acquired = 0
  /** Locks acquired, by kind. */
  readonly acquiredByKind: Record<HoldKind, number> = { exclusive: 0, shared: 0, semaphore: 0 }

  constructor(options: AcquisitionOptions) {
    this.#backend = options.backend
    this.#clock = options.clock
    this.#skipValidityCheck = options.skipValidityCheck === true
    this.#yields = new HandoffYield(this.#clock)
    this.waiters = new Waiters(this.#backend, this.#clock, this.#id)
    const releases = new Releases({ ...options, waiters: this.waiters, yields: this.#yields, id: this.#id })
    this.releases = releases
    this.leases = new Leases(this.#backend, this.#clock, {
      release: (lease) =>
        releaseTraced() ? traceRelease(lease, () => releases.release(lease)) : releases.release(lease),
      cleanUp: (lease) =>
        releases.undo(lease.keys, lease.token, Math.max(1000, lease.lifetimeMs), lease.mode),
    })
  }

  /** True once {@link Acquisition.close} was called. */
  get isClosed(): boolean {
    return this.#closed.signal.aborted
  }

  /**
   * Attempts, then waits for a wake-up (a release message, the holder's TTL running
   * out, `retryIntervalMs`), until the lock is got, the timeout passes or a signal
   * aborts. With `single`, one attempt: null when the keys are held.
   */
  async run(
    keys: string[],
    opts: ResolvedLockOptions,
    signal: AbortSignal | undefined,
    single: boolean,
    tally: AcquireTally | undefined,
  ): Promise<Lock | null> {
    const { waiters } = this
    const start = this.#clock.now()
    const giveUpAt = opts.retryTimeoutMs === null ? Number.POSITIVE_INFINITY : start + opts.retryTimeoutMs
    // Closing ends every wait through Waiters.close(): no listener per waiter.
    const signals = signal === undefined ? NO_SIGNALS : [signal]
    let attempts = 0
    let failures = 0
    /** The last attempt found the keys held (see AttemptRequest.contended). */
    let contended = false
    /** The keys may be shared locks or semaphores (see AcquireRequest.companions). */
    let companions = false
    // Place in the key queues: by arrival, kept across retries.
    const seq = waiters.nextSeq()
    let watched = keys[0] as string
    // Local fairness: a newcomer queues behind this process's waiters (of its family)
    // instead of racing them, so a releaser does not simply take its own lock back.
    const busy = !single && waiters.isBusy(watched, familyOf(opts.mode))
    let firstWait = single ? 0 : busy ? opts.retryIntervalMs : this.#yields.left(watched)
    // The key whose release message this waiter consumed, until its next attempt shows
    // what became of that key. A release message wakes one waiter per Locker; if the
    // woken one then leaves that key (blocked on another of its keys, or the attempt
    // throws), the wake-up is passed to the next local waiter on it, which may never
    // have attempted, so no holder of the key carries its waiting mark.
    let wokenOn: string | undefined
    let got = false
    // A semaphore waiter may be handed a permit by a local release (one round trip
    // instead of a wake-up and an attempt); not with fencing nor replica confirmation,
    // which only an attempt gives.
    const slot: HandOverSlot | undefined =
      !single && opts.mode.kind === 'semaphore' && !opts.fencing && replicaAck(opts) === undefined
        ? { lifetimeMs: opts.lifetimeMs, queueTtlMs: writerMarkMs(opts), grant: undefined, held: false }
        : undefined
    try {
      for (;;) {
        if (firstWait > 0) {
          const outcome = await this.#waitTurn(watched, firstWait, seq, signals, giveUpAt, opts.mode, slot)
          firstWait = 0
          const handed = outcome === 'granted' ? this.#granted(slot, keys, opts, signal) : undefined
          if (handed !== undefined) return handed
          if (outcome === 'woken') wokenOn = watched
          this.#throwIfStopped(signal)
          // A timeout shorter than one retry interval (0: "one attempt") still gets its
          // attempt; after a longer one, the first local waiter has attempted on this
          // process's behalf meanwhile, and a burst of final attempts is what queueing avoids.
          if (
            outcome === 'deadline' &&
            (attempts > 0 || (opts.retryTimeoutMs ?? 0) >= opts.retryIntervalMs)
          ) {
            throw new AcquireTimeoutError(keys, this.#clock.now() - start, attempts)
          }
        }
        // The caller may have given up while we waited or subscribed: never attempt then.
        this.#throwIfStopped(signal)
        const generation = waiters.generation(watched)
        const wasSubscribed = waiters.isSubscribed(watched)
        let result: Lock | Blocked
        const attemptedKey = watched
        waiters.beginAttempt(attemptedKey)
        try {
          attempts++
          if (tally !== undefined) tally.attempts = attempts
          // Woken by a release of this key: likely free, so a plain SET NX PX first, as on a first try
          // (not after shared holders blocked it: only the script ends their writer mark).
          const viaScript = contended && (wokenOn !== attemptedKey || companions)
          result = await this.#attempt(keys, opts, signal, viaScript, companions, single)
          waiters.endAttempt(attemptedKey)
        } catch (err) {
          waiters.endAttempt(attemptedKey)
          this.#throwIfStopped(signal)
          // Redis failing is not contention: only a transient failure (a restart, a
          // failover, a lost connection, no reply in time) is tried again, with backoff.
          if (single || !isTransient(err)) {
            // Newcomers queued behind this attempt: let them see for themselves.
            waiters.wakeOne(watched)
            throw err
          }
          failures++
          const now = this.#clock.now()
          const backoff = backoffMs(failures, opts.retryIntervalMs)
          if (now + backoff >= giveUpAt) throw gaveUp(err, attempts, now - start)
          await pause(this.#clock, backoff, [this.#closed.signal, signal])
          this.#throwIfStopped(signal)
          continue
        }
        if (!('pttl' in result)) {
          wokenOn = undefined // ours now: its release hands over locally
          got = true
          return result
        }
        if (result.conflict !== undefined) {
          waiters.wakeOne(watched)
          throw kindConflict(keys[result.blockedIndex] ?? watched, result.conflict, opts.mode)
        }
        failures = 0
        contended = true
        // Blocked by shared holders: the next attempt sends the companion keys at once.
        if (result.companions === true) companions = true
        const blocked = keys[result.blockedIndex] ?? watched
        // Blocked on the key it was woken for: the attempt marked that key's new holder.
        if (blocked === wokenOn) wokenOn = undefined
        if (single) {
          waiters.wakeOne(watched) // newcomers queued behind this attempt go on waiting themselves
          return null
        }
        const now = this.#clock.now()
        if (now >= giveUpAt) throw new AcquireTimeoutError(keys, this.#clock.now() - start, attempts)
        if (blocked !== watched) {
          watched = blocked
          continue
        }
        if (!wasSubscribed) {
          // Subscribe, then retry at once: a release between the failed attempt and the
          // subscription taking effect would otherwise go unnoticed.
          if (await waiters.subscribe(watched, opts.retryIntervalMs)) continue
        } else if (waiters.generation(watched) !== generation) {
          continue // a release raced the attempt
        }
        if (wokenOn !== undefined) {
          waiters.wakeOne(wokenOn) // left that key: pass the wake-up on
          wokenOn = undefined
        }
        // The holder's TTL bounds the wait (an expiry sends no message), jittered so
        // the waiters of several processes do not all attempt in the same millisecond.
        const ttlBound =
          result.pttl >= 0
            ? result.pttl + 1 + jitter(Math.min(10, opts.retryIntervalMs / 20))
            : Number.POSITIVE_INFINITY
        const bound = Math.min(opts.retryIntervalMs * (0.8 + 0.4 * Math.random()), ttlBound)
        const outcome = await this.#waitTurn(watched, bound, seq, signals, giveUpAt, opts.mode, slot)
        const handed = outcome === 'granted' ? this.#granted(slot, keys, opts, signal) : undefined
        if (handed !== undefined) return handed
        if (outcome === 'woken') wokenOn = watched
        this.#throwIfStopped(signal)
        if (outcome === 'deadline') throw new AcquireTimeoutError(keys, this.#clock.now() - start, attempts)
      }
    } finally {
      // Leaving without the lock (timeout, abort, close, error, tryAcquire): do not
      // keep the wake-up, nor a place in a semaphore's arrival queue no waiter refreshes.
      // Even without an answer to its first attempt (abort, close, failure) or without any
      // (queued behind local waiters), it may stand for the Locker's entry in the queue.
      // Decided (and sent) before the wake-ups below: a woken waiter stays in the queue.
      // A permit handed over took the Locker's place in the queue with it.
      if (!got && !slot?.held && !single) {
        this.releases.track(leaveQueue(this.#backend, waiters, this.#id, keys, opts.mode))
      }
      if (wokenOn !== undefined) waiters.wakeOne(wokenOn)
      // Named by a release while this attempt was in flight: that turn goes to the next waiter.
      waiters.handOnNamed(watched)
    }
  }

  /** Checks keys against the deployment's own rules (a cluster: one slot; a quorum: no semaphores) before anything is sent. */
  checkKeys(keys: readonly string[], mode: HoldMode): void {
    this.#backend.checkKeys(keys, mode)
  }

  /** Reads a key's state (for `inspect`). */
  inspect(key: string, timeoutMs: number): Promise<KeyState> {
    return this.#backend.inspect(key, timeoutMs)
  }

  /**
   * Deletes `key` if it still holds `token`, whoever that is (the operator's forced
   * release), announcing it like any release. Resolves whether it was removed.
   */
  async releaseToken(key: string, token: string, timeoutMs: number): Promise<boolean> {
    const { removed } = await this.#backend.release({ keys: [key], token, publisherId: this.#id }, timeoutMs)
    if (removed > 0) this.waiters.notify(key)
    return removed > 0
  }

  /**
   * Stops: leases are lost with reason `closed` (and released), waits end with
   * `ERR_LOCK_CLOSED`, cleanups are awaited, and the backend is closed.
   */
  async close(): Promise<void> {
    this.#closed.abort(new LockerClosedError())
    this.leases.closeAll()
    await this.waiters.close()
    await this.releases.settled()
    await this.#backend.close()
  }

  /**
   * Sends one attempt; resolves the Lock, or where the keys are held. A promise chain,
   * not an async function: it runs on every acquisition (see ScriptRunner.call).
   */
  #attempt(
    keys: string[],
    opts: ResolvedLockOptions,
    signal: AbortSignal | undefined,
    contended: boolean,
    companions: boolean,
    single: boolean,
  ): Promise<Lock | Blocked> {
    const token = newToken()
    const { lifetimeMs, fencing, mode } = opts
    const sentAt = this.#clock.now()
    // The lease counts from when the request was sent (replica WAIT included); a later reply is useless.
    const ack = replicaAck(opts)
    let pending: Promise<AttemptResult>
    try {
      pending = this.#backend.acquire({
        keys,
        token,
        lifetimeMs,
        fencing,
        mode,
        writerMarkMs: mode.kind !== 'exclusive' ? undefined : single ? 0 : writerMarkMs(opts),
        queue: arrivalQueue(this.#backend, this.waiters, this.#id, keys, opts, single),
        companions,
        contended,
        timeoutMs: Math.min(validityMs(lifetimeMs), opts.attemptTimeoutMs + (ack ? ack.timeoutMs : 0)),
        ack,
      })
    } catch (err) {
      return Promise.reject(err)
    }
    const reply = signal
      ? raceAbort(pending, signal, (late) =>
          this.releases.track(
            late.then((r) => (r.acquired ? this.releases.undo(keys, token, 5000, mode) : undefined)),
          ),
        )
      : pending
    return reply.then((r) => this.#answered(r, keys, token, opts, signal, sentAt))
  }

  /** An attempt's reply: where the keys are held, or the Lock once the grant is checked still valid. */
  #answered(
    reply: AttemptResult,
    keys: string[],
    token: string,
    opts: ResolvedLockOptions,
    signal: AbortSignal | undefined,
    sentAt: number,
  ): Lock | Blocked {
    if (!reply.acquired) return reply
    const { lifetimeMs, mode } = opts
    if (this.isClosed || signal?.aborted) {
      // Nobody will hold it: the caller gave up (or the Locker closed) while the reply was on its way.
      this.releases.undo(keys, token, 5000, mode)
      throw this.isClosed ? new LockerClosedError() : signal?.reason
    }
    if (this.leases.expiredAt(sentAt, lifetimeMs) && !this.#skipValidityCheck) {
      this.releases.undo(keys, token, 5000, mode)
      throw new BackendError(
        'acquire',
        `Redis answered after the lease had already run out (lifetimeMs ${lifetimeMs}); the acquisition was undone`,
      )
    }
    this.acquired++
    this.acquiredByKind[mode.kind]++
    // Several can hold the key: the next local waiter may fit too (a semaphore says whether).
    if (mode.kind !== 'exclusive' && (reply.room ?? 1) > 0) for (const key of keys) this.waiters.wakeOne(key)
    return this.leases.add(keys, token, reply.fence, opts, sentAt)
  }

  /** Waits for this waiter's turn on `key` (see {@link Waiters.wait}), at the latest until `giveUpAt`. */
  #waitTurn(
    key: string,
    boundMs: number,
    seq: number,
    signals: readonly (AbortSignal | undefined)[],
    giveUpAt: number,
    mode: HoldMode,
    slot: HandOverSlot | undefined,
  ): Promise<WaitOutcome> {
    return this.waiters.wait(
      key,
      Math.max(0, boundMs),
      seq,
      signals,
      giveUpAt - this.#clock.now(),
      mode,
      slot,
    )
  }

  /**
   * A local release handed this waiter its permit: checked and counted as an attempt's
   * grant. Undefined when the release's answer came too late to hold it (undone; the
   * waiter goes on, as after a transient failure).
   */
  #granted(
    slot: HandOverSlot | undefined,
    keys: string[],
    opts: ResolvedLockOptions,
    signal: AbortSignal | undefined,
  ): Lock | undefined {
    const grant = slot?.grant
    if (slot === undefined || grant === undefined) return undefined // unreachable: set with 'granted'
    slot.grant = undefined
    const late = this.leases.expiredAt(grant.sentAt, opts.lifetimeMs) && !this.#skipValidityCheck
    if (late && !this.isClosed && !signal?.aborted) {
      this.releases.undo(keys, grant.token, 5000, opts.mode)
      return undefined
    }
    // A grant's answer is the Lock (or a throw: closed, aborted), never a Blocked.
    const lock = this.#answered(HANDED_OVER, keys, grant.token, opts, signal, grant.sentAt) as Lock
    slot.held = true
    return lock
  }

  /** Throws once closed or the caller's signal aborted. */
  #throwIfStopped(signal: AbortSignal | undefined): void {
    if (this.isClosed) throw new LockerClosedError()
    signal?.throwIfAborted()
  }
}
