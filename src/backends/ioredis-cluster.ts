import type { RedisAdapter, Subscriber } from './adapter.js'
import { IoRedisAdapter, type IoRedisLike } from './ioredis.js'

/** A connection of an ioredis `Cluster` to one node (a plain ioredis `Redis`). */
interface IoRedisNodeLike extends IoRedisLike {
  readonly options: { readonly host?: string; readonly port?: number }
}

/** The part of an ioredis `Cluster` we use, by shape, so ioredis stays optional. */
export interface IoRedisClusterLike {
  readonly isCluster: true
  status: string
  evalsha(sha: string, numKeys: number, ...args: string[]): Promise<unknown>
  eval(script: string, numKeys: number, ...args: string[]): Promise<unknown>
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<unknown>
  /** Per slot, the `host:port` of its nodes, master first (empty until the slot map is loaded). */
  readonly slots: readonly (readonly string[] | undefined)[]
  /** The connections to the nodes, one per node. */
  nodes(role?: 'all' | 'master' | 'slave'): IoRedisNodeLike[]
  duplicate(startupNodes?: unknown[], options?: Record<string, unknown>): IoRedisClusterLike
  ssubscribe(...channels: string[]): Promise<unknown>
  sunsubscribe(...channels: string[]): Promise<unknown>
  on(event: string, listener: (...args: never[]) => void): unknown
  quit(): Promise<unknown>
  disconnect(): void
}

/** True for an ioredis `Cluster` (ioredis marks it with `isCluster`). */
export function isIoRedisCluster(client: unknown): client is IoRedisClusterLike {
  const c = client as Partial<IoRedisClusterLike> | null
  return (
    typeof c === 'object' &&
    c !== null &&
    c.isCluster === true &&
    typeof c.evalsha === 'function' &&
    typeof c.duplicate === 'function' &&
    typeof c.status === 'string'
  )
}

/**
 * Script calls through an ioredis `Cluster`, which routes EVAL/EVALSHA by their first
 * key and follows MOVED/ASK itself.
 */
export class IoRedisClusterAdapter implements RedisAdapter {
  readonly kind = 'ioredis' as const
  readonly #client: IoRedisClusterLike
  readonly #owned: boolean
  /** One adapter per node connection, so the caller can cache what it builds on it. */
  readonly #nodeAdapters = new WeakMap<IoRedisNodeLike, RedisAdapter>()

  constructor(client: IoRedisClusterLike, owned: boolean) {
    this.#client = client
    this.#owned = owned
  }

  /**
   * The connection the Cluster routes `slot`'s commands to: the node instance of its
   * slot map's master (ioredis sends a keyed command to the connection pool's instance
   * of `slots[slot][0]`, one connection per node). Commands sent on it are not
   * redirected: a MOVED or ASK comes back as an error.
   */
  async slotMaster(slot: number): Promise<RedisAdapter> {
    const address = this.#client.slots[slot]?.[0]
    const node =
      address === undefined
        ? undefined
        : this.#client.nodes('all').find((n) => `${n.options.host}:${n.options.port}` === address)
    if (!node) throw new Error(`no connection to the master of slot ${slot} (slot map not loaded)`)
    let adapter = this.#nodeAdapters.get(node)
    if (!adapter) {
      adapter = new IoRedisAdapter(node, false)
      this.#nodeAdapters.set(node, adapter)
    }
    return adapter
  }

  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#client.evalsha(sha, keys.length, ...keys, ...args)
  }

  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#client.eval(source, keys.length, ...keys, ...args)
  }

  async setNx(key: string, value: string, ms: number): Promise<boolean> {
    return (await this.#client.set(key, value, 'PX', ms, 'NX')) === 'OK'
  }

  isReplyError(err: unknown): boolean {
    return err instanceof Error && err.name === 'ReplyError'
  }

  createSubscriber(): Subscriber {
    // A Cluster of our own with ioredis' sharded subscriber group: one SSUBSCRIBE
    // connection per master, re-created and re-subscribed when a connection ends or
    // the slot map changes. The caller's client stays free of subscriber mode.
    const sub = this.#client.duplicate([], { shardedSubscribers: true, lazyConnect: false })
    return new IoRedisClusterSubscriber(sub)
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

class IoRedisClusterSubscriber implements Subscriber {
  readonly #sub: IoRedisClusterLike
  #everReady = false
  #reconnectHandlers: (() => void)[] = []

  constructor(sub: IoRedisClusterLike) {
    this.#sub = sub
    // Errors are handled by ioredis reconnecting; without a listener it would print them.
    sub.on('error', () => {})
    sub.on('node error', () => {})
    sub.on('nodeError', () => {})
    // Emitted whenever the subscriber group was rebuilt (a subscriber connection ended,
    // the slot map changed) and has re-sent its SSUBSCRIBEs: messages may have been missed.
    sub.on('subscribersReady', () => {
      if (this.#everReady) for (const h of this.#reconnectHandlers) h()
      this.#everReady = true
    })
  }

  async subscribe(channel: string): Promise<void> {
    await this.#sub.ssubscribe(channel)
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.#sub.sunsubscribe(channel)
  }

  onMessage(handler: (channel: string, message: string) => void): void {
    this.#sub.on('smessage', handler as (...args: never[]) => void)
  }

  onReconnect(handler: () => void): void {
    this.#reconnectHandlers.push(handler)
  }

  async close(): Promise<void> {
    this.#sub.disconnect()
  }
}
