import type { RedisAdapter, Subscriber, Topology } from './adapter.js'
import { SubscriberCore } from './subscriber-core.js'
import { type Corkable, type TickCork, tickCorkOf } from './tick-cork.js'

type Listener = (...args: never[]) => void

/** What ioredis' `Redis` and `Cluster` have in common, by shape, so ioredis stays optional. */
interface IoRedisCommands {
  status: string
  /** A `Redis` client's socket (absent before the first connection, and on a `Cluster`). */
  readonly stream?: Corkable | null
  evalsha(sha: string, numKeys: number, ...args: string[]): Promise<unknown>
  eval(script: string, numKeys: number, ...args: string[]): Promise<unknown>
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<unknown>
  on(event: string, listener: Listener): unknown
  quit(): Promise<unknown>
  disconnect(): void
}

/** The part of an ioredis `Redis` client (plain or Sentinel-managed) we use. */
export interface IoRedisLike extends IoRedisCommands {
  call(command: string, ...args: string[]): Promise<unknown>
  duplicate(override?: Record<string, unknown>): IoRedisLike
  subscribe(...channels: string[]): Promise<unknown>
  unsubscribe(...channels: string[]): Promise<unknown>
}

/** A connection of an ioredis `Cluster` to one node (a plain ioredis `Redis`). */
interface IoRedisNodeLike extends IoRedisLike {
  readonly options: { readonly host?: string; readonly port?: number }
}

/** The part of an ioredis `Cluster` we use. */
export interface IoRedisClusterLike extends IoRedisCommands {
  readonly isCluster: true
  /** Per slot, the `host:port` of its nodes, master first (empty until the slot map is loaded). */
  readonly slots: readonly (readonly string[] | undefined)[]
  /** The connections to the nodes, one per node. */
  nodes(role?: 'all' | 'master' | 'slave'): IoRedisNodeLike[]
  duplicate(startupNodes?: unknown[], options?: Record<string, unknown>): IoRedisClusterLike
  ssubscribe(...channels: string[]): Promise<unknown>
  sunsubscribe(...channels: string[]): Promise<unknown>
}

/** True for an ioredis `Redis` or `Cluster` (node-redis clients have `isOpen`). */
export function isIoRedis(client: unknown): client is IoRedisLike | IoRedisClusterLike {
  const c = client as Partial<IoRedisLike> | null
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.evalsha === 'function' &&
    typeof c.duplicate === 'function' &&
    typeof c.status === 'string' &&
    !('isOpen' in c)
  )
}

function isCluster(client: IoRedisLike | IoRedisClusterLike): client is IoRedisClusterLike {
  return (client as Partial<IoRedisClusterLike>).isCluster === true
}

/**
 * ioredis, for a `Redis` client (a node, or a master found through Sentinel) or a
 * `Cluster`, which routes EVAL/EVALSHA by their first key and follows MOVED/ASK itself.
 */
export class IoRedisAdapter implements RedisAdapter {
  readonly library = 'ioredis' as const
  readonly topology: Topology
  readonly #client: IoRedisLike | IoRedisClusterLike
  readonly #owned: boolean
  /** Cluster: one adapter per node connection, so the caller can cache what it builds on it. */
  readonly #nodeAdapters = new WeakMap<IoRedisNodeLike, RedisAdapter>()
  readonly wait?: (numReplicas: number, timeoutMs: number) => Promise<number>
  readonly connectionId?: () => Promise<unknown>
  readonly slotMaster?: (slot: number) => Promise<RedisAdapter>
  /** A turn's commands leave in a few writes (issue 14): the client's one TickCork. */
  readonly #cork: TickCork

  constructor(client: IoRedisLike | IoRedisClusterLike, owned: boolean) {
    this.#client = client
    this.#owned = owned
    this.topology = isCluster(client) ? 'cluster' : 'single'
    if (isCluster(client)) {
      this.slotMaster = (slot) => this.#slotMaster(client, slot)
      // The node a command goes to is the client's choice: hold every node's socket.
      this.#cork = tickCorkOf(client, () => client.nodes('all').map((node) => node.stream))
    } else {
      // Read each time: ioredis opens a new socket on every reconnect.
      this.#cork = tickCorkOf(client, () => [client.stream])
      this.wait = async (n, ms) => {
        this.#cork.hold()
        return Number(await client.call('WAIT', String(n), String(ms)))
      }
      this.connectionId = () => {
        this.#cork.hold()
        return client.call('CLIENT', 'ID')
      }
    }
  }

