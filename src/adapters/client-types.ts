/**
 * The client shapes a Locker accepts, by the members that tell each library's clients
 * apart. The client libraries stay optional: nothing here imports them.
 *
 * @module
 */

/** Any function: only its presence is checked here. */
// biome-ignore lint/suspicious/noExplicitAny: a member of any signature
type Method = (...args: any[]) => unknown

/** An ioredis `Redis` client, also one managed by Sentinel (`new Redis({ sentinels, name })`). */
export interface IoRedisClient {
  readonly status: string
  evalsha: Method
  duplicate: Method
  call: Method
}

/** An ioredis `Cluster`. */
export interface IoRedisClusterClient {
  readonly isCluster: true
  readonly status: string
  evalsha: Method
  duplicate: Method
  nodes: Method
}

/** A node-redis client from `createClient()` or `createSentinel()`. */
export interface NodeRedisClient {
  readonly isOpen: boolean
  evalSha: Method
  sendCommand: Method
  duplicate: Method
}

/** A node-redis cluster client from `createCluster()`. */
export interface NodeRedisClusterClient {
  readonly isOpen: boolean
  evalSha: Method
  sSubscribe: Method
  getSlotMaster: Method
}

/** A `GlideClient` or `GlideClusterClient` from `@valkey/valkey-glide` (2.3 or later, RESP3). */
export interface GlideClientLike {
  invokeScript: Method
  customCommand: Method
  close: Method
}

/** A client of one Redis master (plain or Sentinel-managed): what a quorum is made of. */
export type SingleNodeClient = IoRedisClient | NodeRedisClient | GlideClientLike

/**
 * A connected Redis client: an ioredis `Redis` instance (also Sentinel-managed), a
 * node-redis client from `createClient()` or `createSentinel()`, a Valkey GLIDE
 * `GlideClient`; a Redis Cluster client (ioredis `Cluster`, node-redis
 * `createCluster()`, GLIDE `GlideClusterClient`); or an array of single-node clients,
 * one per independent master, for a Redlock quorum (a lock then needs a majority of
 * them). A Locker never closes a client it was given.
 */
export type RedisClient =
  | SingleNodeClient
  | IoRedisClusterClient
  | NodeRedisClusterClient
  | readonly SingleNodeClient[]
