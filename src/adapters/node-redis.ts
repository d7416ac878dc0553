import { isNamedReplyError, type RedisAdapter, type Subscriber, type Topology } from './adapter.js'
import { SubscriberCore } from './subscriber-core.js'

type Listener = (...args: never[]) => void
type ScriptOptions = { keys: string[]; arguments: string[] }
type PubSubListener = (message: string, channel: string) => void

/** What every node-redis client (`createClient`, `createSentinel`, `createCluster`) has, by shape. */
interface NodeRedisCommon {
  isOpen: boolean
  isReady?: boolean
  evalSha(sha: string, options: ScriptOptions): Promise<unknown>
  eval(script: string, options: ScriptOptions): Promise<unknown>
  on(event: string, listener: Listener): unknown
  close?(): Promise<void>
  quit?(): Promise<unknown>
  destroy?(): void
}

/** The part of a node-redis client (`createClient()`) we use. */
export interface NodeRedisLike extends NodeRedisCommon {
  sendCommand(args: string[]): Promise<unknown>
  duplicate(): NodeRedisLike
  connect(): Promise<unknown>
  subscribe(channel: string, listener: PubSubListener): Promise<void>
  unsubscribe(channel: string): Promise<void>
}

/**
 * A node-redis Sentinel client (`createSentinel()`): commands are spread over a pool
 * of master connections, `sendCommand` takes a read-only flag first, and `use()`
 * lends one connection exclusively.
 */
export interface NodeRedisSentinelLike extends Omit<NodeRedisLike, 'sendCommand' | 'duplicate'> {
  sendCommand(isReadonly: boolean | undefined, args: string[]): Promise<unknown>
  duplicate(): NodeRedisSentinelLike
  getMasterNode(): unknown
  use<T>(fn: (client: NodeRedisSentinelLike) => Promise<T>): Promise<T>
}

/** The part of a node-redis cluster client (`createCluster()`) we use. */
export interface NodeRedisClusterLike extends NodeRedisCommon {
  sendCommand(firstKey: string, isReadonly: boolean, args: string[]): Promise<unknown>
  sSubscribe(channel: string, listener: PubSubListener): Promise<void>
  sUnsubscribe(channel: string, listener?: PubSubListener): Promise<void>
  getMasters(): unknown[]
  getSlotMaster(slot: number): unknown
  /** The client (one connection) of a node, connecting it first if needed. */
  nodeClient(node: unknown): NodeRedisLike | Promise<NodeRedisLike>
  off(event: string, listener: Listener): unknown
}

type AnyNodeRedis = NodeRedisLike | NodeRedisSentinelLike | NodeRedisClusterLike

/** True for any node-redis client: plain, Sentinel or cluster. */
export function isNodeRedis(client: unknown): client is AnyNodeRedis {
  const c = client as Partial<NodeRedisLike> | null
  return typeof c === 'object' && c !== null && typeof c.evalSha === 'function' && 'isOpen' in c
}

function isCluster(client: AnyNodeRedis): client is NodeRedisClusterLike {
  const c = client as Partial<NodeRedisClusterLike>
  return typeof c.sSubscribe === 'function' && typeof c.getSlotMaster === 'function'
}

function isSentinel(client: AnyNodeRedis): client is NodeRedisSentinelLike {
  const c = client as Partial<NodeRedisSentinelLike>
  return typeof c.getMasterNode === 'function' && typeof c.use === 'function'
}

/**
 * node-redis, for a client of one node, a Sentinel client, or a cluster client (which
 * routes EVAL/EVALSHA by their first key and follows MOVED/ASK itself).
 */
export class NodeRedisAdapter implements RedisAdapter {
  readonly library = 'node-redis' as const
  readonly topology: Topology
  readonly #client: AnyNodeRedis
  readonly #owned: boolean
  /** Sends one command; `key` routes it on a cluster. */
  readonly #send: (args: string[], key: string) => Promise<unknown>
  /** Cluster: one adapter per node client, so the caller can cache what it builds on it. */
  readonly #nodeAdapters = new WeakMap<NodeRedisLike, RedisAdapter>()
  /** Absent on a Sentinel client, whose pool could send WAIT on another connection than the write: see `pinned`. */
  readonly wait?: (numReplicas: number, timeoutMs: number) => Promise<number>
  readonly connectionId?: () => Promise<unknown>
  readonly pinned?: <T>(fn: (adapter: RedisAdapter) => Promise<T>) => Promise<T>
  readonly slotMaster?: (slot: number) => Promise<RedisAdapter>

