import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { BackendError, InvalidArgumentError, Locker } from '../../src/index.js'
import { holdersKey } from '../../src/internal/keys.js'
import { rejectsWith } from '../helpers/assertions.js'
import { describeMatrix } from '../helpers/matrix.js'
import type { RedisServer } from '../helpers/redis-server.js'
import { startReplica } from '../helpers/sentinel.js'
import { waitFor } from '../helpers/wait.js'

describeMatrix('replica-acknowledged locks', (ctx) => {
  let replica: RedisServer
  before(async () => {
    replica = await startReplica(ctx.server)
  })
  after(async () => {
    await replica?.stop()
  })

  const locker = async (options?: ConstructorParameters<typeof Locker>[1]) =>
    new Locker(await ctx.client(), options)

  test('replicas: 1 acquires, and the key is on the replica when acquire resolves', async () => {
    const l = await locker({ prefix: 'r1:', replicas: 1 })
    for (let i = 0; i < 5; i++) {
      const lock = await l.acquire(`k${i}`, { lifetimeMs: 3000 })
      // No polling: WAIT returned only after the replica had the write.
      assert.equal(await replica.command('GET', `r1:k${i}`), lock.token)
      assert.ok(lock.isHeld())
      await lock.extend()
      assert.equal(await lock.release(), true)
    }
    // Per call as well, overriding a Locker default of 0.
    const plain = await locker({ prefix: 'r1b:' })
    const lock = await plain.acquire('k', { replicas: 1, replicaTimeoutMs: 200 })
    assert.equal(await replica.command('GET', 'r1b:k'), lock.token)
    await plain.close()
    await l.close()
  })

  test('replicas: 1 with shared holds and permits: the holder is in the replica’s holders set when acquire resolves', async () => {
    const l = await locker({ prefix: 'r1k:', replicas: 1 })
    for (const [key, options] of [
      ['s', { shared: true }],
      ['n', { limit: 2 }],
    ] as const) {
      const a = await l.acquire(key, { lifetimeMs: 3000, ...options })
      const b = await l.acquire(key, { lifetimeMs: 3000, ...options })
      // No polling: WAIT returned only after the replica had each write.
      const members = (await replica.command('ZRANGE', holdersKey(`r1k:${key}`), '0', '-1')) as string[]
      assert.deepEqual([...members].sort(), [a.token, b.token].sort())
      assert.equal(await a.release(), true)
      assert.equal(await b.release(), true)
    }
    await l.close()
  })

  test('replicas: 2 with one replica fails closed within about replicaTimeoutMs; the key is not left', async () => {
    const l = await locker({ prefix: 'r2:' })
    const started = performance.now()
    const err = await rejectsWith(
      l.acquire('k', { replicas: 2, replicaTimeoutMs: 300, lifetimeMs: 3000 }),
      'ERR_LOCK_BACKEND',
    )
    const took = performance.now() - started
    assert.ok(err instanceof BackendError && err.operation === 'acquire')
    assert.match(err.message, /1 of 2 replicas/)
    assert.ok(took >= 290 && took < 1500, `took ${took}`)
    assert.equal(await ctx.admin.exists('r2:k'), 0, 'the acquisition was undone on the master')
    assert.equal(l.stats().held, 0)
    // tryAcquire fails closed too: never null, never a lock.
    await rejectsWith(l.tryAcquire('k', { replicas: 2, replicaTimeoutMs: 100 }), 'ERR_LOCK_BACKEND')
    assert.equal(await ctx.admin.exists('r2:k'), 0)
    // The key is free for the next taker.
    const lock = await l.acquire('k', { replicas: 1 })
    await lock.release()
    await l.close()
  })

  test('bad values are rejected naming the option, expected and received; nothing is sent', async () => {
    const client = await ctx.client()
    assert.throws(
      () => new Locker(client, { replicas: -1 }),
      (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError)
        assert.equal(err.argument, 'replicas')
        assert.match(err.message, /integer >= 0.*received -1/)
        return true
      },
    )
    assert.throws(() => new Locker(client, { replicaTimeoutMs: 0 }), { argument: 'replicaTimeoutMs' })
    const l = new Locker(client, { prefix: 'r3:' })
    for (const options of [
      { replicas: 1.5 },
      { replicas: '1' as never },
      { replicaTimeoutMs: -1 },
      { lifetimeMs: 500, replicaTimeoutMs: 500 },
    ]) {
      const err = await rejectsWith(l.acquire('k', options), 'ERR_LOCK_INVALID_ARGUMENT')
      assert.match(err.message, /received/)
    }
    assert.equal(await ctx.admin.exists('r3:k'), 0)
    await l.close()
  })

  test('a paused (SIGSTOP) replica: replicas: 1 fails closed, the key is not left', async () => {
    const l = await locker({ prefix: 'r4:', replicas: 1, replicaTimeoutMs: 300 })
    replica.pause()
    try {
      const started = performance.now()
      const err = await rejectsWith(l.acquire('k', { lifetimeMs: 3000 }), 'ERR_LOCK_BACKEND')
      assert.match(err.message, /0 of 1 replicas/)
      const took = performance.now() - started
      assert.ok(took >= 290 && took < 1500, `took ${took}`)
      assert.equal(await ctx.admin.exists('r4:k'), 0)
      // A shared hold and a permit are confirmed the same way: refused, and not left in the set.
      for (const options of [{ shared: true }, { limit: 2 }]) {
        await rejectsWith(l.tryAcquire('kk', { lifetimeMs: 3000, ...options }), 'ERR_LOCK_BACKEND')
        await waitFor(async () => (await ctx.admin.zcard(holdersKey('r4:kk'))) === 0, { timeoutMs: 1000 })
      }
    } finally {
      replica.resume()
    }
    // Once the replica is back, acquisitions are confirmed again.
    await waitFor(async () => {
      const lock = await l.tryAcquire('k2').catch(() => null)
      await lock?.release()
      return lock !== null
    })
    await l.close()
  })
})
