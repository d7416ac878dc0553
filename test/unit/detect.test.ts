import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { InvalidArgumentError, Locker, type RedisClient } from '../../src/index.js'

const fn = () => undefined
/** Shapes only: the Locker looks at a client's shape before it sends anything. */
const ioredisNode = () => ({
  status: 'ready',
  evalsha: fn,
  eval: fn,
  duplicate: fn,
  call: fn,
  set: fn,
  on: fn,
})
const ioredisCluster = () => ({ ...ioredisNode(), isCluster: true as const, nodes: () => [], slots: [] })
const nodeRedisCluster = () => ({
  isOpen: true,
  evalSha: fn,
  eval: fn,
  sendCommand: fn,
  sSubscribe: fn,
  sUnsubscribe: fn,
  getMasters: fn,
  getSlotMaster: fn,
  nodeClient: fn,
  on: fn,
  off: fn,
})

describe('quorum members must be independent masters', () => {
  test('a Redis Cluster client in the array is rejected with ERR_LOCK_INVALID_ARGUMENT naming it', () => {
    for (const cluster of [ioredisCluster(), nodeRedisCluster()]) {
      assert.throws(
        () => new Locker([ioredisNode(), cluster, ioredisNode()] as unknown as RedisClient),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.argument === 'client' &&
          /client 1 of the quorum is a Redis Cluster client/.test(err.message),
      )
    }
  })

  test('single-node clients make a quorum', async () => {
    const l = new Locker([ioredisNode(), ioredisNode(), ioredisNode()] as unknown as RedisClient)
    await l.close()
  })
})
