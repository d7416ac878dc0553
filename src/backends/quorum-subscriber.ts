import type { Subscriber } from '../adapters/adapter.js'
import { SubscriberCore, type SubscriberEvents } from '../adapters/subscriber-core.js'

/**
 * How long copies of one release message from the other nodes count as the same
 * release. The releaser sends to every node at once, so the copies arrive within a
 * round trip of each other; a copy later than this only costs a spurious wake-up.
 */
export const DEDUPE_WINDOW_MS = 100

interface Seen {
  at: number
  /** Nodes that delivered this (channel, message) since it last woke anyone. */
  readonly nodes: Set<number>
}

/**
 * One subscriber over the release channels of every node of a quorum. A release
 * is published on each node that held the key, so one release arrives up to N
 * times: the first copy wakes, later copies of the same (channel, message) from
 * *other* nodes within {@link DEDUPE_WINDOW_MS} are dropped. A second copy from a
 * node that already delivered one is a new release (the same Locker released
 * again) and wakes again.
 *
 * `subscribe` resolves once a majority of nodes subscribed: a holder's release
 * reaches at least a majority, and two majorities share a node, so a release
 * cannot go unheard. It rejects when a majority cannot be reached; nodes that
 * failed keep trying through their own client's reconnects.
 */
export class QuorumSubscriber extends SubscriberCore {
  constructor(subs: readonly Subscriber[], quorum: number) {
    super((events) => new QuorumDriver(subs, quorum, events))
  }
}

/** Fans one subscription out to every node and the nodes' messages back in, once each. */
class QuorumDriver {
  readonly #subs: readonly Subscriber[]
  readonly #quorum: number
  readonly #events: SubscriberEvents
  readonly #seen = new Map<string, Seen>()

  constructor(subs: readonly Subscriber[], quorum: number, events: SubscriberEvents) {
    this.#subs = subs
    this.#quorum = quorum
    this.#events = events
    for (const [node, sub] of subs.entries()) {
      sub.onMessage((channel, message) => this.#onMessage(node, channel, message))
      // Any node may have missed messages while it was away: let the waiters retry.
      sub.onReconnect(() => events.maybeMissed())
    }
  }

  subscribe(channel: string): Promise<void> {
    return this.#majority(
      this.#subs.map((s) => s.subscribe(channel)),
      `subscribe to ${channel}`,
    )
  }

  async unsubscribe(channel: string): Promise<void> {
    await Promise.allSettled(this.#subs.map((s) => s.unsubscribe(channel)))
  }

  async close(): Promise<void> {
    this.#seen.clear()
    await Promise.allSettled(this.#subs.map((s) => s.close()))
  }

  #onMessage(node: number, channel: string, message: string): void {
    const now = performance.now()
    const id = `${channel}\n${message}`
    const seen = this.#seen.get(id)
    if (seen !== undefined && now - seen.at < DEDUPE_WINDOW_MS && !seen.nodes.has(node)) {
      seen.nodes.add(node)
      return
    }
    if (this.#seen.size >= 256) this.#prune(now)
    this.#seen.set(id, { at: now, nodes: new Set([node]) })
    this.#events.message(channel, message)
  }

  #prune(now: number): void {
    for (const [id, seen] of this.#seen) if (now - seen.at >= DEDUPE_WINDOW_MS) this.#seen.delete(id)
  }

  /** Resolves when a majority of `calls` resolved; rejects as soon as that is impossible. */
  #majority(calls: readonly Promise<unknown>[], what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let ok = 0
      let failed = 0
      const errors: unknown[] = []
      for (const call of calls) {
        call.then(
          () => {
            if (++ok === this.#quorum) resolve()
          },
          (err: unknown) => {
            errors.push(err)
            failed++
            if (calls.length - failed === this.#quorum - 1) {
              reject(new AggregateError(errors, `${what} failed on ${failed} of ${calls.length} nodes`))
            }
          },
        )
      }
    })
  }
}
