/**
 * The client shapes a Locker accepts, by the members that tell each library's clients
 * apart. The client libraries stay optional: nothing here imports them.
 *
 * @module
 */

/** Any function: only its presence is checked (each library has its own signatures). */
// biome-ignore lint/suspicious/noExplicitAny: a member of any signature
export type ClientMethod = (...args: any[]) => unknown

/** An ioredis `Redis` client, also one managed by Sentinel (`new Redis({ sentinels, name })`). */
export interface IoRedisClient {
  /** The connection state (`ready`, `reconnecting`, …). */
  readonly status: string
  /** Runs a cached script. */
  evalsha: ClientMethod
  /** A new client with the same options (for the Locker's subscriber). */
  duplicate: ClientMethod
  /** Sends any command. */
  call: ClientMethod
}

/** An ioredis `Cluster`. */
export interface IoRedisClusterClient {
  /** ioredis' marker of a cluster client. */
  readonly isCluster: true
  /** The connection state. */
  readonly status: string
  /** Runs a cached script, routed by its first key. */
  evalsha: ClientMethod
  /** A new cluster client (for the Locker's sharded subscriber). */
  duplicate: ClientMethod
  /** The connections to the nodes. */
  nodes: ClientMethod
}

/** A node-redis client from `createClient()` or `createSentinel()`. */
export interface NodeRedisClient {
  /** Whether the client is connected or connecting. */
  readonly isOpen: boolean
  /** Runs a cached script. */
  evalSha: ClientMethod
  /** Sends any command. */
  sendCommand: ClientMethod
  /** A new client with the same options (for the Locker's subscriber). */
  duplicate: ClientMethod
}

/** A node-redis cluster client from `createCluster()`. */
export interface NodeRedisClusterClient {
  /** Whether the client is connected or connecting. */
  readonly isOpen: boolean
  /** Runs a cached script, routed by its first key. */
  evalSha: ClientMethod
  /** Sharded SUBSCRIBE (the Locker's wake-ups). */
  sSubscribe: ClientMethod
  /** The master of a hash slot. */
  getSlotMaster: ClientMethod
}

/** A `GlideClient` or `GlideClusterClient` from `@valkey/valkey-glide` (2.3 or later, RESP3). */
export interface GlideClientLike {
  /** Runs a GLIDE `Script`. */
  invokeScript: ClientMethod
  /** Sends any command. */
  customCommand: ClientMethod
  /** Closes the client. */
  close: ClientMethod
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
