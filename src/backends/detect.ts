import { InvalidArgumentError } from '../errors.js'
import { describe } from '../options.js'
import type { Script } from '../scripts.js'
import type { RedisAdapter } from './adapter.js'
import { Backend } from './backend.js'
import { IoRedisAdapter, isIoRedis } from './ioredis.js'
import type { LockBackend } from './lock-backend.js'
import { isNodeRedis, NodeRedisAdapter } from './node-redis.js'

/** Replacement scripts (tests' negative controls only). */
export type ScriptOverrides = { acquire?: Script; extend?: Script; release?: Script }

/** Picks the adapter for a single-node client by its shape; anything else is a caller error. */
export function adapterFor(client: unknown, owned: boolean): RedisAdapter {
  if (isIoRedis(client)) return new IoRedisAdapter(client, owned)
  if (isNodeRedis(client)) return new NodeRedisAdapter(client, owned)
  throw new InvalidArgumentError(
    'client',
    `client must be an ioredis Redis instance or a node-redis client from createClient(); received ${describe(client)}`,
  )
}

/**
 * The backend for what the caller passed: one client of a single node (or a
 * Sentinel-managed client). Cluster clients and arrays of clients (a quorum of
 * independent nodes) get their own backends.
 */
export function backendFor(client: unknown, owned: boolean, scripts: ScriptOverrides = {}): LockBackend {
  if (typeof client === 'object' && client !== null && 'isCluster' in client && client.isCluster === true) {
    throw new InvalidArgumentError(
      'client',
      'Redis Cluster clients are not supported yet; pass a single-node client',
    )
  }
  return new Backend(adapterFor(client, owned), scripts)
}
