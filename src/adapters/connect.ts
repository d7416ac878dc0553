import { connect as connectTcp } from 'node:net'
import { BackendError } from '../errors.js'
import { sanitizeError } from '../internal/sanitize.js'

/** A client `fromUrl` created, with the way to drop it. */
export interface UrlConnection {
  readonly client: object
  /** Drops the connection at once. */
  close(): void
}

interface OwnedIoRedis {
  connect(): Promise<void>
  disconnect(): void
  on(event: string, listener: (err: Error & { code?: string }) => void): unknown
  off(event: string, listener: (err: Error & { code?: string }) => void): unknown
}

/**
 * Opens an ioredis connection to `url`, giving up after `connectTimeoutMs` instead of
 * entering ioredis's endless reconnect loop when Redis is not there at all. ioredis
 * reports why a connection failed only through `error` events (its `connect()` just
 * says "Connection is closed"), so the last one is kept and becomes the message and
 * the `cause`: ECONNREFUSED, ENOTFOUND, WRONGPASS, NOAUTH. A database the server does
 * not have (`redis://host/99` on a 16-database server) is an error too: ioredis would
 * log the failed SELECT and go on in database 0, where two services meant to be
 * apart would share keys.
 * @throws BackendError `ERR_LOCK_BACKEND` with the client's last error as `cause`.
 */
export async function connectUrl(url: string, connectTimeoutMs: number): Promise<UrlConnection> {
  const mod = (await import('ioredis')) as unknown as {
    Redis?: new (url: string, options: object) => OwnedIoRedis
    default?: new (url: string, options: object) => OwnedIoRedis
  }
  const Redis = mod.Redis ?? mod.default
  if (!Redis) throw new BackendError('connect', 'the ioredis package does not export a Redis client')
  const client = new Redis(url, { lazyConnect: true, connectTimeout: connectTimeoutMs })
  let lastError: (Error & { code?: string }) | undefined
  const remember = (err: Error & { code?: string }) => {
    lastError = err
  }
  // Errors after connecting surface through commands; without a listener ioredis logs them.
  client.on('error', () => {})
  client.on('error', remember)
  const { host, protocol } = new URL(url)
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
    // ioredis resolves connect() even when its SELECT was refused.
    if (lastError && /\bDB index\b|\bSELECT\b/i.test(lastError.message)) throw lastError
  } catch (err) {
    client.disconnect()
    // ioredis attaches the failed command (AUTH/HELLO with the password) to its error.
    const cause = sanitizeError(lastError ?? err)
    let text = cause instanceof Error ? cause.message : String(cause)
    // A server that turns connections away (maxclients) says why and hangs up before
    // it reads: ioredis only sees its own write fail. Ask the server what it says.
    const code = (cause as { code?: unknown } | undefined)?.code
    if (
      protocol === 'redis:' &&
      (code === 'EPIPE' || code === 'ECONNRESET' || /Connection is closed/.test(text))
    ) {
      const greeting = await greetingOf(url, Math.min(500, connectTimeoutMs))
      if (greeting !== undefined) text = `${greeting} (${text})`
    }
    const tls =
      protocol === 'rediss:' && !/WRONGPASS|NOAUTH|DB index/.test(text)
        ? ' (a rediss:// URL expects a TLS server; use redis:// for a plain one)'
        : ''
    throw new BackendError('connect', `cannot connect to Redis at ${host}: ${text}${tls}`, { cause })
  } finally {
    clearTimeout(timer)
    client.off('error', remember)
  }
  return { client, close: () => client.disconnect() }
}

/**
 * The error a Redis server sends the moment it accepts a connection it will not serve
 * (`-ERR max number of clients reached`), or undefined: nothing within `timeoutMs`, not
 * an error line, or no connection at all. Only for a plain-TCP URL.
 */
function greetingOf(url: string, timeoutMs: number): Promise<string | undefined> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    let got = ''
    const socket = connectTcp({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || 6379) })
    const done = (text: string | undefined) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(text)
    }
    const timer = setTimeout(() => done(undefined), timeoutMs)
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      got += chunk
      const end = got.indexOf('\r\n')
      if (end !== -1 || got.length > 512) {
        const line = end === -1 ? got : got.slice(0, end)
        done(line.startsWith('-') ? line.slice(1, 200) : undefined)
      }
    })
    socket.on('error', () => done(undefined))
    socket.on('close', () => done(undefined))
  })
}
