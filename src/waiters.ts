import type { LockBackend } from './backends/lock-backend.js'
import { onAbort } from './internal/abort.js'
import { AttemptCounts } from './internal/attempt-counts.js'
import type { Clock, TimerHandle } from './internal/clock.js'
import {
  type HandOverSlot,
  type KeyQueue,
  newKeyQueue,
  type Waiter,
  type WaitOutcome,
} from './internal/key-queue.js'
import { jitter } from './internal/retry.js'
import { LINGER_MS, Subscriptions } from './internal/subscriptions.js'
import { familyOf, LOCK_FAMILY } from './kinds.js'
import { EXCLUSIVE, type HoldMode, readNotice } from './scripts/index.js'

export type { HandOverSlot, WaitOutcome }
export { LINGER_MS }

/**
 * Wake-ups on release. One subscriber connection per Locker, opened on first
 * need and closed when no key has waiters; per key a local FIFO queue. A release
 * message wakes one waiter, not all: only one of them could win anyway, so a
 * handoff costs one attempt per process instead of a thundering herd. The first
 * waiter of each key is also bounded by a timer (the holder's remaining TTL or the
 * retry interval), so a lost message, a dropped connection or an expiry without a
 * release costs at most that bound; the others wait their turn behind it (and for
 * their own give-up time), so a held key costs one attempt per bound and process.
 */
export class Waiters {
  readonly #clock: Clock
  readonly #queues = new Map<string, KeyQueue>()
  /** Attempts in flight per key (see {@link Waiters.isBusy}). */
  readonly #attempts = new AttemptCounts()
  readonly #subs: Subscriptions
  #seq = 0
  #closed = false
  /** Wake-ups delivered (for stats and tests). */
  wakeups = 0

