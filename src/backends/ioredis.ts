import type { RedisAdapter, Subscriber } from './adapter.js'

/** The part of an ioredis `Redis` client we use, by shape, so ioredis stays optional. */
export interface IoRedisLike {
  status: string
  evalsha(sha: string, numKeys: number, ...args: string[]): Promise<unknown>
  eval(script: string, numKeys: number, ...args: string[]): Promise<unknown>
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<unknown>
  call(command: string, ...args: string[]): Promise<unknown>
  duplicate(override?: Record<string, unknown>): IoRedisLike
  subscribe(...channels: string[]): Promise<unknown>
  unsubscribe(...channels: string[]): Promise<unknown>
  on(event: string, listener: (...args: never[]) => void): unknown
  quit(): Promise<unknown>
  disconnect(): void
}

export function isIoRedis(client: unknown): client is IoRedisLike {
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

export class IoRedisAdapter implements RedisAdapter {
  readonly kind = 'ioredis' as const
  readonly #client: IoRedisLike
  readonly #owned: boolean

  constructor(client: IoRedisLike, owned: boolean) {
    this.#client = client
    this.#owned = owned
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

  connectionId(): Promise<unknown> {
    return this.#client.call('CLIENT', 'ID')
  }

  async wait(numReplicas: number, timeoutMs: number): Promise<number> {
    return Number(await this.#client.call('WAIT', String(numReplicas), String(timeoutMs)))
  }

  isReplyError(err: unknown): boolean {
    return err instanceof Error && err.name === 'ReplyError'
  }

  createSubscriber(): Subscriber {
    // Our own connection: it must not queue commands forever while Redis is away,
    // and must not outlive the Locker because of a pending reconnect.
    const sub = this.#client.duplicate({ lazyConnect: false, enableReadyCheck: true, autoResubscribe: true })
    return new IoRedisSubscriber(sub)
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

class IoRedisSubscriber implements Subscriber {
  readonly #sub: IoRedisLike
  #everReady = false
  #reconnectHandlers: (() => void)[] = []

  constructor(sub: IoRedisLike) {
    this.#sub = sub
    // An error on this connection is handled by reconnecting; without a listener
    // ioredis would print it as unhandled.
    sub.on('error', () => {})
    sub.on('ready', () => {
      if (this.#everReady) for (const h of this.#reconnectHandlers) h()
      this.#everReady = true
    })
  }

  async subscribe(channel: string): Promise<void> {
    await this.#sub.subscribe(channel)
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.#sub.unsubscribe(channel)
  }

  onMessage(handler: (channel: string, message: string) => void): void {
    this.#sub.on('message', handler as (...args: never[]) => void)
  }

  onReconnect(handler: () => void): void {
    this.#reconnectHandlers.push(handler)
  }

  async close(): Promise<void> {
    this.#sub.disconnect()
  }
}
