import type { Subscriber } from '../adapters/adapter.js'
import type { LockBackend } from '../backends/lock-backend.js'
import type { Clock } from './clock.js'
import type { KeyQueue } from './key-queue.js'

/** How long an idle key's subscription is kept, so a busy key does not churn SUBSCRIBE/UNSUBSCRIBE. */
export const LINGER_MS = 2000
const SUBSCRIBE_BACKOFF_MS = 5000

/** What the channel side needs from the waiters it serves (see Waiters). */
export interface SubscriptionsHost {
  /** The key queues; an idle one is deleted from here when its linger ends. */
  readonly queues: Map<string, KeyQueue>
  /** Attempts in flight on a key: its idle queue is kept meanwhile. */
  attemptsOn(key: string): number
  /** A message on `q`'s release channel. */
  message(q: KeyQueue, message: string): void
  /** The subscriber connection is back: messages sent while it was down are gone. */
  reconnected(): void
}

/**
 * The release channels of one Locker's waiters: one subscriber connection, opened on
 * first need and closed when no key has waiters; per key a SUBSCRIBE (bounded by the
 * caller's timeout, backed off after a failure) and, once the key is idle, an
 * UNSUBSCRIBE after {@link LINGER_MS}.
 */
export class Subscriptions {
  readonly #backend: LockBackend
  readonly #clock: Clock
  readonly #host: SubscriptionsHost
  readonly #byChannel = new Map<string, KeyQueue>()
  #subscriber: Subscriber | undefined
  #closed = false

  constructor(backend: LockBackend, clock: Clock, host: SubscriptionsHost) {
    this.#backend = backend
    this.#clock = clock
    this.#host = host
  }

  /** A new queue: messages on its channel are for it. */
  register(q: KeyQueue): void {
    this.#byChannel.set(q.channel, q)
  }

  /**
   * Subscribes to `q`'s release channel; resolves true once active, false if that
   * failed or took longer than `timeoutMs` (the waiter then falls back to its timers).
   * Never rejects.
   */
  subscribe(q: KeyQueue, timeoutMs: number): Promise<boolean> {
    if (q.subscription === 'active') return Promise.resolve(true)
    // Joining a SUBSCRIBE in flight is bounded by this caller's own timeout too.
    const attempt = q.subscribing ?? this.#start(q)
    if (!attempt) return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      const timer = this.#clock.setTimer(() => resolve(false), timeoutMs)
      void attempt.then((ok) => {
        this.#clock.clearTimer(timer)
        resolve(ok)
      })
    })
  }

  /** Keeps `q` (and its subscription) for {@link LINGER_MS} once it has no waiters. */
  lingerIfIdle(q: KeyQueue): void {
    if (q.waiters.length === 0 && this.#host.queues.get(q.key) === q) this.#scheduleLinger(q)
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#byChannel.clear()
    const sub = this.#subscriber
    this.#subscriber = undefined
    await sub?.close().catch(() => {})
  }

  /** Sends SUBSCRIBE for `q` unless closed or backing off; the promise never rejects. */
  #start(q: KeyQueue): Promise<boolean> | undefined {
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

  #ensureSubscriber(): Subscriber {
    if (this.#subscriber) return this.#subscriber
    const sub = this.#backend.createSubscriber()
    sub.onMessage((channel, message) => {
      const q = this.#byChannel.get(channel)
      if (q) this.#host.message(q, message)
    })
    sub.onReconnect(() => this.#host.reconnected())
    this.#subscriber = sub
    return sub
  }

  #scheduleLinger(q: KeyQueue): void {
    if (this.#closed || q.linger !== undefined) return
    q.linger = this.#clock.setTimer(() => {
      q.linger = undefined
      if (q.waiters.length > 0 || q.subscribing) return
      // A waiter of the key is attempting (it left the queue for that): keep the queue,
      // its generation and subscription, or a release during the attempt goes unseen.
      if (this.#host.attemptsOn(q.key) > 0) return this.#scheduleLinger(q)
      const { queues } = this.#host
      queues.delete(q.key)
      this.#byChannel.delete(q.channel)
      if (q.subscription === 'active') this.#subscriber?.unsubscribe(q.channel).catch(() => {})
      q.subscription = 'none'
      if (queues.size === 0 && this.#subscriber) {
        // Nobody waits: drop the connection so a forgotten Locker does not keep the process alive.
        const sub = this.#subscriber
        this.#subscriber = undefined
        sub.close().catch(() => {})
      }
    }, LINGER_MS)
  }
}
