import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  type BaseClientConfiguration,
  GlideClient,
  ProtocolVersion,
  RequestError,
} from '@valkey/valkey-glide'
import calculateSlot from 'cluster-key-slot'
import { BackendError, InvalidArgumentError, Locker } from '../../src/index.js'
import { rejectsWith } from '../helpers/assertions.js'
import { type LocalCluster, startCluster } from '../helpers/cluster.js'
import { ClusterLockers } from '../helpers/cluster-clients.js'
import { GLIDE_REQUEST_TIMEOUT_MS } from '../helpers/matrix.js'
import { getFreePort, LOOPBACK, type RedisServer, startRedis } from '../helpers/redis-server.js'
import { startReplica } from '../helpers/sentinel.js'
import { sleep, waitFor } from '../helpers/wait.js'

const slowRetries = { retryIntervalMs: 5000, retryTimeoutMs: 10_000 }

/** Resolves how long after `release()` the waiter `pending` got its lock, and releases it. */
async function wakeUpDelay(
  release: () => Promise<unknown>,
  pending: Promise<{ release(): Promise<boolean> }>,
) {
  await sleep(200) // the waiter has tried once and subscribed
  const releasedAt = performance.now()
  await release()
  const lock = await pending
  const took = performance.now() - releasedAt
  await lock.release()
  return took
}

/** The port of the replica of `master` (its first one). */
async function replicaPort(master: RedisServer): Promise<number> {
  const info = String(await master.command('INFO', 'replication'))
  return Number(/slave0:ip=[^,]+,port=(\d+)/.exec(info)?.[1])
}

/** Clients with a subscription (RESP3 subscribers stay `flags=N`; only `sub`/`ssub` tell). */
async function subscriberCount(server: RedisServer): Promise<number> {
  const list = String(await server.command('CLIENT', 'LIST'))
  return list.split('\n').filter((line) => /\b(sub|ssub)=[1-9]/.test(line)).length
}