  /** @param selfId this Locker's id: its own release messages are skipped, having been handled locally. */
  constructor(backend: LockBackend, clock: Clock, selfId: string) {
    this.#clock = clock
    this.#subs = new Subscriptions(backend, clock, {
      queues: this.#queues,
      attemptsOn: (key) => this.#attempts.on(key),
      message: (q, message) => {
        const notice = readNotice(message, selfId)
        if (notice === 'named') this.notifyNamed(q.key)
        else if (notice === 'any') this.notify(q.key)
        else if (notice !== 'own') this.othersGoFirst(q.key, notice)
      },
      // Messages sent while the connection was down are gone: let each queue retry now.
      reconnected: () => {
        for (const q of this.#queues.values()) this.notify(q.key)
      },
    })
  }

  /** A queue position; pass it to every wait of one acquire so retries keep their place. */
  nextSeq(): number {
    return ++this.#seq
  }

  hasWaiters(key: string): boolean {
    return (this.#queues.get(key)?.waiters.length ?? 0) > 0
  }

  /**
   * True when this process already waits for `key` in `family` (see familyOf in
   * kinds.ts) or has an attempt at it in flight: a newcomer then queues instead of
   * sending an attempt of its own, so callers that arrive together cost one attempt,
   * not one each. Waiters of another family only do not count: a newcomer that might
   * be a kind conflict (a semaphore key asked for with another limit) attempts, and is
   * told so at once instead of timing out behind them.
   */
  isBusy(key: string, family: string = LOCK_FAMILY): boolean {
    const waiting = this.#queues.get(key)?.waiters
    if (waiting !== undefined && waiting.length > 0) return waiting.some((w) => w.family === family)
    return this.#attempts.on(key) > 0
  }

  /** True while an attempt at `key` is in flight. */
  isAttempting(key: string): boolean {
    return this.#attempts.on(key) > 0
  }

  /** Counts an attempt at `key` in flight, until {@link Waiters.endAttempt}. */
  beginAttempt(key: string): void {
    // Sent after any release seen so far: it takes a pending named turn itself.
    const q = this.#queues.get(key)
    if (q) {
      q.namedPending = false
      q.namedWake = false
    }
    this.#attempts.begin(key)
  }

  endAttempt(key: string): void {
    this.#attempts.end(key)
  }

  get waiting(): number {
    let n = 0
    for (const q of this.#queues.values()) n += q.waiters.length
    return n
  }

  generation(key: string): number {
    return this.#queues.get(key)?.generation ?? 0
  }

  isSubscribed(key: string): boolean {
    return this.#queues.get(key)?.subscription === 'active'
  }

  /**
   * Subscribes to `key`'s release channel; resolves true once active, false if that
   * failed or took longer than `timeoutMs`. Never rejects (see Subscriptions).
   */
  subscribe(key: string, timeoutMs: number): Promise<boolean> {
    return this.#subs.subscribe(this.#queue(key), timeoutMs)
  }

  /**
   * Waits on `key` for a wake-up: a release, or (only while this waiter heads the
   * key's queue) `boundMs`, after which it attempts again; `giveUpMs` bounds the wait
   * whatever its place. One timer per key drives the attempts of a process however
   * many local waiters it has: the others wait their turn, so a held key costs one
   * attempt per bound and process, not one per waiter. Shared waiters (`mode`) are woken
   * together (see {@link Waiters.notify}). Resolves, never rejects.
   */
  wait(
    key: string,
    boundMs: number,
    seq: number,
    signals: readonly (AbortSignal | undefined)[],
    giveUpMs = Number.POSITIVE_INFINITY,
    mode: HoldMode = EXCLUSIVE,
    slot?: HandOverSlot,
  ): Promise<WaitOutcome> {
    const q = this.#queue(key)
    const shared = mode.kind === 'shared'
    if (q.linger !== undefined) {
      this.#clock.clearTimer(q.linger)
      q.linger = undefined
    }
    return new Promise<WaitOutcome>((resolve) => {
      let deadline: TimerHandle | undefined
      const detach: (() => void)[] = []
      const waiter: Waiter = {
        seq,
        boundMs,
        bound: undefined,
        boundAt: Number.POSITIVE_INFINITY,
        shared,
        family: familyOf(mode),
        slot,
        reserved: false,
        deferred: undefined,
        settle: (outcome) => {
          if (waiter.reserved && (outcome === 'woken' || outcome === 'timeout')) {
            // A wake-up outweighs a bound (only a wake-up is passed on, see handOver).
            if (waiter.deferred !== 'woken') waiter.deferred = outcome
            return
          }
          const i = q.waiters.indexOf(waiter)
          if (i === -1) return
          q.waiters.splice(i, 1)
          resolve(outcome)
          if (deadline !== undefined) this.#clock.clearTimer(deadline)
          if (waiter.bound !== undefined) this.#clock.clearTimer(waiter.bound)
          for (const off of detach) off()
          if (i === 0) this.#armHead(q)
          // Off the woken waiter's path: its next attempt is sent before this runs.
          if (q.waiters.length === 0) setImmediate(() => this.#subs.lingerIfIdle(q))
        },
      }
      // Insert by arrival order; nearly always at the end or, after a failed wake, the front.
      let at = q.waiters.length
      while (at > 0 && (q.waiters[at - 1]?.seq ?? 0) > seq) at--
      const previousHead = q.waiters[0]
      q.waiters.splice(at, 0, waiter)
      if (this.#closed) return waiter.settle('aborted')
      for (const s of signals) {
        if (s?.aborted) return waiter.settle('aborted')
        if (s) detach.push(onAbort(s, () => waiter.settle('aborted')))
      }
      if (Number.isFinite(giveUpMs)) {
        deadline = this.#clock.setTimer(() => waiter.settle('deadline'), Math.max(0, giveUpMs))
      }
      if (at === 0) {
        // The new head takes over the key's timer.
        if (previousHead?.bound !== undefined) {
          this.#clock.clearTimer(previousHead.bound)
          previousHead.bound = undefined
        }
        this.#armHead(q)
      }
    })
  }

  /** Arms the bound of the queue's head, if it has none yet. */
  #armHead(q: KeyQueue): void {
    const head = q.waiters[0]
    if (head === undefined || head.bound !== undefined || !Number.isFinite(head.boundMs)) return
    this.#setBound(head, head.boundMs)
  }

  #setBound(head: Waiter, ms: number): void {
    if (head.bound !== undefined) this.#clock.clearTimer(head.bound)
    head.boundAt = this.#clock.now() + Math.max(0, ms)
    head.bound = this.#clock.setTimer(() => head.settle('timeout'), Math.max(0, ms))
  }

  /**
   * A semaphore release named other Lockers (see RELEASE_HOLDER): this one attempts
   * again, at the latest, once their queue entries run out in `ms` (they may have died),
   * instead of at its own bound.
   */
  othersGoFirst(key: string, ms: number): void {
    const head = this.#queues.get(key)?.waiters[0]
    if (head === undefined || !(ms >= 0)) return
    // Just past the entries' end, so the attempt finds them gone.
    const at = ms + 1 + jitter(10)
    if (head.bound === undefined || head.boundAt > this.#clock.now() + at) this.#setBound(head, at)
  }

  /**
   * A release of `key` was seen: bump its generation and wake the first waiter, or,
   * when that is a shared hold, every shared waiter up to the first exclusive one
   * (a release may admit them all, in one round trip). True when it woke someone.
   */
  notify(key: string): boolean {
    const q = this.#queues.get(key)
    if (!q) return false
    q.generation++
    if (q.waiters[0]?.shared !== true) return this.wakeOne(key)
    const run: Waiter[] = []
    for (const w of q.waiters) {
      if (!w.shared) break
      run.push(w)
    }
    for (const w of run) {
      this.wakeups++
      w.settle('woken')
    }
    return true
  }

  /**
   * A release named this Locker among those a semaphore's free permits go to (see
   * RELEASE_HOLDER). Its arrival-queue entry stands for all its waiters, so it needs
   * one attempt: when one is in flight already, that one is enough (refused, it sees
   * the new generation and tries again; admitted or given up, its acquisition hands the
   * turn on, see {@link Waiters.handOnNamed}), and so is a waiter woken for an earlier
   * naming that has not sent its attempt yet (several releases may name this Locker
   * for one permit); otherwise as {@link Waiters.notify}.
   */
  notifyNamed(key: string): void {
    const q = this.#queues.get(key)
    if (!q) return
    if (this.#attempts.on(key) === 0 && !q.namedWake) {
      q.namedWake = this.notify(key)
      return
    }
    q.generation++
    q.namedPending = true
  }

  /**
   * An acquisition of `key` ends (with the lock or without): if the Locker was named
   * while its attempt was in flight and no other attempt took that turn, the next
   * local waiter gets it (the attempt was admitted for an earlier release, or gave up).
   */
  handOnNamed(key: string): void {
    const q = this.#queues.get(key)
    if (q === undefined) return
    q.namedWake = false
    if (!q.namedPending || this.#attempts.on(key) > 0) return
    q.namedPending = false
    this.wakeOne(key)
  }

  /**
   * The waiter a release of `key` (a semaphore of `family`) may hand its permit to: the
   * first local waiter that no other release offers a permit to already, when it can
   * take a permit that way (see HandOverSlot). It stays reserved until
   * {@link Waiters.handOver} or {@link Waiters.unreserve}; `more` tells whether other
   * waiters stay behind it.
   */
  reserveSuccessor(key: string, family: string): { waiter: Waiter; more: boolean } | undefined {
    const waiting = this.#queues.get(key)?.waiters
    if (this.#closed || waiting === undefined) return undefined
    // The first waiter no other release offers a permit to already (several may be in flight).
    const next = waiting.find((w) => !w.reserved)
    if (next?.slot === undefined || next.family !== family) return undefined
    next.reserved = true
    // Waiters offered a permit by another release do not count: they are about to leave.
    return { waiter: next, more: waiting.some((w) => w !== next && !w.reserved) }
  }

  /**
   * The release of `key` handed the permit to `waiter` (token, lease counted from `sentAt`): its
   * wait ends with `granted`. False when it had stopped waiting meanwhile (a deadline,
   * an abort, close): the caller gives the permit back.
   */
  handOver(key: string, waiter: Waiter, token: string, sentAt: number): boolean {
    const passOn = waiter.deferred === 'woken'
    waiter.reserved = false
    waiter.deferred = undefined
    const waiting = this.#queues.get(key)?.waiters.includes(waiter) === true
    if (waiter.slot === undefined || this.#closed || !waiting) {
      if (passOn) this.wakeOne(key)
      return false
    }
    waiter.slot.grant = { token, sentAt }
    waiter.settle('granted')
    // A wake-up it got meanwhile was for another release: the next waiter takes it.
    if (passOn) this.wakeOne(key)
    return true
  }

  /**
   * The release of `key` did not hand the permit over (or failed): a wake-up or bound
   * kept meanwhile takes effect now; a wake-up kept by a waiter that has left since goes
   * to the next one.
   */
  unreserve(key: string, waiter: Waiter): void {
    waiter.reserved = false
    const outcome = waiter.deferred
    waiter.deferred = undefined
    if (outcome === undefined) return
    if (this.#queues.get(key)?.waiters.includes(waiter) === true) waiter.settle(outcome)
    else if (outcome === 'woken') this.wakeOne(key)
  }

  /**
   * Wakes the first waiter of `key` without a new release (passing on an unused
   * wake-up); one that a release offers a permit to already is passed over (the wake-up
   * is for another permit), unless all are, and then the first keeps it for later.
   * True when there was a waiter.
   */
  wakeOne(key: string): boolean {
    const waiting = this.#queues.get(key)?.waiters
    const next = waiting?.find((w) => !w.reserved) ?? waiting?.[0]
    if (next === undefined) return false
    this.wakeups++
    next.settle('woken')
    return true
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const q of this.#queues.values()) {
      if (q.linger !== undefined) this.#clock.clearTimer(q.linger)
      for (const w of [...q.waiters]) w.settle('aborted')
    }
    this.#queues.clear()
    await this.#subs.close()
  }

  #queue(key: string): KeyQueue {
    let q = this.#queues.get(key)
    if (!q) {
      q = newKeyQueue(key)
      this.#queues.set(key, q)
      this.#subs.register(q)
    }
    return q
  }
}
