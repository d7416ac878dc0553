import assert from 'node:assert/strict'
import { after, afterEach, before, describe, test } from 'node:test'
import calculateSlot from 'cluster-key-slot'
import { Redis } from 'ioredis'
import { InvalidArgumentError, type Lock, Locker } from '../../src/index.js'
import { fenceKey, holdersKey, queueKey, releaseChannel, writerKey } from '../../src/internal/keys.js'
import { rejectsWith } from '../helpers/assertions.js'
import { type LocalCluster, startCluster } from '../helpers/cluster.js'
import { ClusterLockers } from '../helpers/cluster-clients.js'
import { type AnyClient, CLIENT_KINDS, type ConnectedClient, connectClient } from '../helpers/matrix.js'
import { type RedisServer, startRedis } from '../helpers/redis-server.js'
import { sleep, track, waitFor } from '../helpers/wait.js'

// Shared locks and semaphores on a local Redis Cluster (companions in the key's slot,
// wake-ups by sharded pub/sub) and on a quorum of three independent masters (shared
// locks and `limit: 1` work; `limit > 1` is refused with the reason).

/** Waiting: only a wake-up ends it in well under a second. */
const SLOW = { retryIntervalMs: 5000, retryTimeoutMs: 20_000, lifetimeMs: 10_000 } as const
const LONG = { lifetimeMs: 10_000 } as const

describe('shared locks and semaphores on Redis Cluster', () => {
  let cluster: LocalCluster
  before(async () => {
    cluster = await startCluster()
  })
  after(() => cluster?.stop())

  /** The master serving `key` now, and its SPUBLISH count (scripts' calls included). */
  async function masterOf(key: string) {
    const master = await cluster.masterOf(calculateSlot(key))
    const spublished = async () =>
      Number(
        String(await master.command('INFO', 'commandstats')).match(/cmdstat_spublish:calls=(\d+)/)?.[1] ?? 0,
      )
    return { master, spublished }
  }

  for (const kind of CLIENT_KINDS) {
    describe(`[${kind}]`, () => {
      const clients = new ClusterLockers(kind, () => cluster)
      const locker = (options?: ConstructorParameters<typeof Locker>[1]) => clients.locker(options)
      after(() => clients.close())

      for (const [label, key] of [
        ['no hash tag', `${kind}:rw`],
        ['a hash tag', `{${kind}:doc}:rw`],
      ] as const) {
        test(`shared holders coexist; a writer waits and is woken by SPUBLISH from the last release (key with ${label})`, async () => {
          for (const companion of [
            holdersKey(key),
            writerKey(key),
            queueKey(key),
            fenceKey(key),
            releaseChannel(key),
          ]) {
            assert.equal(
              calculateSlot(companion),
              calculateSlot(key),
              `${JSON.stringify(companion)} in another slot`,
            )
          }
          const [a, b, w] = [await locker(), await locker(), await locker()]
          const ra = await a.acquire(key, { shared: true, ...LONG })
          const rb = await b.acquire(key, { shared: true, ...LONG })
          const state = await a.inspect(key)
          assert.deepEqual([state.kind, state.holders.length, state.token], ['shared', 2, null])
          const { master, spublished } = await masterOf(key)
          assert.equal(
            await master.command('ZCARD', holdersKey(key)),
            2,
            'the holders set on the key’s master',
          )
          const writer = track(w.acquire(key, SLOW))
          await waitFor(async () => (await master.command('EXISTS', writerKey(key))) === 1, {
            message: 'the writer mark on the key’s master',
          })
          assert.equal(
            await a.tryAcquire(key, { shared: true }),
            null,
            'a reader got in before the waiting writer',
          )
          await sleep(100) // subscribed
          await ra.release()
          await sleep(200)
          assert.equal(writer.settled, false, 'the writer got in beside a reader')
          const before = await spublished()
          const releasedAt = performance.now()
          await rb.release()
          const lock = await writer.promise
          const took = performance.now() - releasedAt
          assert.ok(
            took < 300,
            `the writer got it ${Math.round(took)} ms after the last release (retry 5000)`,
          )
          assert.ok(
            (await spublished()) > before,
            'the release was announced with SPUBLISH on the key’s master',
          )
          assert.equal((await w.inspect(key)).token, lock.token)
          await lock.release()
          assert.equal(await master.command('EXISTS', key, holdersKey(key), writerKey(key)), 0)
        })

        test(`semaphore limit 2 admits two, blocks a third; a permit release wakes it (key with ${label})`, async () => {
          const semKey = `${key}:sem`
          const [a, b, c] = [await locker(), await locker(), await locker()]
          const p1 = await a.acquire(semKey, { limit: 2, ...LONG })
          const p2 = await b.acquire(semKey, { limit: 2, ...LONG })
          assert.equal(await c.tryAcquire(semKey, { limit: 2 }), null, 'a third permit')
          const state = await c.inspect(semKey)
          assert.deepEqual([state.kind, state.limit, state.holders.length], ['semaphore', 2, 2])
          const { master, spublished } = await masterOf(semKey)
          assert.equal(await master.command('ZCARD', holdersKey(semKey)), 2)
          await rejectsWith(c.acquire(semKey, { limit: 3 }), 'ERR_LOCK_INVALID_ARGUMENT')
          await rejectsWith(c.acquire(semKey), 'ERR_LOCK_INVALID_ARGUMENT')
          const third = track(c.acquire(semKey, { limit: 2, ...SLOW }))
          const fourth = track(c.acquire(semKey, { limit: 2, ...SLOW }))
          await waitFor(() => c.stats().waiting === 2)
          await sleep(200)
          assert.equal(third.settled || fourth.settled, false, 'a permit beyond the limit')
          const before = await spublished()
          const releasedAt = performance.now()
          await p1.release()
          const p3 = await third.promise
          const took = performance.now() - releasedAt
          assert.ok(took < 300, `the waiter got a permit ${Math.round(took)} ms after a release (retry 5000)`)
          assert.ok((await spublished()) > before, 'announced with SPUBLISH')
          await sleep(200)
          assert.equal(fourth.settled, false, 'one release admitted two')
          await p2.release()
          const p4 = await fourth.promise
          assert.equal((await c.inspect(semKey)).holders.length, 2)
          await p3.release()
          await p4.release()
          assert.equal(await master.command('EXISTS', semKey, holdersKey(semKey)), 0)
        })
      }

      test('a shared multi-key lock with a common hash tag is all or nothing; keys of different slots are refused', async () => {
        const [a, b] = [await locker(), await locker()]
        const tag = `{${kind}:mk}`
        const keys = [`${tag}:a`, `${tag}:b`]
        const x = await a.acquire(keys[1]!, LONG)
        assert.equal(await b.tryAcquire(keys, { shared: true }), null)
        assert.equal((await b.inspect(keys[0]!)).isHeld, false, 'a subset was taken')
        await x.release()
        const r = await b.acquire(keys, { shared: true })
        const s = await a.acquire(keys, { shared: true })
        for (const k of keys) assert.equal((await a.inspect(k)).holders.length, 2)
        await r.release()
        await s.release()
        const cross = [`${kind}:cross:a`, `${kind}:cross:b`]
        assert.notEqual(calculateSlot(cross[0]!), calculateSlot(cross[1]!))
        await rejectsWith(b.acquire(cross, { shared: true }), 'ERR_LOCK_CROSS_SLOT')
      })
    })
  }
})

