import { InvalidArgumentError } from '../errors.js'
import { describe } from '../options.js'
import type { Script } from '../scripts.js'
import type { RedisAdapter } from './adapter.js'
import { Backend } from './backend.js'
import { clusterBackendFor } from './cluster.js'
import { IoRedisAdapter, isIoRedis } from './ioredis.js'
import type { LockBackend } from './lock-backend.js'
import { isNodeRedis, NodeRedisAdapter } from './node-redis.js'
import { quorumBackendFor } from './quorum.js'

/** Replacement scripts (tests' negative controls only). */
export type ScriptOverrides = { acquire?: Script; extend?: Script; release?: Script }

/** Picks the adapter for a single-node client by its shape; anything else is a caller error. */
export function adapterFor(client: unknown, owned: boolean): RedisAdapter {
  if (isIoRedis(client)) return new IoRedisAdapter(client, owned)
  if (isNodeRedis(client)) return new NodeRedisAdapter(client, owned)
  throw new InvalidArgumentError(
    'client',
    `client must be an ioredis Redis instance or a node-redis client from createClient() or createSentinel(); received ${describe(client)}`,
  )
}

/**
 * The backend for what the caller passed: one client of a single node (or a
 * Sentinel-managed client), or a Redis Cluster client (ioredis `Cluster`, node-redis
 * `createCluster()`). Arrays of clients (a quorum of independent nodes) get their own
 * backend.
 */
export function backendFor(client: unknown, owned: boolean, scripts: ScriptOverrides = {}): LockBackend {
  if (Array.isArray(client))
    return quorumBackendFor(client, (c) => new Backend(adapterFor(c, false), scripts))
  const cluster = clusterBackendFor(client, owned, scripts)
  if (cluster) return cluster
  return new Backend(adapterFor(client, owned), scripts)
}
