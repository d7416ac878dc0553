/**
 * The boundary between the lock and a Redis client library. An adapter only moves
 * script calls and pub/sub messages; retries, timeouts and reply parsing live above
 * it, once, in {@link Backend}.
 */
export interface RedisAdapter {
  /** Which client library this adapter drives. */
  readonly kind: 'ioredis' | 'node-redis'
  /** EVALSHA; rejects with the Redis error (NOSCRIPT included) as is. */
  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown>
  /**
   * `SET key value PX ms NX`: true when the key was set. The fast path of a single-key
   * acquisition without fencing; absent, the acquire script does it.
   */
  setNx?(key: string, value: string, ms: number): Promise<boolean>
  /** EVAL (which also caches the script on the server). */
  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown>
  /**
   * WAIT on the connection that ran the previous commands: resolves how many replicas
   * confirmed this connection's writes within `timeoutMs`. Absent where there is no
   * single connection to wait on (cluster clients).
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
  /** Opens a dedicated subscriber connection; the caller owns and closes it. */
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