describe('shared locks and semaphores on a quorum of 3 independent masters', () => {
  const servers: RedisServer[] = []
  const admins: Redis[] = []
  const open = new Set<ConnectedClient>()
  const lockers = new Set<Locker>()
  before(async () => {
    servers.push(...(await Promise.all([0, 1, 2].map(() => startRedis()))))
    for (const s of servers) {
      const admin = new Redis(s.url, { maxRetriesPerRequest: 1, lazyConnect: true })
      admin.on('error', () => {})
      admins.push(admin)
    }
  })
  afterEach(async () => {
    await Promise.all([...lockers].map((l) => l.close()))
    lockers.clear()
    await Promise.all([...open].map((c) => c.close()))
    open.clear()
  })
  after(async () => {
    for (const a of admins) a.disconnect()
    await Promise.all(servers.map((s) => s.stop()))
  })

  for (const kind of ['ioredis', 'node-redis'] as const) {
    /** A Locker over clients of `kind` to the three servers. */
    const locker = async (options?: ConstructorParameters<typeof Locker>[1]) => {
      const connected = await Promise.all(servers.map((s) => connectClient(kind, s.url)))
      for (const c of connected) open.add(c)
      const l = new Locker(
        connected.map((c) => c.client as AnyClient),
        options,
      )
      lockers.add(l)
      return l
    }
    const everyNode = (f: (admin: Redis) => Promise<unknown>) => Promise.all(admins.map(f))
    /**
     * Waits until every node shows `expected`: an acquisition or release resolves once a
     * majority answered, so the third node may lag behind by a moment.
     */
    const onEveryNode = async (f: (admin: Redis) => Promise<unknown>, expected: unknown[], what: string) => {
      let seen: unknown[] = []
      await waitFor(
        async () => {
          seen = await everyNode(f)
          return JSON.stringify(seen) === JSON.stringify(expected)
        },
        { timeoutMs: 2000, message: `${what}: ${JSON.stringify(expected)} on every node` },
      ).catch(() => assert.deepEqual(seen, expected, what))
    }

    describe(`[${kind}]`, () => {
      const k = (name: string) => `q:${kind}:${name}`

      test('shared holders coexist on every node; a writer waits, keeps new readers out, and is woken by the last release', async () => {
        const key = k('rw')
        const [a, b, w] = [await locker(), await locker(), await locker()]
        const ra = await a.acquire(key, { shared: true, ...LONG })
        const rb = await b.acquire(key, { shared: true, ...LONG })
        await onEveryNode((n) => n.zcard(holdersKey(key)), [2, 2, 2], 'holders')
        const state = await a.inspect(key)
        assert.deepEqual([state.kind, state.holders.length, state.token], ['shared', 2, null])
        assert.equal(await w.tryAcquire(key), null)
        const writer = track(w.acquire(key, SLOW))
        await waitFor(async () => (await everyNode((n) => n.exists(writerKey(key)))).every((e) => e === 1), {
          message: 'the writer mark on every node',
        })
        assert.equal(
          await a.tryAcquire(key, { shared: true }),
          null,
          'a reader got in before the waiting writer',
        )
        await sleep(100)
        await ra.release()
        await sleep(200)
        assert.equal(writer.settled, false, 'the writer got in beside a reader')
        const releasedAt = performance.now()
        await rb.release()
        const lock = await writer.promise
        const took = performance.now() - releasedAt
        assert.ok(took < 500, `the writer got it ${Math.round(took)} ms after the last release (retry 5000)`)
        assert.equal((await a.inspect(key)).token, lock.token)
        await lock.release()
        await onEveryNode((n) => n.exists(key, holdersKey(key)), [0, 0, 0], 'released')
      })

      test('limit: 2 is refused with ERR_LOCK_INVALID_ARGUMENT saying why, before anything is sent', async () => {
        const l = await locker()
        const scriptCalls = async () =>
          (await everyNode((n) => n.info('commandstats'))).map((info) =>
            [...String(info).matchAll(/cmdstat_(?:eval|evalsha|set):calls=(\d+)/g)].reduce(
              (s, m) => s + Number(m[1]),
              0,
            ),
          )
        const before = await scriptCalls()
        for (const limit of [2, 3]) {
          for (const call of [
            () => l.acquire(k('sem'), { limit }),
            () => l.tryAcquire(k('sem'), { limit }),
            () => l.withLock(k('sem'), () => 'ran', { limit }),
          ]) {
            const err = await rejectsWith(call(), 'ERR_LOCK_INVALID_ARGUMENT')
            assert.ok(err instanceof InvalidArgumentError)
            assert.equal(err.argument, 'limit')
            assert.match(err.message, new RegExp(`limit ${limit} is not supported on a quorum`))
            assert.match(err.message, new RegExp(`could admit more than ${limit} holders`))
          }
        }
        assert.deepEqual(await scriptCalls(), before, 'a refused acquisition reached a node')
        assert.deepEqual(await everyNode((n) => n.exists(k('sem'), holdersKey(k('sem')))), [0, 0, 0])
      })

      test('limit: 1 works on the quorum: one holder, the semaphore kind, a release wakes the next', async () => {
        const key = k('one')
        const [a, b] = [await locker(), await locker()]
        const p = await a.acquire(key, { limit: 1, ...LONG })
        await onEveryNode((n) => n.get(key), ['arl1.sem.1', 'arl1.sem.1', 'arl1.sem.1'], 'the marker')
        assert.equal(await b.tryAcquire(key, { limit: 1 }), null)
        const state = await b.inspect(key)
        assert.deepEqual(
          [state.kind, state.limit, state.holders.length, state.token],
          ['semaphore', 1, 1, null],
        )
        const err = await rejectsWith(b.acquire(key), 'ERR_LOCK_INVALID_ARGUMENT')
        assert.match(err.message, /held as a semaphore with limit 1/)
        const waiter = track(b.acquire(key, { limit: 1, ...SLOW }))
        await sleep(300)
        assert.equal(waiter.settled, false)
        const releasedAt = performance.now()
        await p.release()
        const next: Lock = await waiter.promise
        const took = performance.now() - releasedAt
        assert.ok(took < 500, `woken ${Math.round(took)} ms after the release (retry 5000)`)
        assert.equal(await a.tryAcquire(key, { limit: 1 }), null)
        await next.release()
        await onEveryNode((n) => n.exists(key, holdersKey(key)), [0, 0, 0], 'released')
      })
    })
  }
})
