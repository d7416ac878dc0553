import type { RedisAdapter, Subscriber } from './adapter.js'
import { NodeRedisAdapter, type NodeRedisLike } from './node-redis.js'

/** The part of a node-redis cluster client (`createCluster()`) we use, by shape. */
export interface NodeRedisClusterLike {
  isOpen: boolean
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  sendCommand(firstKey: string, isReadonly: boolean, args: string[]): Promise<unknown>
  sSubscribe(channel: string, listener: (message: string, channel: string) => void): Promise<void>
  sUnsubscribe(channel: string, listener?: (message: string, channel: string) => void): Promise<void>
  getMasters(): unknown[]
  getSlotMaster(slot: number): unknown
  /** The client (one connection) of a node, connecting it first if needed. */
  nodeClient(node: unknown): NodeRedisLike | Promise<NodeRedisLike>
  on(event: string, listener: (...args: never[]) => void): unknown
  off(event: string, listener: (...args: never[]) => void): unknown
  close?(): Promise<void>
  quit?(): Promise<unknown>
  destroy?(): void
}

/**
 * True for a node-redis cluster client. Checked before the single-node shape, which a
 * cluster client also has (`evalSha`, `duplicate`, `isOpen`).
 */
export function isNodeRedisCluster(client: unknown): client is NodeRedisClusterLike {
  const c = client as Partial<NodeRedisClusterLike> | null
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.evalSha === 'function' &&
    typeof c.sSubscribe === 'function' &&
    typeof c.getMasters === 'function' &&
    typeof c.getSlotMaster === 'function' &&
    'isOpen' in c
  )
}

/**
 * Script calls through a node-redis cluster client, which routes EVAL/EVALSHA by their
 * first key and follows MOVED/ASK itself.
 */
export class NodeRedisClusterAdapter implements RedisAdapter {
  readonly kind = 'node-redis' as const
  readonly #client: NodeRedisClusterLike
  readonly #owned: boolean
  /** One adapter per node client, so the caller can cache what it builds on it. */
  readonly #nodeAdapters = new WeakMap<NodeRedisLike, RedisAdapter>()

  constructor(client: NodeRedisClusterLike, owned: boolean) {
    this.#client = client
    this.#owned = owned
  }

  /**
   * The client the cluster routes `slot`'s commands to: node-redis sends a keyed
   * command on `nodeClient(slots[slot].master)`, the same client `getSlotMaster` and
   * `nodeClient` give here. Commands sent on it are not redirected: a MOVED or ASK
   * comes back as an error.
   */
  async slotMaster(slot: number): Promise<RedisAdapter> {
    let master: unknown
    try {
      master = this.#client.getSlotMaster(slot)
    } catch {}
    if (!master) throw new Error(`no master known for slot ${slot} (slot map not loaded)`)
    const node = await this.#client.nodeClient(master)
    let adapter = this.#nodeAdapters.get(node)
    if (!adapter) {
      adapter = new NodeRedisAdapter(node, false)
      this.#nodeAdapters.set(node, adapter)
    }
    return adapter
  }

  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#client.evalSha(sha, { keys: [...keys], arguments: [...args] })
  }

  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#client.eval(source, { keys: [...keys], arguments: [...args] })
  }

  async setNx(key: string, value: string, ms: number): Promise<boolean> {
    return (await this.#client.sendCommand(key, false, ['SET', key, value, 'PX', String(ms), 'NX'])) === 'OK'
  }

  isReplyError(err: unknown): boolean {
    let proto = err instanceof Error ? Object.getPrototypeOf(err) : null
    while (proto && proto !== Error.prototype) {
      if (proto.constructor?.name === 'ErrorReply') return true
      proto = Object.getPrototypeOf(proto)
    }
    return false
  }

  createSubscriber(): Subscriber {
    return new NodeRedisClusterSubscriber(this.#client)
  }

  async close(): Promise<void> {
    if (!this.#owned) return
    try {
      if (this.#client.close) await this.#client.close()
      else if (this.#client.quit) await this.#client.quit()
    } catch {
      this.#client.destroy?.()
    }
  }
}

/**
 * Sharded subscriptions through the caller's cluster client: node-redis keeps one
 * pub/sub connection per master for SSUBSCRIBE (apart from its command connections),
 * re-subscribes after a reconnect and moves channels whose slot migrated.
 */
class NodeRedisClusterSubscriber implements Subscriber {
  readonly #cluster: NodeRedisClusterLike
  readonly #channels = new Set<string>()
  #messageHandlers: ((channel: string, message: string) => void)[] = []
  #reconnectHandlers: (() => void)[] = []
  #closed = false
  readonly #listener = (message: string, channel: string) => {
    for (const h of this.#messageHandlers) h(channel, message)
  }
  // Any node connection that (re)connects may be one of the pub/sub connections, whose
  // messages sent while it was down are gone; a spurious notice only costs one retry.
  readonly #onNodeReady = () => {
    if (this.#closed || this.#channels.size === 0) return
    for (const h of this.#reconnectHandlers) h()
  }

  constructor(cluster: NodeRedisClusterLike) {
    this.#cluster = cluster
    cluster.on('node-ready', this.#onNodeReady)
    cluster.on('sharded-channel-moved-error', this.#onNodeReady)
  }

  async subscribe(channel: string): Promise<void> {
    await this.#cluster.sSubscribe(channel, this.#listener)
    // Counted only once active: the first connect of a shard's pub/sub connection is
    // part of subscribing, not a reconnect.
    if (!this.#closed) this.#channels.add(channel)
  }

  async unsubscribe(channel: string): Promise<void> {
    this.#channels.delete(channel)
    await this.#cluster.sUnsubscribe(channel, this.#listener)
  }

  onMessage(handler: (channel: string, message: string) => void): void {
    this.#messageHandlers.push(handler)
  }

  onReconnect(handler: () => void): void {
    this.#reconnectHandlers.push(handler)
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#cluster.off('node-ready', this.#onNodeReady)
    this.#cluster.off('sharded-channel-moved-error', this.#onNodeReady)
    // The connections belong to the caller's client: only take our listener off them.
    const channels = [...this.#channels]
    this.#channels.clear()
    if (!this.#cluster.isOpen) return
    await Promise.allSettled(channels.map((c) => this.#cluster.sUnsubscribe(c, this.#listener)))
  }
}
