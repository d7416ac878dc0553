import type { RedisAdapter, Subscriber } from './adapter.js'

/** The part of a node-redis client (`createClient()`) we use, by shape. */
export interface NodeRedisLike {
  isOpen: boolean
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  sendCommand(args: string[]): Promise<unknown>
  duplicate(): NodeRedisLike
  connect(): Promise<unknown>
  subscribe(channel: string, listener: (message: string, channel: string) => void): Promise<void>
  unsubscribe(channel: string): Promise<void>
  on(event: string, listener: (...args: never[]) => void): unknown
  close?(): Promise<void>
  quit?(): Promise<unknown>
  destroy?(): void
  disconnect?(): Promise<void>
}

export function isNodeRedis(client: unknown): client is NodeRedisLike {
  const c = client as Partial<NodeRedisLike> | null
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.evalSha === 'function' &&
    typeof c.duplicate === 'function' &&
    'isOpen' in c
  )
}

/**
 * The part of a node-redis Sentinel client (`createSentinel()`) that differs: commands
 * are spread over a pool of master connections, `sendCommand` takes a read-only flag
 * first, and `use()` lends one connection exclusively.
 */
export interface NodeRedisSentinelLike extends Omit<NodeRedisLike, 'sendCommand'> {
  sendCommand(isReadonly: boolean | undefined, args: string[]): Promise<unknown>
  getMasterNode(): unknown
  use<T>(fn: (client: NodeRedisSentinelLike) => Promise<T>): Promise<T>
}

export function isNodeRedisSentinel(client: unknown): client is NodeRedisSentinelLike {
  const c = client as Partial<NodeRedisSentinelLike> | null
  return isNodeRedis(client) && typeof c?.getMasterNode === 'function' && typeof c?.use === 'function'
}

export class NodeRedisAdapter implements RedisAdapter {
  readonly kind = 'node-redis' as const
  readonly #client: NodeRedisLike
  readonly #owned: boolean
  readonly #send: (args: string[]) => Promise<unknown>
  /** Absent on a Sentinel client, whose pool could send WAIT on another connection than the write: see `pinned`. */
  readonly wait?: (numReplicas: number, timeoutMs: number) => Promise<number>
  readonly pinned?: <T>(fn: (adapter: RedisAdapter) => Promise<T>) => Promise<T>

  /**
   * @param lent a connection lent by a Sentinel client's `use()`: its `sendCommand`
   * takes the read-only flag, and WAIT on it counts its own writes.
   */
  constructor(client: NodeRedisLike | NodeRedisSentinelLike, owned: boolean, lent = false) {
    this.#client = client as NodeRedisLike
    this.#owned = owned
    const sentinel = isNodeRedisSentinel(client)
    if (sentinel || lent) {
      const flagged = client as NodeRedisSentinelLike
      this.#send = (args) => flagged.sendCommand(false, args)
    } else {
      const plain = client as NodeRedisLike
      this.#send = (args) => plain.sendCommand(args)
    }
    if (sentinel) {
      // The pool may put a WAIT on another connection than the write it should count:
      // the acquisition and its WAIT go, in order, on one lent connection.
      this.pinned = (fn) => client.use((conn) => fn(new NodeRedisAdapter(conn, false, true)))
    } else this.wait = (n, ms) => this.#waitCommand(n, ms)
  }

  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#client.evalSha(sha, { keys: [...keys], arguments: [...args] })
  }

  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#client.eval(source, { keys: [...keys], arguments: [...args] })
  }

  async setNx(key: string, value: string, ms: number): Promise<boolean> {
    return (await this.#send(['SET', key, value, 'PX', String(ms), 'NX'])) === 'OK'
  }

  connectionId(): Promise<unknown> {
    return this.#send(['CLIENT', 'ID'])
  }

  async #waitCommand(numReplicas: number, timeoutMs: number): Promise<number> {
    return Number(await this.#send(['WAIT', String(numReplicas), String(timeoutMs)]))
  }

  isReplyError(err: unknown): boolean {
    // node-redis's ErrorReply and its subclasses (SimpleError, BlobError).
    let proto = err instanceof Error ? Object.getPrototypeOf(err) : null
    while (proto && proto !== Error.prototype) {
      if (proto.constructor?.name === 'ErrorReply') return true
      proto = Object.getPrototypeOf(proto)
    }
    return false
  }

  createSubscriber(): Subscriber {
    return new NodeRedisSubscriber(this.#client.duplicate())
  }

  async close(): Promise<void> {
    if (!this.#owned) return
    await closeNodeRedis(this.#client)
  }
}

async function closeNodeRedis(client: NodeRedisLike): Promise<void> {
  try {
    if (client.close) await client.close()
    else if (client.quit) await client.quit()
  } catch {
    client.destroy?.()
  }
}

class NodeRedisSubscriber implements Subscriber {
  readonly #sub: NodeRedisLike
  readonly #connected: Promise<unknown>
  #everReady = false
  #messageHandlers: ((channel: string, message: string) => void)[] = []
  #reconnectHandlers: (() => void)[] = []
  readonly #listener = (message: string, channel: string) => {
    for (const h of this.#messageHandlers) h(channel, message)
  }

  constructor(sub: NodeRedisLike) {
    this.#sub = sub
    sub.on('error', () => {})
    sub.on('ready', () => {
      if (this.#everReady) for (const h of this.#reconnectHandlers) h()
      this.#everReady = true
    })
    // A Sentinel client moves its subscriptions to a new master after a failover;
    // messages published meanwhile may be lost, so waiters re-check, as on a reconnect.
    sub.on('topology-change', (event: { type?: string }) => {
      if (event?.type === 'MASTER_CHANGE') for (const h of this.#reconnectHandlers) h()
    })
    this.#connected = sub.connect()
    // A failed first connect surfaces through subscribe(); never as an unhandled rejection.
    this.#connected.catch(() => {})
  }

  async subscribe(channel: string): Promise<void> {
    await this.#connected
    await this.#sub.subscribe(channel, this.#listener)
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.#connected
    await this.#sub.unsubscribe(channel)
  }

  onMessage(handler: (channel: string, message: string) => void): void {
    this.#messageHandlers.push(handler)
  }

  onReconnect(handler: () => void): void {
    this.#reconnectHandlers.push(handler)
  }

  async close(): Promise<void> {
    await this.#connected.catch(() => {})
    if (this.#sub.destroy) {
      // A Sentinel client's destroy() is async; a plain client's is not.
      const done = this.#sub.destroy() as unknown
      if (done instanceof Promise) await done.catch(() => {})
    } else await closeNodeRedis(this.#sub)
  }
}