  /** Seen ready once: a later status other than ready means it is reconnecting (see isReconnecting). */
  #wasReady = false

  isReconnecting(): boolean {
    const { status } = this.#client
    if (status === 'ready') {
      this.#wasReady = true
      return false
    }
    // 'reconnecting' only ever follows a lost connection, also one lost before this
    // adapter saw the client. 'end': closed for good; commands fail at once anyway.
    return status === 'reconnecting' || (this.#wasReady && status !== 'end')
  }

  // Each command: written first, the end-of-turn flush scheduled after (TickCork.enter).
  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const first = this.#cork.enter()
    try {
      return this.#client.evalsha(sha, keys.length, ...keys, ...args)
    } finally {
      if (first) this.#cork.scheduleFlush()
    }
  }

  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const first = this.#cork.enter()
    try {
      return this.#client.eval(source, keys.length, ...keys, ...args)
    } finally {
      if (first) this.#cork.scheduleFlush()
    }
  }

  setNx(key: string, value: string, ms: number): Promise<boolean> {
    const first = this.#cork.enter()
    try {
      // A plain reaction, not an async function: one promise less per acquisition.
      return this.#client.set(key, value, 'PX', ms, 'NX').then(isOk)
    } finally {
      if (first) this.#cork.scheduleFlush()
    }
  }

  /** The connection ioredis sends a keyed command of `slot` on: the pool's connection to `slots[slot][0]`. */
  async #slotMaster(client: IoRedisClusterLike, slot: number): Promise<RedisAdapter> {
    const address = client.slots[slot]?.[0]
    const node =
      address === undefined
        ? undefined
        : client.nodes('all').find((n) => `${n.options.host}:${n.options.port}` === address)
    if (!node) throw new Error(`no connection to the master of slot ${slot} (slot map not loaded)`)
    let adapter = this.#nodeAdapters.get(node)
    if (!adapter) {
      adapter = new IoRedisAdapter(node, false)
      this.#nodeAdapters.set(node, adapter)
    }
    return adapter
  }

  isReplyError(err: unknown): boolean {
    return err instanceof Error && err.name === 'ReplyError'
  }

  createSubscriber(): Subscriber {
    const client = this.#client
    if (isCluster(client)) {
      // A Cluster of our own with ioredis' sharded subscriber group: one SSUBSCRIBE
      // connection per master, re-created and re-subscribed when a connection ends or
      // the slot map changes. The caller's client stays free of subscriber mode.
      const sub = client.duplicate([], { shardedSubscribers: true, lazyConnect: false })
      return new SubscriberCore((events) => {
        quiet(sub, 'error', 'node error', 'nodeError')
        sub.on('smessage', events.message as Listener)
        // Emitted whenever the group was rebuilt and has re-sent its SSUBSCRIBEs.
        sub.on('subscribersReady', events.ready)
        return {
          subscribe: async (c) => void (await sub.ssubscribe(c)),
          unsubscribe: async (c) => void (await sub.sunsubscribe(c)),
          close: async () => sub.disconnect(),
        }
      })
    }
    // Our own connection: it must not queue commands forever while Redis is away,
    // and must not outlive the Locker because of a pending reconnect. The channels
    // are subscribed again by SubscriberCore, not by ioredis' autoResubscribe: that
    // one sends SUBSCRIBE without handling its promise, so a connection closed before
    // the reply (the Locker closed just after a reconnect) was an unhandled rejection.
    const sub = client.duplicate({ lazyConnect: false, enableReadyCheck: true, autoResubscribe: false })
    return new SubscriberCore(
      (events) => {
        quiet(sub, 'error')
        sub.on('message', events.message as Listener)
        sub.on('ready', events.ready)
        return {
          subscribe: async (c) => void (await sub.subscribe(c)),
          unsubscribe: async (c) => void (await sub.unsubscribe(c)),
          close: async () => sub.disconnect(),
        }
      },
      { resubscribe: true },
    )
  }

  async close(): Promise<void> {
    if (!this.#owned) return
    try {
      await this.#client.quit()
    } catch {
      this.#client.disconnect()
    }
  }
}

const isOk = (reply: unknown): boolean => reply === 'OK'

/** Errors on our own connections are handled by reconnecting; without a listener ioredis prints them. */
function quiet(client: IoRedisCommands, ...events: string[]): void {
  for (const event of events) client.on(event, () => {})
}