  /**
   * @param lent a connection lent by a Sentinel client's `use()`: its `sendCommand`
   * takes the read-only flag, and WAIT on it counts its own writes.
   */
  constructor(client: AnyNodeRedis, owned: boolean, lent = false) {
    this.#client = client
    this.#owned = owned
    this.topology = isCluster(client) ? 'cluster' : 'single'
    if (isCluster(client)) {
      this.#send = (args, key) => client.sendCommand(key, false, args)
      this.slotMaster = (slot) => this.#slotMaster(client, slot)
      return
    }
    if (isSentinel(client) || lent) {
      const flagged = client as NodeRedisSentinelLike
      this.#send = (args) => flagged.sendCommand(false, args)
    } else {
      const plain = client as NodeRedisLike
      this.#send = (args) => plain.sendCommand(args)
    }
    this.connectionId = () => this.#send(['CLIENT', 'ID'], '')
    if (isSentinel(client) && !lent) {
      // The pool may put a WAIT on another connection than the write it should count:
      // the acquisition and its WAIT go, in order, on one lent connection.
      this.pinned = (fn) => client.use((conn) => fn(new NodeRedisAdapter(conn, false, true)))
    } else {
      this.wait = async (n, ms) => Number(await this.#send(['WAIT', String(n), String(ms)], ''))
    }
  }

  /** Seen ready once: not ready while open then means it is reconnecting. */
  #wasReady = false

  isReconnecting(): boolean {
    const { isOpen, isReady } = this.#client
    if (isReady !== false) {
      this.#wasReady ||= isReady === true
      return false
    }
    return this.#wasReady && isOpen
  }

  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#client.evalSha(sha, { keys: [...keys], arguments: [...args] })
  }

  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#client.eval(source, { keys: [...keys], arguments: [...args] })
  }

  async setNx(key: string, value: string, ms: number): Promise<boolean> {
    return (await this.#send(['SET', key, value, 'PX', String(ms), 'NX'], key)) === 'OK'
  }

  /** The client node-redis sends a keyed command of `slot` on: `nodeClient(getSlotMaster(slot))`. */
  async #slotMaster(client: NodeRedisClusterLike, slot: number): Promise<RedisAdapter> {
    let master: unknown
    try {
      master = client.getSlotMaster(slot)
    } catch {}
    if (!master) throw new Error(`no master known for slot ${slot} (slot map not loaded)`)
    const node = await client.nodeClient(master)
    let adapter = this.#nodeAdapters.get(node)
    if (!adapter) {
      adapter = new NodeRedisAdapter(node, false)
      this.#nodeAdapters.set(node, adapter)
    }
    return adapter
  }

  isReplyError(err: unknown): boolean {
    // node-redis's ErrorReply and its subclasses (SimpleError, BlobError).
    return isNamedReplyError(err, 'ErrorReply')
  }

  createSubscriber(): Subscriber {
    const client = this.#client
    return isCluster(client) ? clusterSubscriber(client) : nodeSubscriber(client.duplicate())
  }

  async close(): Promise<void> {
    if (this.#owned) await closeClient(this.#client)
  }
}

async function closeClient(client: NodeRedisCommon): Promise<void> {
  try {
    if (client.close) await client.close()
    else if (client.quit) await client.quit()
  } catch {
    client.destroy?.()
  }
}

/** A subscriber on a duplicate of a plain or Sentinel client (node-redis re-subscribes after reconnects). */
function nodeSubscriber(sub: NodeRedisLike | NodeRedisSentinelLike): Subscriber {
  return new SubscriberCore((events) => {
    const listener: PubSubListener = (message, channel) => events.message(channel, message)
    sub.on('error', () => {})
    sub.on('ready', events.ready)
    // A Sentinel client moves its subscriptions to a new master after a failover;
    // messages published meanwhile may be lost, so waiters re-check, as on a reconnect.
    sub.on('topology-change', (event: { type?: string }) => {
      if (event?.type === 'MASTER_CHANGE') events.maybeMissed()
    })
    const connected = sub.connect()
    // A failed first connect surfaces through subscribe(); never as an unhandled rejection.
    connected.catch(() => {})
    return {
      async subscribe(channel) {
        await connected
        await sub.subscribe(channel, listener)
      },
      async unsubscribe(channel) {
        await connected
        await sub.unsubscribe(channel)
      },
      async close() {
        await connected.catch(() => {})
        if (!sub.destroy) return closeClient(sub)
        // A Sentinel client's destroy() is async; a plain client's is not.
        const done = sub.destroy() as unknown
        if (done instanceof Promise) await done.catch(() => {})
      },
    }
  })
}

/**
 * Sharded subscriptions through the caller's cluster client: node-redis keeps one
 * pub/sub connection per master for SSUBSCRIBE (apart from its command connections),
 * re-subscribes after a reconnect and moves channels whose slot migrated.
 */
function clusterSubscriber(cluster: NodeRedisClusterLike): Subscriber {
  return new SubscriberCore((events) => {
    const listener: PubSubListener = (message, channel) => events.message(channel, message)
    // Any node connection that (re)connects may be one of the pub/sub connections, whose
    // messages sent while it was down are gone; a spurious notice only costs one retry.
    const onNodeReady = () => events.maybeMissed()
    cluster.on('node-ready', onNodeReady)
    cluster.on('sharded-channel-moved-error', onNodeReady)
    return {
      subscribe: (channel) => cluster.sSubscribe(channel, listener),
      unsubscribe: (channel) => cluster.sUnsubscribe(channel, listener),
      async close(channels) {
        cluster.off('node-ready', onNodeReady)
        cluster.off('sharded-channel-moved-error', onNodeReady)
        // The connections belong to the caller's client: only take our listener off them.
        if (!cluster.isOpen) return
        await Promise.allSettled(channels.map((c) => cluster.sUnsubscribe(c, listener)))
      },
    }
  })
}
