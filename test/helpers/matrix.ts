import { after, before, describe } from 'node:test'
import { GlideClient, Logger } from '@valkey/valkey-glide'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import { type RedisServer, startRedis } from './redis-server.js'
import { withTimeout } from './wait.js'

export type ClientKind = 'ioredis' | 'node-redis' | 'valkey-glide'
export const CLIENT_KINDS: ClientKind[] = ['ioredis', 'node-redis', 'valkey-glide']

// GLIDE's core logs every error reply (NOSCRIPT, WRONGTYPE) at WARN to stdout; tests provoke many.
Logger.init('error')

/** GLIDE's per-request timeout for test clients (its default, 250 ms, is short for a loaded CI box). */
export const GLIDE_REQUEST_TIMEOUT_MS = 2_000

// Tests call library-specific methods on the client; `unknown` would force a cast in every test.
// biome-ignore lint/suspicious/noExplicitAny: deliberately untyped handle to either client library
export type AnyClient = any

export interface ConnectedClient {
  client: unknown
  close(): Promise<void>
}

// A graceful quit waits for pending replies, which never come from a paused or blackholed
// server; after this long we fall back to a hard disconnect.
const GRACEFUL_CLOSE_MS = 500

// ioredis' disconnect() arms a ref'd timer (disconnectTimeout, 2 s by default) that is only
// cleared by the socket's next 'close'; on a client whose socket is already closed (after a
// server kill or proxy reset) it keeps the test process alive for the full 2 s. The option
// is honoured at runtime but missing from ioredis' typings; spreading it from a constant
// keeps the excess-property check from rejecting it.
export const IOREDIS_DISCONNECT_TIMEOUT = { disconnectTimeout: 100 }

// node-redis' connect() never settles while the server refuses connections (it keeps
// retrying), and a failed ioredis connect() keeps reconnecting in the background; both
// would hang the test file instead of failing the test.
const CONNECT_TIMEOUT_MS = 5_000

export interface ConnectOptions {
  /** Give up (and close the client) after this long; default 5 s. */
  connectTimeoutMs?: number | undefined
}

async function connectOrAbort(
  connect: Promise<unknown>,
  abort: () => void,
  url: string,
  timeoutMs: number,
): Promise<void> {
  try {
    await withTimeout(connect, timeoutMs, `could not connect to ${url} within ${timeoutMs} ms`)
  } catch (error) {
    try {
      abort()
    } catch {
      // Already closed.
    }
    throw error
  }
}

export async function connectClient(
  kind: ClientKind,
  url: string,
  options: ConnectOptions = {},
): Promise<ConnectedClient> {
  const timeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
  if (kind === 'valkey-glide') return connectGlide(url, timeoutMs)
  if (kind === 'ioredis') {
    const client = new Redis(url, {
      maxRetriesPerRequest: 1,
      lazyConnect: true,
      ...IOREDIS_DISCONNECT_TIMEOUT,
    })
    // Without a listener, connection errors in fault tests would crash the test process.
    client.on('error', () => {})
    await connectOrAbort(client.connect(), () => client.disconnect(), url, timeoutMs)
    return {
      client,
      async close() {
        try {
          await withTimeout(client.quit(), GRACEFUL_CLOSE_MS)
        } catch {
          // Already closed or unresponsive: disconnect() below is all that is left to do.
        }
        if (client.status !== 'end') client.disconnect()
      },
    }
  }
  const client = createClient({ url })
  client.on('error', () => {})
  await connectOrAbort(client.connect(), () => client.destroy(), url, timeoutMs)
  return {
    client,
    async close() {
      try {
        if (client.isOpen) await withTimeout(client.close(), GRACEFUL_CLOSE_MS)
      } catch {
        // Fall through to destroy().
      }
      try {
        if (client.isOpen) client.destroy()
      } catch {
        // Already closed.
      }
    },
  }
}

