/**
 * The boundary between the lock and a Redis client library. An adapter only moves
 * commands, script calls and pub/sub messages; retries, timeouts and reply parsing
 * live above it, once, in the backends. This folder is the only part of the library
 * that knows a client library by name.
 *
 * @module
 */

/** The client libraries we drive. */
export type ClientLibrary = 'ioredis' | 'node-redis' | 'valkey-glide'

/**
 * What a client talks to: one node (a plain or Sentinel-managed client) or a Redis
 * Cluster (the client routes each command by its first key and follows MOVED/ASK).
 */
export type Topology = 'single' | 'cluster'

export interface RedisAdapter {
  /** Which client library this adapter drives. */
  readonly library: ClientLibrary
  /** What the client is connected to. */
  readonly topology: Topology
  /** EVALSHA; rejects with the Redis error (NOSCRIPT included) as is. */
  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown>
  /** EVAL (which also caches the script on the server). */
  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown>
  /**
   * True while the client has lost a connection it had and is getting it back: a
   * command sent now would wait in the client's offline queue, so an attempt fails at
   * once instead (and is retried by `acquire`). False before the first connection,
   * whose commands the client queues briefly, as users expect of a new client.
   */
  isReconnecting?(): boolean
  /**
   * `SET key value PX ms NX`: true when the key was set. The fast path of a single-key
   * acquisition without fencing; absent, the acquire script does it.
   */
  setNx?(key: string, value: string, ms: number): Promise<boolean>
  /**
   * WAIT on the connection that ran the previous commands: resolves how many replicas
   * confirmed this connection's writes within `timeoutMs`. Absent where there is no
   * single connection to wait on (cluster clients: see `slotMaster`; pooled clients:
   * see `pinned`).
   */
  wait?(numReplicas: number, timeoutMs: number): Promise<number>
  /**
   * `CLIENT ID` of the connection the next command goes on. Sent before an acquisition
   * and again after its WAIT: a different answer means the client reconnected in
   * between (and may have resent WAIT alone on a connection that wrote nothing, which
   * a WAIT answers at once). Optional: without it that check is skipped.
   */
  connectionId?(): Promise<unknown>
  /**
   * For clients that spread commands over a pool of connections (node-redis Sentinel),
   * where `wait` could land on another connection than the write: runs `fn` with an
   * adapter (with `wait`) on one connection of the master, held exclusively until `fn`
   * settles.
   */
  pinned?<T>(fn: (adapter: RedisAdapter) => Promise<T>): Promise<T>
  /**
   * Cluster clients: an adapter (with `wait`) on the very connection the client routes
   * `slot`'s commands to. Commands sent on it are not redirected: a MOVED or ASK comes
   * back as an error. The same connection gives the same adapter; rejects when the
   * client knows no master for the slot.
   */
  slotMaster?(slot: number): Promise<RedisAdapter>
  /**
   * Opens a subscriber for release announcements: plain SUBSCRIBE on a single node,
   * sharded SSUBSCRIBE on a cluster. The caller owns and closes it.
   */
  createSubscriber(): Subscriber
  /** True when `err` is an error reply from Redis (the command ran, or was refused, server-side). */
  isReplyError(err: unknown): boolean
  /** Closes the client if this adapter owns it; a borrowed client is left alone. */
  close(): Promise<void>
}

/** A pub/sub connection that survives reconnects by re-subscribing. */
export interface Subscriber {
  subscribe(channel: string): Promise<void>
  unsubscribe(channel: string): Promise<void>
  /** Messages of every subscribed channel. */
  onMessage(handler: (channel: string, message: string) => void): void
  /** Called after the connection came back, when messages may have been missed. */
  onReconnect(handler: () => void): void
  close(): Promise<void>
}

/** True for an error reply of a library whose reply errors are named `ReplyError` (ioredis). */
export function isNamedReplyError(err: unknown, ...names: string[]): boolean {
  let proto = err instanceof Error ? Object.getPrototypeOf(err) : null
  while (proto && proto !== Error.prototype) {
    if (names.includes(proto.constructor?.name)) return true
    proto = Object.getPrototypeOf(proto)
  }
  return false
}
