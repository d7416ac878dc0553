import type { Subscriber } from './adapter.js'

/** The library-specific half of a subscriber: sends (S)SUBSCRIBE and closes its connection. */
export interface SubscriberDriver {
  subscribe(channel: string): Promise<void>
  unsubscribe(channel: string): Promise<void>
  /** Closes the connection; `channels` were still subscribed. */
  close(channels: readonly string[]): Promise<void>
}

/** How a driver reports what its connection does. */
export interface SubscriberEvents {
  /** A message arrived on `channel`. */
  message(channel: string, message: string): void
  /**
   * The connection is (again) ready. The first call is the initial connect; every later
   * one is a reconnect, after which messages may have been missed.
   */
  ready(): void
  /** Something happened after which messages may have been missed (a failover, a slot move). */
  maybeMissed(): void
}

/** Options of {@link SubscriberCore}. */
export interface SubscriberCoreOptions {
  /**
   * Re-send SUBSCRIBE for every channel after a reconnect, for clients that do not do
   * it themselves. Waiters are told of the reconnect once the channels are back.
   */
  readonly resubscribe?: boolean
}

/**
 * The one subscriber implementation: handler lists, the set of active channels, the
 * reconnect notice (and, where the client does not, the re-subscription). Each
 * client library only supplies a {@link SubscriberDriver} built around
 * {@link SubscriberEvents}.
 */
export class SubscriberCore implements Subscriber {
  readonly #driver: SubscriberDriver
  readonly #resubscribe: boolean
  readonly #channels = new Set<string>()
  readonly #messageHandlers: ((channel: string, message: string) => void)[] = []
  readonly #reconnectHandlers: (() => void)[] = []
  #everReady = false
  #closed = false

  /** @param makeDriver builds the driver around the events it reports. */
  constructor(
    makeDriver: (events: SubscriberEvents) => SubscriberDriver,
    options: SubscriberCoreOptions = {},
  ) {
    this.#resubscribe = options.resubscribe === true
    this.#driver = makeDriver({
      message: (channel, message) => {
        if (this.#closed) return
        for (const h of this.#messageHandlers) h(channel, message)
      },
      ready: () => {
        if (this.#everReady) this.#reconnected()
        this.#everReady = true
      },
      maybeMissed: () => {
        // Nothing subscribed, nothing missed: the first connect of a lazily opened
        // connection is part of subscribing.
        if (!this.#closed && this.#channels.size > 0) this.#notifyReconnect()
      },
    })
  }

  /** Channels subscribed and not unsubscribed since. */
  get channels(): ReadonlySet<string> {
    return this.#channels
  }

  async subscribe(channel: string): Promise<void> {
    await this.#driver.subscribe(channel)
    if (!this.#closed) this.#channels.add(channel)
  }

  async unsubscribe(channel: string): Promise<void> {
    this.#channels.delete(channel)
    await this.#driver.unsubscribe(channel)
  }

  onMessage(handler: (channel: string, message: string) => void): void {
    this.#messageHandlers.push(handler)
  }

  onReconnect(handler: () => void): void {
    this.#reconnectHandlers.push(handler)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const channels = [...this.#channels]
    this.#channels.clear()
    await this.#driver.close(channels)
  }

  #reconnected(): void {
    if (this.#closed) return
    if (!this.#resubscribe || this.#channels.size === 0) {
      this.#notifyReconnect()
      return
    }
    const again = [...this.#channels].map((c) => this.#driver.subscribe(c))
    // Waiters re-check once the channels are back; a failed one falls back to their timers.
    void Promise.allSettled(again).then(() => this.#notifyReconnect())
  }

  #notifyReconnect(): void {
    if (this.#closed) return
    for (const h of this.#reconnectHandlers) h()
  }
}
