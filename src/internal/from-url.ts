import { BackendError, InvalidArgumentError } from '../errors.js'
import {
  checkDuration,
  checkOptionNames,
  describe,
  FROM_URL_OPTION_NAMES,
  type FromUrlOptions,
  type LockerOptions,
} from '../options.js'

/** Validates `fromUrl`'s arguments before anything connects. */
export function checkFromUrl(
  url: unknown,
  options: FromUrlOptions | undefined,
): { connectTimeoutMs: number; lockerOptions: LockerOptions } {
  checkOptionNames(options, FROM_URL_OPTION_NAMES, 'fromUrl')
  let parsed: URL | undefined
  try {
    if (typeof url === 'string') parsed = new URL(url)
  } catch {
    parsed = undefined
  }
  if (!parsed || (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')) {
    throw new InvalidArgumentError(
      'url',
      `url must be a redis:// or rediss:// URL such as redis://127.0.0.1:6379/0; received ${describe(url)}`,
    )
  }
  const { connectTimeoutMs = 5000, ...lockerOptions } = options ?? {}
  return { connectTimeoutMs: checkDuration('connectTimeoutMs', connectTimeoutMs), lockerOptions }
}

/** The ioredis client we create: only what fromUrl needs. */
export interface OwnedIoRedis {
  connect(): Promise<void>
  disconnect(): void
  on(event: string, listener: (...args: unknown[]) => void): unknown
}

/**
 * Opens an ioredis connection, giving up after `connectTimeoutMs` instead of
 * entering ioredis's endless reconnect loop when Redis is not there at all.
 */
export async function connectIoRedis(url: string, connectTimeoutMs: number): Promise<OwnedIoRedis> {
  const mod = (await import('ioredis')) as unknown as {
    Redis?: new (url: string, options: object) => OwnedIoRedis
    default?: new (url: string, options: object) => OwnedIoRedis
  }
  const Redis = mod.Redis ?? mod.default
  if (!Redis) throw new BackendError('connect', 'the ioredis package does not export a Redis client')
  const client = new Redis(url, { lazyConnect: true, connectTimeout: connectTimeoutMs })
  // Errors after connecting surface through commands; without a listener ioredis logs them.
  client.on('error', () => {})
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      client.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no connection within connectTimeoutMs (${connectTimeoutMs} ms)`)),
          connectTimeoutMs,
        )
      }),
    ])
  } catch (err) {
    client.disconnect()
    const host = new URL(url).host
    throw new BackendError('connect', `cannot connect to Redis at ${host}: ${(err as Error).message}`, {
      cause: err,
    })
  } finally {
    clearTimeout(timer)
  }
  return client
}
