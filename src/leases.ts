import type { ExtendRequest, ExtendStatus, LockBackend } from './backends/lock-backend.js'
import { extendObserved, publishExtend, publishLost } from './diagnostics.js'
import { BackendError, LockLostError, type LockLostReason, QuorumError } from './errors.js'
import { checkOnRead } from './internal/abort.js'
import type { Clock, TimerHandle } from './internal/clock.js'
import { LinkedSet, type Links } from './internal/links.js'
import { type Lock, LockHandle } from './lock.js'
import type { ResolvedLockOptions } from './options.js'
import type { HoldKind, HoldMode } from './scripts/index.js'

/** Most leases per extension script call: bounds how long one call blocks Redis. */
export const MAX_BATCH = 500

/** 1% of the lease plus 2 ms: room for clock-rate error between us and Redis, and timer lateness. */
export function driftFor(lifetimeMs: number): number {
  return Math.ceil(lifetimeMs * 0.01) + 2
}

/**
 * How long a lease is valid for us, counted from when its acquisition or extension was
 * sent: the lifetime less the drift allowance. The one place a deadline is derived.
 */
export function validityMs(lifetimeMs: number): number {
  return lifetimeMs - driftFor(lifetimeMs)
}

/** A held lease as the rest of the library sees it: what it is, never its state. */
export interface Lease extends ExtendRequest {
  readonly keys: readonly string[]
  readonly token: string
  /** Undefined when acquired without fencing. */
  readonly fence: bigint | undefined
  readonly lifetimeMs: number
  /** How the keys are held. */
  readonly mode: HoldMode
}

/** What the lease table calls back into (the acquisition side). */
export interface LeaseHooks {
  /** Deletes a released lease's keys in Redis; resolves whether it was still there. */
  release(lease: Lease): Promise<boolean>
  /** Frees whatever is left in Redis of a lost lease (never rejects). */
  cleanUp(lease: Lease): void
}

type State = 'held' | 'released' | 'lost'

/** One lease's state: only {@link Leases} reads or writes it. */
class Entry implements Lease, Links<Entry> {
  readonly keys: readonly string[]
  readonly token: string
  readonly fence: bigint | undefined
  readonly lifetimeMs: number
  readonly mode: HoldMode
  readonly extendIntervalMs: number
  /** Leases due within this much of a batch are extended with it, so batches coalesce. */
  readonly batchWindowMs: number
  state: State = 'held'
  /** Monotonic time after which the lease may have expired on the server. */
  deadline: number
  /** Monotonic time of the next scheduled extension. */
  nextDueAt: number
  /** The extension in flight, if any (at most one); it never rejects. */
  inFlight: Promise<void> | undefined
  /** The error of the last failed extension, cleared by a successful one. */
  lastError: unknown
  lostError: LockLostError | undefined
  /** Created on first use of `lock.signal`: most locks never need one. */
  controller: AbortController | undefined
  /**
   * The lease's Lock, held strongly until the lease's first extension, when it is
   * handed to the FinalizationRegistry (and this is cleared). Registering costs about
   * as much as the rest of an uncontended cycle, and most locks are released before
   * their first extension, so a short-lived lock never pays it; a dropped lock is
   * then noticed after its first extension instead of at once.
   */
  unwatched: Lock | undefined
  /** The held table's links (see LinkedSet). */
  prev: Entry | undefined = undefined
  next: Entry | undefined = undefined
  listed = false

  constructor(
    keys: readonly string[],
    token: string,
    fence: bigint | undefined,
    options: ResolvedLockOptions,
    sentAt: number,
  ) {
    this.keys = keys
    this.token = token
    this.fence = fence
    this.lifetimeMs = options.lifetimeMs
    this.mode = options.mode
    this.extendIntervalMs = options.extendIntervalMs
    this.batchWindowMs = options.extendIntervalMs / 5
    this.deadline = sentAt + validityMs(options.lifetimeMs)
    this.nextDueAt = sentAt + options.extendIntervalMs
  }
}

/**
 * The one owner of every lease's state, and the Locker's one extension scheduler.
 *
 * A lease goes held → released or held → lost (a lost lease may still be released,
 * which frees what is left of it in Redis), never back to held: only this class changes
 * it, and it checks the deadline against the monotonic clock on every read, so a
 * lease past its deadline is lost even before a timer ran. One timer is set for the
 * earliest moment that matters (the next extension due or the next deadline); when it
 * fires, every lease due within a small window is extended in one script call (chunks
 * of {@link MAX_BATCH}), so leases acquired at different times converge into a few
 * batches per interval. A lease whose deadline passes without a confirmed extension is
 * declared lost right then, before Redis could hand its keys to anyone else.
 */