/**
 * A GlideClient (RESP3, the default) for `url`, e.g. a redis-server's or a fault proxy's,
 * with the URL's user, password and database.
 */
async function connectGlide(url: string, timeoutMs: number): Promise<ConnectedClient> {
  const { hostname, port, username, password, pathname } = new URL(url)
  const db = pathname.slice(1)
  const creating = GlideClient.createClient({
    addresses: [{ host: hostname, port: Number(port) }],
    requestTimeout: GLIDE_REQUEST_TIMEOUT_MS,
    ...(password && {
      credentials: {
        password: decodeURIComponent(password),
        username: decodeURIComponent(username) || 'default',
      },
    }),
    ...(db && { databaseId: Number(db) }),
  })
  let client: GlideClient
  try {
    client = await withTimeout(creating, timeoutMs, `could not connect to ${url} within ${timeoutMs} ms`)
  } catch (error) {
    // A client that connects after all must not stay open.
    creating.then((late) => late.close()).catch(() => {})
    throw error
  }
  return {
    client,
    async close() {
      client.close()
    },
  }
}

export interface MatrixContext {
  readonly kind: ClientKind
  /** The redis-server for this describe block; only available inside hooks and tests. */
  readonly server: RedisServer
  readonly url: string
  /** An ioredis client to the same server for inspecting keys, independent of `kind`. */
  readonly admin: Redis
  /** Connects a new client of this block's kind (to `url` unless overridden, e.g. to a proxy); closed in `after`. */
  client(options?: ClientOptions): Promise<AnyClient>
}

export interface ClientOptions extends ConnectOptions {
  url?: string | undefined
}

export interface DescribeMatrixOptions {
  /** Extra redis-server arguments for this block's server. */
  redisArgs?: string[] | undefined
}

class Matrix implements MatrixContext {
  readonly kind: ClientKind
  readonly #redisArgs: string[]
  #server: RedisServer | undefined
  #admin: Redis | undefined
  readonly #clients = new Set<ConnectedClient>()

  constructor(kind: ClientKind, redisArgs: string[]) {
    this.kind = kind
    this.#redisArgs = redisArgs
  }

  get server(): RedisServer {
    if (!this.#server) {
      throw new Error('MatrixContext.server is only available inside tests and hooks, not at describe time')
    }
    return this.#server
  }

  get url(): string {
    return this.server.url
  }

  get admin(): Redis {
    if (!this.#admin) {
      // A short fixed retry delay so the admin client recovers quickly after server.restart().
      this.#admin = new Redis(this.url, {
        maxRetriesPerRequest: 1,
        retryStrategy: () => 20,
        ...IOREDIS_DISCONNECT_TIMEOUT,
      })
      this.#admin.on('error', () => {})
    }
    return this.#admin
  }

  async client(options: ClientOptions = {}): Promise<AnyClient> {
    const connected = await connectClient(this.kind, options.url ?? this.url, options)
    this.#clients.add(connected)
    return connected.client
  }

  async setUp(): Promise<void> {
    this.#server = await startRedis({ args: this.#redisArgs })
  }

  async tearDown(): Promise<void> {
    const clients = [...this.#clients]
    this.#clients.clear()
    await Promise.all(clients.map((c) => c.close()))
    if (this.#admin && this.#admin.status !== 'end') this.#admin.disconnect()
    this.#admin = undefined
    await this.#server?.stop()
  }
}

/**
 * Declares `title` once per client library, each block with its own redis-server, so every
 * integration test proves the lock behaves identically on ioredis, node-redis and Valkey GLIDE.
 */
export function describeMatrix(
  title: string,
  body: (ctx: MatrixContext) => void,
  options: DescribeMatrixOptions = {},
): void {
  for (const kind of CLIENT_KINDS) {
    describe(`${title} [${kind}]`, () => {
      const matrix = new Matrix(kind, options.redisArgs ?? [])
      before(() => matrix.setUp())
      after(() => matrix.tearDown())
      body(matrix)
    })
  }
}