describe('Valkey GLIDE: GlideClient on one node', () => {
  let server: RedisServer
  const closers: (() => unknown)[] = []

  async function glide(config: Partial<BaseClientConfiguration> = {}): Promise<GlideClient> {
    const client = await GlideClient.createClient({
      addresses: [{ host: LOOPBACK, port: server.port }],
      requestTimeout: GLIDE_REQUEST_TIMEOUT_MS,
      ...config,
    })
    closers.push(() => client.close())
    return client
  }

  async function locker(options?: ConstructorParameters<typeof Locker>[1]): Promise<Locker> {
    const l = new Locker(await glide(), options)
    closers.unshift(() => l.close())
    return l
  }

  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    for (const close of closers.splice(0)) await close()
    await server?.stop()
  })

  test('acquire, extend and release', async () => {
    const l = await locker({ prefix: 'g1:' })
    const lock = await l.acquire('k', { lifetimeMs: 2000 })
    assert.equal(await server.command('GET', 'g1:k'), lock.token)
    await sleep(300)
    await lock.extend()
    assert.ok(Number(await server.command('PTTL', 'g1:k')) > 1800, 'the lease was re-armed')
    assert.equal(await (await locker({ prefix: 'g1:' })).tryAcquire('k'), null, 'held')
    assert.equal(await lock.release(), true)
    assert.equal(await server.command('EXISTS', 'g1:k'), 0)
    assert.equal(await lock.release(), false, 'a second release finds nothing')
  })

  test('a waiter on another Locker is woken by the release well before its retry interval', async () => {
    const holder = await locker({ prefix: 'g2:' })
    const waiter = await locker({ prefix: 'g2:' })
    const held = await holder.acquire('w', { lifetimeMs: 10_000 })
    const took = await wakeUpDelay(() => held.release(), waiter.acquire('w', slowRetries))
    assert.ok(took < 1000, `woken ${Math.round(took)} ms after the release (retry interval 5000)`)
    assert.equal(waiter.stats().wakeups, 1)
  })

  test('the subscriber is a client of its own, closed with the Locker; the given client stays open', async () => {
    const client = await glide()
    const before = await subscriberCount(server)
    const holder = new Locker(client, { prefix: 'g3:' })
    const waiter = await locker({ prefix: 'g3:' })
    const held = await holder.acquire('w', { lifetimeMs: 10_000 })
    const pending = waiter.acquire('w', slowRetries)
    await waitFor(async () => (await subscriberCount(server)) === before + 1, { message: 'a subscriber' })
    await held.release()
    await (await pending).release()
    await waiter.close()
    await waitFor(async () => (await subscriberCount(server)) === before, {
      message: 'the subscriber to close',
    })
    await holder.close()
    assert.equal(await client.customCommand(['PING']), 'PONG', 'a Locker never closes a client it was given')
  })

  test('fencing tokens increase', async () => {
    const l = await locker({ prefix: 'g4:' })
    const a = await l.acquire('f', { fencing: true })
    await a.release()
    const b = await l.acquire('f', { fencing: true })
    assert.equal(typeof a.fence, 'bigint')
    assert.ok(b.fence > a.fence, `${b.fence} > ${a.fence}`)
    await b.release()
  })

  test('several keys at once, all or nothing', async () => {
    const l = await locker({ prefix: 'g5:' })
    const other = await locker({ prefix: 'g5:' })
    const lock = await l.acquire(['a', 'b'], { lifetimeMs: 5000 })
    assert.equal(await server.command('GET', 'g5:a'), lock.token)
    assert.equal(await server.command('GET', 'g5:b'), lock.token)
    assert.equal(await other.tryAcquire(['b', 'c']), null)
    assert.equal(await server.command('EXISTS', 'g5:c'), 0, 'nothing taken when one key is held')
    assert.equal(await lock.release(), true)
    await (await other.acquire(['b', 'c'])).release()
  })

  test('inspect reports the holder, its lease and its fence', async () => {
    const l = await locker({ prefix: 'g6:' })
    const lock = await l.acquire('k', { lifetimeMs: 5000, fencing: true })
    const state = await l.inspect('k')
    assert.equal(state.key, 'g6:k')
    assert.equal(state.isHeld, true)
    assert.equal(state.token, lock.token)
    assert.ok(state.remainingMs !== null && state.remainingMs > 4000 && state.remainingMs <= 5000)
    assert.equal(state.fence, lock.fence)
    await lock.release()
    const free = await l.inspect('k')
    assert.equal(free.isHeld, false)
    assert.equal(free.token, null)
  })

  test('after SCRIPT FLUSH the scripts are sent again (NOSCRIPT is recognized)', async () => {
    const l = await locker({ prefix: 'g7:' })
    await (await l.acquire(['a', 'b'])).release()
    await server.command('SCRIPT', 'FLUSH')
    const lock = await l.acquire(['a', 'b'])
    assert.equal(await server.command('GET', 'g7:a'), lock.token)
    assert.equal(await lock.release(), true)
  })

  test('a server error reply is ERR_LOCK_BACKEND with the GLIDE RequestError as cause', async () => {
    const l = await locker({ prefix: 'g8:' })
    await server.command('HSET', 'g8:h', 'f', 'v')
    for (const attempt of [() => l.acquire('h'), () => l.inspect('h')]) {
      const err = await rejectsWith(attempt(), 'ERR_LOCK_BACKEND')
      assert.ok(err instanceof BackendError)
      assert.ok(err.cause instanceof RequestError, `cause: ${String(err.cause)}`)
      assert.match(err.cause.message, /WRONGTYPE/)
    }
  })

  test('no server at the address: ERR_LOCK_BACKEND, no hang', async () => {
    const port = await getFreePort()
    const client = await GlideClient.createClient({
      addresses: [{ host: LOOPBACK, port }],
      lazyConnect: true,
      requestTimeout: 500,
      advancedConfiguration: { connectionTimeout: 200 },
    })
    const l = new Locker(client)
    const started = performance.now()
    const err = await rejectsWith(l.acquire('k', { retryTimeoutMs: 0 }), 'ERR_LOCK_BACKEND')
    assert.ok(err instanceof BackendError && err.operation === 'acquire', err.message)
    assert.ok(performance.now() - started < 5000)
    await l.close()
    client.close()
  })

  test('a RESP2 client is refused with ERR_LOCK_INVALID_ARGUMENT', async () => {
    const client = await glide({ protocol: ProtocolVersion.RESP2 })
    assert.throws(
      () => new Locker(client),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.argument === 'client' && /RESP3/.test(err.message),
    )
  })

  test('after a server restart a waiter re-checks once the subscription is back, not after its retry interval', async () => {
    const holder = await locker({ prefix: 'g9:' })
    const waiter = await locker({ prefix: 'g9:' })
    await holder.acquire('w', { lifetimeMs: 30_000 })
    const pending = waiter.acquire('w', { retryIntervalMs: 20_000, retryTimeoutMs: 30_000 })
    await sleep(300)
    await server.restart() // the holder's key is gone with the dataset; no release is announced
    const restartedAt = performance.now()
    const lock = await pending
    const took = performance.now() - restartedAt
    assert.ok(took < 5000, `acquired ${Math.round(took)} ms after the restart (retry interval 20000)`)
    await lock.release()
  })

  describe('with a replica', () => {
    let replica: RedisServer
    before(async () => {
      replica = await startReplica(server)
    })
    after(async () => {
      await replica?.stop()
    })

    test('replicas: 1 acquires, and the key is on the replica when acquire resolves', async () => {
      const l = await locker({ prefix: 'gr1:', replicas: 1 })
      for (let i = 0; i < 3; i++) {
        const lock = await l.acquire(`k${i}`, { lifetimeMs: 3000 })
        assert.equal(await replica.command('GET', `gr1:k${i}`), lock.token)
        assert.equal(await lock.release(), true)
      }
    })

    test('with the replica stalled, replicas: 1 fails closed (WAIT counts the acquisition itself)', async () => {
      const l = await locker({ prefix: 'gr2:' })
      replica.pause()
      try {
        const err = await rejectsWith(
          l.acquire('k', { replicas: 1, replicaTimeoutMs: 200 }),
          'ERR_LOCK_BACKEND',
        )
        assert.match(err.message, /0 of 1 replicas/)
        assert.equal(await server.command('EXISTS', 'gr2:k'), 0, 'the acquisition was undone')
      } finally {
        replica.resume()
      }
      await (await l.acquire('k', { replicas: 1 })).release()
    })
  })
})