export class Leases {
  readonly #backend: LockBackend
  readonly #clock: Clock
  readonly #hooks: LeaseHooks
  /** Held leases: a LinkedSet, so taking one in and out allocates nothing. */
  readonly #held = new LinkedSet<Entry>()
  readonly #registry = new FinalizationRegistry<Entry>((entry) => this.#lose(entry, 'abandoned'))
  #timer: TimerHandle | undefined
  #timerAt = Number.POSITIVE_INFINITY
  #stopped = false
  /** Extension script calls sent so far (for stats and tests). */
  batches = 0
  /** Leases lost so far, by reason (for stats). */
  readonly lostByReason: Record<LockLostReason, number> = {
    expired: 0,
    deleted: 0,
    stolen: 0,
    unreachable: 0,
    abandoned: 0,
    closed: 0,
  }

  constructor(backend: LockBackend, clock: Clock, hooks: LeaseHooks) {
    this.#backend = backend
    this.#clock = clock
    this.#hooks = hooks
  }

  /** Leases held now. */
  get size(): number {
    return this.#held.size
  }

  /** Leases lost so far. */
  get lost(): number {
    let n = 0
    for (const count of Object.values(this.lostByReason)) n += count
    return n
  }

  /** Starts holding a lease acquired by a request sent at `sentAt`; returns its Lock. */
  add(
    keys: readonly string[],
    token: string,
    fence: bigint | undefined,
    options: ResolvedLockOptions,
    sentAt: number,
  ): Lock {
    const entry = new Entry(keys, token, fence, options, sentAt)
    const lock = new LockHandle(entry, this)
    entry.unwatched = lock // watched for garbage collection from its first extension on
    this.#held.add(entry)
    this.#arm(Math.min(entry.nextDueAt, entry.deadline))
    return lock
  }

  /** True once `sentAt + validity` has passed: an acquisition answered that late is useless. */
  expiredAt(sentAt: number, lifetimeMs: number): boolean {
    return this.#clock.now() >= sentAt + validityMs(lifetimeMs)
  }

  /**
   * True while the lease is held and its deadline has not passed. Declares it
   * lost on the spot when the deadline has passed but no timer has run yet (the
   * event loop was blocked or the process paused).
   */
  isHeld(lease: Lease): boolean {
    return this.#heldAt(lease as Entry, this.#clock.now())
  }

