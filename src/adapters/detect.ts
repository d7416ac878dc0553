import { InvalidArgumentError } from '../errors.js'
import { describe } from '../options.js'
import type { RedisAdapter } from './adapter.js'
import { GlideAdapter, isGlide } from './glide.js'
import { IoRedisAdapter, isIoRedis } from './ioredis.js'
import { isNodeRedis, NodeRedisAdapter } from './node-redis.js'

/**
 * Picks the adapter for a client by its shape: ioredis, node-redis or Valkey GLIDE,
 * each for one node, Sentinel or a cluster. Anything else is a caller error.
 * @param owned true when the Locker created the client (and so closes it).
 * @throws InvalidArgumentError for anything that is not a client we drive.
 */
export function adapterFor(client: unknown, owned: boolean): RedisAdapter {
  if (isGlide(client)) return new GlideAdapter(client, owned)
  if (isIoRedis(client)) return new IoRedisAdapter(client, owned)
  if (isNodeRedis(client)) return new NodeRedisAdapter(client, owned)
  throw new InvalidArgumentError(
    'client',
    'client must be an ioredis Redis or Cluster, a node-redis client from createClient(), createSentinel() or ' +
      `createCluster(), a Valkey GLIDE GlideClient or GlideClusterClient, or an array of single-node clients; received ${describe(client)}`,
  )
}
