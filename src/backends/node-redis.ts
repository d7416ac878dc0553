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

export class NodeRedisAdapter implements RedisAdapter {
  readonly kind = 'node-redis' as const
  readonly #client: NodeRedisLike
  readonly #owned: boolean

  constructor(client: NodeRedisLike, owned: boolean) {
    this.#client = client
    this.#owned = owned
  }

  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#client.evalSha(sha, { keys: [...keys], arguments: [...args] })
  }

  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#client.eval(source, { keys: [...keys], arguments: [...args] })
  }

  async setNx(key: string, value: string, ms: number): Promise<boolean> {
    return (await this.#client.sendCommand(['SET', key, value, 'PX', String(ms), 'NX'])) === 'OK'
  }

  async wait(numReplicas: number, timeoutMs: number): Promise<number> {
    return Number(await this.#client.sendCommand(['WAIT', String(numReplicas), String(timeoutMs)]))
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
    if (this.#sub.destroy) this.#sub.destroy()
    else await closeNodeRedis(this.#sub)
  }
}
