import { GlideClusterClient } from '@valkey/valkey-glide'
import { Cluster } from 'ioredis'
import { createCluster } from 'redis'
import { Locker, type RedisClient } from '../../src/index.js'
import type { LocalCluster } from './cluster.js'
import { type ClientKind, GLIDE_REQUEST_TIMEOUT_MS } from './matrix.js'

/**
 * Cluster clients of one library and Lockers over them for a block of tests; `close()`
 * (in `after`) closes the Lockers, then the clients. `cluster` is read at connect time,
 * since the cluster is started in a `before` hook.
 */
export class ClusterLockers {
  readonly #kind: ClientKind
  readonly #cluster: () => LocalCluster
  readonly #closers: (() => Promise<unknown>)[] = []

  constructor(kind: ClientKind, cluster: () => LocalCluster) {
    this.#kind = kind
    this.#cluster = cluster
  }

  /** A new connected cluster client of this library. */
  async connect(): Promise<RedisClient> {
    const { startupNodes } = this.#cluster()
    if (this.#kind === 'valkey-glide') {
      const client = await GlideClusterClient.createClient({
        addresses: startupNodes.map((n) => ({ host: n.host, port: n.port })),
        requestTimeout: GLIDE_REQUEST_TIMEOUT_MS,
      })
      this.#closers.push(async () => client.close())
      return client
    }
    if (this.#kind === 'ioredis') {
      const client = new Cluster([...startupNodes])
      client.on('error', () => {})
      this.#closers.push(() => client.quit().catch(() => client.disconnect()))
      await new Promise<void>((resolve) => client.once('ready', resolve))
      return client
    }
    const client = createCluster({
      rootNodes: startupNodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })),
    })
    client.on('error', () => {})
    await client.connect()
    this.#closers.push(() => client.close().catch(() => client.destroy()))
    return client
  }

  /** A Locker over a new client; closed before every client. */
  async locker(options?: ConstructorParameters<typeof Locker>[1]): Promise<Locker> {
    const l = new Locker(await this.connect(), options)
    this.#closers.unshift(() => l.close())
    return l
  }

  async close(): Promise<void> {
    for (const close of this.#closers.splice(0)) await close()
  }
}
