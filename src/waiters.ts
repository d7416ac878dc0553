import type { Subscriber } from './adapters/adapter.js'
import type { LockBackend } from './backends/lock-backend.js'
import { onAbort } from './internal/abort.js'
import { AttemptCounts } from './internal/attempt-counts.js'
import type { Clock, TimerHandle } from './internal/clock.js'
import { type KeyQueue, newKeyQueue, type Waiter, type WaitOutcome } from './internal/key-queue.js'
import { jitter } from './internal/retry.js'
import { familyOf, LOCK_FAMILY } from './kinds.js'
import { EXCLUSIVE, type HoldMode, readNotice } from './scripts/index.js'

export type { WaitOutcome }

/** How long an idle key's subscription is kept, so a busy key does not churn SUBSCRIBE/UNSUBSCRIBE. */
export const LINGER_MS = 2000
const SUBSCRIBE_BACKOFF_MS = 5000

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
  readonly #backend: LockBackend
  readonly #clock: Clock
  readonly #selfId: string
  readonly #queues = new Map<string, KeyQueue>()
  readonly #byChannel = new Map<string, KeyQueue>()
  /** Attempts in flight per key (see {@link Waiters.isBusy}). */
  readonly #attempts = new AttemptCounts()
  #subscriber: Subscriber | undefined
  #seq = 0
  #closed = false
  /** Wake-ups delivered (for stats and tests). */
  wakeups = 0

  /** @param selfId this Locker's id: its own release messages are skipped, having been handled locally. */
  constructor(backend: LockBackend, clock: Clock, selfId: string) {
    this.#backend = backend
    this.#clock = clock
    this.#selfId = selfId
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
    if (q) q.namedPending = false
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
   * Subscribes to `key`'s release channel; resolves true once active, false if
   * that failed or took longer than `timeoutMs` (the waiter then falls back to its
   * timers). Never rejects.
   */
  subscribe(key: string, timeoutMs: number): Promise<boolean> {
    const q = this.#queue(key)
    if (q.subscription === 'active') return Promise.resolve(true)
    // Joining a SUBSCRIBE in flight is bounded by this caller's own timeout too.
    const attempt = q.subscribing ?? this.#startSubscribe(q)
    if (!attempt) return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      const timer = this.#clock.setTimer(() => resolve(false), timeoutMs)
      void attempt.then((ok) => {
        this.#clock.clearTimer(timer)
        resolve(ok)
      })
    })
  }

  /** Sends SUBSCRIBE for `q` unless closed or backing off; the promise never rejects. */
  #startSubscribe(q: KeyQueue): Promise<boolean> | undefined {
    if (this.#closed || this.#clock.now() < q.retrySubscribeAt) return undefined
    q.subscription = 'pending'
    const sub = this.#ensureSubscriber()
    const attempt = sub.subscribe(q.channel).then(
      () => {
        if (q.subscription === 'pending') q.subscription = 'active'
        return q.subscription === 'active'
      },
      () => {
        q.subscription = 'none'
        q.retrySubscribeAt = this.#clock.now() + SUBSCRIBE_BACKOFF_MS
        return false
      },
    )
    q.subscribing = attempt
    void attempt.finally(() => {
      q.subscribing = undefined
      if (q.waiters.length === 0) this.#scheduleLinger(q)
    })
    return attempt
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
        settle: (outcome) => {
          const i = q.waiters.indexOf(waiter)
          if (i === -1) return
          q.waiters.splice(i, 1)
          resolve(outcome)
          if (deadline !== undefined) this.#clock.clearTimer(deadline)
          if (waiter.bound !== undefined) this.#clock.clearTimer(waiter.bound)
          for (const off of detach) off()
          if (i === 0) this.#armHead(q)
          // Off the woken waiter's path: its next attempt is sent before this runs.
          if (q.waiters.length === 0) setImmediate(() => this.#lingerIfIdle(q))
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
   * (a release may admit them all, in one round trip).
   */
  notify(key: string): void {
    const q = this.#queues.get(key)
    if (!q) return
    q.generation++
    if (q.waiters[0]?.shared !== true) {
      this.wakeOne(key)
      return
    }
    const run: Waiter[] = []
    for (const w of q.waiters) {
      if (!w.shared) break
      run.push(w)
    }
    for (const w of run) {
      this.wakeups++
      w.settle('woken')
    }
  }

  /**
   * A release named this Locker among those a semaphore's free permits go to (see
   * RELEASE_HOLDER). Its arrival-queue entry stands for all its waiters, so it needs
   * one attempt: when one is in flight already, that one is enough (refused, it sees
   * the new generation and tries again; admitted or given up, its acquisition hands the
   * turn on, see {@link Waiters.handOnNamed}); otherwise as {@link Waiters.notify}.
   */
  notifyNamed(key: string): void {
    if (this.#attempts.on(key) === 0) {
      this.notify(key)
      return
    }
    const q = this.#queues.get(key)
    if (!q) return
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
    if (!q?.namedPending || this.#attempts.on(key) > 0) return
    q.namedPending = false
    this.wakeOne(key)
  }

  /** Wakes the first waiter of `key` without a new release (passing on an unused wake-up). */
  wakeOne(key: string): void {
    const head = this.#queues.get(key)?.waiters[0]
    if (!head) return
    this.wakeups++
    head.settle('woken')
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const q of this.#queues.values()) {
      if (q.linger !== undefined) this.#clock.clearTimer(q.linger)
      for (const w of [...q.waiters]) w.settle('aborted')
    }
    this.#queues.clear()
    this.#byChannel.clear()
    const sub = this.#subscriber
    this.#subscriber = undefined
    await sub?.close().catch(() => {})
  }

  #queue(key: string): KeyQueue {
    let q = this.#queues.get(key)
    if (!q) {
      q = newKeyQueue(key)
      this.#queues.set(key, q)
      this.#byChannel.set(q.channel, q)
    }
    return q
  }

  #ensureSubscriber(): Subscriber {
    if (this.#subscriber) return this.#subscriber
    const sub = this.#backend.createSubscriber()
    sub.onMessage((channel, message) => {
      const q = this.#byChannel.get(channel)
      if (!q) return
      const notice = readNotice(message, this.#selfId)
      if (notice === 'named') this.notifyNamed(q.key)
      else if (notice === 'any') this.notify(q.key)
      else if (notice !== 'own') this.othersGoFirst(q.key, notice)
    })
    // Messages sent while the connection was down are gone: let each queue retry now.
    sub.onReconnect(() => {
      for (const q of this.#queues.values()) this.notify(q.key)
    })
    this.#subscriber = sub
    return sub
  }

  #lingerIfIdle(q: KeyQueue): void {
    if (q.waiters.length === 0 && this.#queues.get(q.key) === q) this.#scheduleLinger(q)
  }

  #scheduleLinger(q: KeyQueue): void {
    if (this.#closed || q.linger !== undefined) return
    q.linger = this.#clock.setTimer(() => {
      q.linger = undefined
      if (q.waiters.length > 0 || q.subscribing) return
      // A waiter of the key is attempting (it left the queue for that): keep the queue,
      // its generation and subscription, or a release during the attempt goes unseen.
      if (this.#attempts.on(q.key) > 0) return this.#scheduleLinger(q)
      this.#queues.delete(q.key)
      this.#byChannel.delete(q.channel)
      if (q.subscription === 'active') this.#subscriber?.unsubscribe(q.channel).catch(() => {})
      q.subscription = 'none'
      if (this.#queues.size === 0 && this.#subscriber) {
        // Nobody waits: drop the connection so a forgotten Locker does not keep the process alive.
        const sub = this.#subscriber
        this.#subscriber = undefined
        sub.close().catch(() => {})
      }
    }, LINGER_MS)
  }
}