describe('Valkey GLIDE: GlideClusterClient', () => {
  let cluster: LocalCluster
  const clients = new ClusterLockers('valkey-glide', () => cluster)

  /** A key (with tag `{tag}`) whose slot's master is not the master of slot 0. */
  async function keyAwayFromSlot0(name: string): Promise<string> {
    const slot0 = await cluster.masterOf(0)
    for (let i = 0; ; i++) {
      const key = `{${name}${i}}`
      if ((await cluster.masterOf(calculateSlot(key))) !== slot0) return key
    }
  }

  before(async () => {
    cluster = await startCluster()
  })
  after(async () => {
    await clients.close()
    await cluster?.stop()
  })

  test('acquire and release on every master, routed by the first key (no MOVED)', async () => {
    const l = await clients.locker({ prefix: 'gc1:' })
    const masters = new Set<RedisServer>()
    for (let i = 0; masters.size < 3; i++) {
      const master = await cluster.masterOf(calculateSlot(`gc1:k${i}`))
      masters.add(master)
      // Twice: EVAL, then EVALSHA (and with fencing, so the scripts run rather than SET NX).
      for (let n = 0; n < 2; n++) {
        const lock = await l.acquire(`k${i}`, { fencing: true })
        assert.equal(await master.command('GET', `gc1:k${i}`), lock.token)
        assert.equal(await lock.release(), true)
      }
    }
    for (const node of cluster.nodes) {
      assert.doesNotMatch(String(await node.command('INFO', 'errorstats')), /errorstat_MOVED/)
    }
  })

  test('a sharded wake-up: a waiter on another Locker is woken by the release', async () => {
    const holder = await clients.locker({ prefix: 'gc2:' })
    const waiter = await clients.locker({ prefix: 'gc2:' })
    for (const key of ['w', await keyAwayFromSlot0('w')]) {
      const held = await holder.acquire(key, { lifetimeMs: 10_000 })
      const took = await wakeUpDelay(() => held.release(), waiter.acquire(key, slowRetries))
      assert.ok(took < 1000, `${key}: woken ${Math.round(took)} ms after the release (retry interval 5000)`)
    }
  })

  test('several keys of one slot at once', async () => {
    const l = await clients.locker()
    const other = await clients.locker()
    const lock = await l.acquire(['{gc3}a', '{gc3}b'], { fencing: true })
    const master = await cluster.masterOf(calculateSlot('gc3'))
    assert.equal(await master.command('GET', '{gc3}a'), lock.token)
    assert.equal(await master.command('GET', '{gc3}b'), lock.token)
    assert.equal(await other.tryAcquire(['{gc3}b', '{gc3}c']), null)
    assert.equal(await lock.release(), true)
    await rejectsWith(l.acquire(['{gc3}a', '{gc4}a']), 'ERR_LOCK_CROSS_SLOT')
  })

  test("replicas: 1 runs on the slot's master and WAITs on the connection that wrote", async () => {
    const l = await clients.locker({ prefix: 'gc5:' })
    const key = await keyAwayFromSlot0('r')
    const slot = calculateSlot(key)
    const master = await cluster.masterOf(slot)
    const port = await replicaPort(master)
    const replicaNode = cluster.nodes.find((n) => n.port === port)
    assert.ok(replicaNode)
    const lock = await l.acquire(key, { replicas: 1, lifetimeMs: 3000 })
    // A cluster replica answers GET with MOVED; the slot's keys it holds tell.
    assert.deepEqual(await replicaNode.command('CLUSTER', 'GETKEYSINSLOT', slot, 10), [`gc5:${key}`])
    assert.equal(await lock.release(), true)
    replicaNode.pause()
    try {
      const err = await rejectsWith(
        l.acquire(key, { replicas: 1, replicaTimeoutMs: 200 }),
        'ERR_LOCK_BACKEND',
      )
      assert.match(err.message, /0 of 1 replicas/)
    } finally {
      replicaNode.resume()
    }
    assert.equal(await master.command('EXISTS', `gc5:${key}`), 0, 'the acquisition was undone')
  })
})
