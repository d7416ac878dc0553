import { InvalidArgumentError } from '../errors.js'
import { describe } from '../options.js'
import type { RedisAdapter } from './adapter.js'
import { IoRedisAdapter, isIoRedis } from './ioredis.js'
import { isNodeRedis, NodeRedisAdapter } from './node-redis.js'

/** Picks the adapter for a client by its shape; anything else is a caller error. */
export function adapterFor(client: unknown, owned: boolean): RedisAdapter {
  if (typeof client === 'object' && client !== null && 'isCluster' in client && client.isCluster === true) {
    throw new InvalidArgumentError(
      'client',
      'Redis Cluster clients are not supported yet; pass a single-node client',
    )
  }
  if (isIoRedis(client)) return new IoRedisAdapter(client, owned)
  if (isNodeRedis(client)) return new NodeRedisAdapter(client, owned)
  throw new InvalidArgumentError(
    'client',
    `client must be an ioredis Redis instance or a node-redis client from createClient(); received ${describe(client)}`,
  )
}