  /** {@link Leases.isHeld} at `now`: one clock read for a whole sweep of leases. */
  #heldAt(entry: Entry, now: number): boolean {
    if (entry.state !== 'held') return false
    if (now < entry.deadline) return true
    this.#lose(
      entry,
      entry.lastError !== undefined || entry.inFlight ? 'unreachable' : 'expired',
      entry.lastError,
    )
    return false
  }

  /** Leases held now, by kind. */
  byKind(): Record<HoldKind, number> {
    const out: Record<HoldKind, number> = { exclusive: 0, shared: 0, semaphore: 0 }
    for (const entry of this.#held.toArray()) out[entry.mode.kind]++
    return out
  }

  /** Milliseconds until the local deadline (0 when not held). */
  remainingMs(lease: Lease): number {
    return this.isHeld(lease) ? (lease as Entry).deadline - this.#clock.now() : 0
  }

  /**
   * The loss signal. Reading its state (`aborted`, `reason`, `throwIfAborted()`)
   * first compares the deadline with the monotonic clock, so code that runs after
   * a pause or a blocked event loop sees it aborted even before any timer fired.
   */
  signal(lease: Lease): AbortSignal {
    const entry = lease as Entry
    if (entry.controller) return entry.controller.signal
    entry.controller = new AbortController()
    if (entry.lostError) entry.controller.abort(entry.lostError)
    else checkOnRead(entry.controller.signal, () => this.isHeld(entry))
    return entry.controller.signal
  }

  /** Extends one lease now (or joins the extension in flight); rejects if it is or becomes lost. */
  async extend(lease: Lease): Promise<void> {
    const entry = lease as Entry
    if (this.isHeld(entry) && !entry.inFlight) this.#send([entry], this.#clock.now())
    if (entry.inFlight) await entry.inFlight
    if (entry.state === 'lost' && entry.lostError) throw entry.lostError
    // Released by its holder (also while this extension was on its way): nothing to
    // extend, and nothing was lost.
    if (entry.state === 'released') return
    if (entry.lastError !== undefined) {
      // A quorum's own error carries every node's outcome: pass it on as is.
      throw entry.lastError instanceof BackendError || entry.lastError instanceof QuorumError
        ? entry.lastError
        : new BackendError('extend', 'extend failed', { cause: entry.lastError })
    }
  }

  /**
   * Releases a lease (once): stops extending it, then deletes its keys. False without
   * asking Redis when it was released before or when its Locker was closed (which
   * released it).
   */
  release(lease: Lease): Promise<boolean> {
    const entry = lease as Entry
    if (entry.state === 'released' || entry.lostError?.reason === 'closed') return Promise.resolve(false)
    entry.state = 'released'
    this.#held.delete(entry) // before: a diagnostics subscriber may read stats() during the release
    // The release goes out first, the registry after: a release is on the path of every
    // handoff, and after an idle wait each step before the write costs tenfold.
    try {
      return this.#hooks.release(entry)
    } finally {
      this.#unwatch(entry)
    }
  }

  /** Marks every held lease lost with reason `closed` and stops the timer. */
  closeAll(): void {
    for (const entry of this.#held.toArray()) this.#lose(entry, 'closed')
    this.#stopped = true
    this.#disarm()
  }

  /** Marks a held lease lost: stops extending it, cleans up, then aborts its signal. */
  #lose(entry: Entry, reason: LockLostReason, cause?: unknown): void {
    if (entry.state !== 'held') return
    entry.state = 'lost'
    this.#held.delete(entry)
    if (this.#held.size === 0) this.#disarm()
    const error = new LockLostError(entry.keys, reason, cause === undefined ? undefined : { cause })
    entry.lostError = error
    this.lostByReason[reason]++
    this.#unwatch(entry)
    // Whatever is left of the lease in Redis is ours to free: a blackholed extension
    // may still land, a multi-key lease may have kept some keys.
    this.#hooks.cleanUp(entry)
    publishLost(entry, reason)
    // Last, because user listeners run synchronously inside abort().
    entry.controller?.abort(error)
  }

  #unwatch(entry: Entry): void {
    if (entry.unwatched === undefined) this.#registry.unregister(entry)
    else entry.unwatched = undefined
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
    const due: Entry[] = []
    let next = Number.POSITIVE_INFINITY
    for (const entry of this.#held.toArray()) {
      if (!this.#heldAt(entry, now)) continue
      if (!entry.inFlight && entry.nextDueAt <= now + entry.batchWindowMs) due.push(entry)
      else next = Math.min(next, entry.inFlight ? entry.deadline : Math.min(entry.nextDueAt, entry.deadline))
    }
    for (const entry of due) {
      // From its first extension on, a Lock dropped without release is released once collected.
      const lock = entry.unwatched
      entry.unwatched = undefined
      if (lock !== undefined) this.#registry.register(lock, entry, entry)
    }
    if (due.length > 0) this.#send(due, now)
    for (const entry of due) next = Math.min(next, entry.deadline)
    if (next < Number.POSITIVE_INFINITY) this.#arm(next)
  }

  #send(entries: readonly Entry[], sentAt: number): void {
    for (let i = 0; i < entries.length; i += MAX_BATCH) {
      const chunk = entries.slice(i, i + MAX_BATCH)
      // No point waiting past the latest deadline in the chunk: by then every lease in it is lost.
      let timeoutMs = 1
      for (const e of chunk) timeoutMs = Math.max(timeoutMs, e.deadline - sentAt)
      this.batches++
      // An Entry is an ExtendRequest (keys, token, lifetimeMs): no copy per lease and round.
      const flight = this.#backend.extend(chunk, timeoutMs).then(
        (statuses) => this.#settle(chunk, sentAt, statuses, undefined),
        (err: unknown) => this.#settle(chunk, sentAt, undefined, err),
      )
      for (const e of chunk) e.inFlight = flight
    }
  }

  #settle(
    chunk: readonly Entry[],
    sentAt: number,
    statuses: readonly (ExtendStatus | undefined)[] | undefined,
    err: unknown,
  ): void {
    const now = this.#clock.now()
    let next = Number.POSITIVE_INFINITY
    for (const [i, entry] of chunk.entries()) {
      entry.inFlight = undefined
      if (statuses === undefined) entry.lastError = err ?? new BackendError('extend', 'extend failed')
      // A lease already past its deadline stays lost even if Redis said yes late:
      // isHeld() may have told the holder so already, and that must never flip back.
      if (!this.#heldAt(entry, now)) continue
      const status = statuses?.[i]
      if (status === 1) {
        entry.lastError = undefined
        entry.deadline = Math.max(entry.deadline, sentAt + validityMs(entry.lifetimeMs))
        entry.nextDueAt = sentAt + entry.extendIntervalMs
      } else if (status === 0 || status === -1) {
        // Gone before our deadline: someone deleted it (DEL, a forced release, eviction,
        // a restart without persistence), as its TTL could not have run out yet.
        this.#lose(entry, status === 0 ? 'deleted' : 'stolen')
        continue
      } else {
        // Redis failed or did not answer: retry soon, well before the deadline.
        entry.lastError ??= new BackendError('extend', 'extend returned no status')
        const left = entry.deadline - now
        entry.nextDueAt = now + Math.max(5, Math.min(entry.extendIntervalMs / 4, left / 3))
      }
      next = Math.min(next, entry.nextDueAt, entry.deadline)
    }
    if (extendObserved()) {
      publishExtend(
        chunk,
        chunk.map((e, i) => statuses?.[i] === 1 && e.state === 'held'),
        err,
      )
    }
    if (next < Number.POSITIVE_INFINITY) this.#arm(next)
  }
}
