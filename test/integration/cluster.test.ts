import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import calculateSlot from 'cluster-key-slot'
import { Redis } from 'ioredis'
import { TickCork } from '../../src/adapters/tick-cork.js'
import {
  BackendError,
  CrossSlotError,
  InvalidArgumentError,
  type Lock,
  type Locker,
} from '../../src/index.js'
import { releaseChannel } from '../../src/internal/keys.js'
import { type LocalCluster, startCluster } from '../helpers/cluster.js'
import { ClusterLockers } from '../helpers/cluster-clients.js'
import { CLIENT_KINDS } from '../helpers/matrix.js'
import { LOOPBACK } from '../helpers/redis-server.js'
import { sleep, waitFor } from '../helpers/wait.js'
import { countWrites } from '../helpers/writes.js'

/** Calls of EVAL and EVALSHA per node (by port): every lock operation is one of them. */
async function scriptCallsByNode(cluster: LocalCluster): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  for (const node of cluster.nodes) {
    const stats = String(await node.command('INFO', 'commandstats'))
    let n = 0
    for (const m of stats.matchAll(/cmdstat_(?:eval|evalsha):calls=(\d+)/g)) n += Number(m[1])
    out.set(node.port, n)
  }
  return out
}

async function scriptCalls(cluster: LocalCluster): Promise<number> {
  let total = 0
  for (const n of (await scriptCallsByNode(cluster)).values()) total += n
  return total
}

/** Distinct keys whose slots are served by every master (at least `perMaster` each). */
async function keysOnEveryMaster(
  cluster: LocalCluster,
  prefix: string,
  perMaster: number,
): Promise<string[]> {
  const byMaster = new Map<number, string[]>()
  for (let i = 0; [...byMaster.values()].filter((k) => k.length >= perMaster).length < 3; i++) {
    const key = `${prefix}spread:${i}`
    const master = await cluster.masterOf(calculateSlot(key))
    const list = byMaster.get(master.port) ?? []
    if (list.length < perMaster) list.push(key)
    byMaster.set(master.port, list)
  }
  return [...byMaster.values()].flat()
}

/** The port of the replica of `slot`'s master (each master has exactly one), asked with ROLE. */
async function replicaOf(cluster: LocalCluster, slot: number): Promise<number> {
  const master = await cluster.masterOf(slot)
  for (const node of cluster.nodes) {
    const role = (await node.command('ROLE')) as unknown[]
    if (role[0] === 'slave' && Number(role[2]) === master.port) return node.port
  }
  throw new Error(`no replica of master ${master.port}`)
}

/** GET on a replica: a READONLY connection, or the replica would answer MOVED. */
async function getOnReplica(port: number, key: string): Promise<string | null> {
  const replica = new Redis({ host: LOOPBACK, port, readOnly: true, lazyConnect: true })
  replica.on('error', () => {})
  try {
    await replica.connect()
    return await replica.get(key)
  } finally {
    replica.disconnect()
  }
}

describe('Redis Cluster', () => {
  let cluster: LocalCluster
  before(async () => {
    cluster = await startCluster()
  })
  after(() => cluster?.stop())

  for (const kind of CLIENT_KINDS) {
    describe(`[${kind}]`, () => {
      const p = `${kind}:`
      const clients = new ClusterLockers(kind, () => cluster)
      const locker = (options?: ConstructorParameters<typeof Locker>[1]) => clients.locker(options)
      after(() => clients.close())

      test('acquire and release', async () => {
        const l = await locker()
        const lock = await l.acquire(`${p}job`)
        const state = await l.inspect(`${p}job`)
        assert.equal(state.token, lock.token)
        assert.ok(state.remainingMs !== null && state.remainingMs > 0)
        assert.equal(await lock.release(), true)
        assert.equal((await l.inspect(`${p}job`)).isHeld, false)
        assert.equal(await lock.release(), false)
      })

      test('30 acquisitions of one turn on keys of every master leave in a few writes per node (issue 14)', async (t) => {
        const l = await locker({ lifetimeMs: 30_000 })
        const keys = await keysOnEveryMaster(cluster, `${p}turn:`, 10)
        // Slot map, scripts and a connection to every master: ready (a node's first
        // commands wait in its offline queue, which ioredis flushes one write each).
        for (const k of [keys[0]!, keys[10]!, keys[20]!]) await (await l.acquire(k)).release()
        const acquired = await countWrites(() => Promise.all(keys.map((k) => l.acquire(k))))
        // ioredis: batches of 1, 4, 16 and 9, each one write per node that has commands in it.
        assert.ok(acquired.writes <= 12, `${acquired.writes} writes for 30 acquisitions`)
        const released = await countWrites(() => Promise.all(acquired.result.map((lock) => lock.release())))
        assert.ok(released.writes <= 12, `${released.writes} writes for 30 releases`)
        if (kind === 'ioredis') {
          // Negative control: without TickCork each command is its own write.
          t.mock.method(TickCork.prototype, 'enter', () => false)
          const again = await countWrites(() => Promise.all(keys.map((k) => l.acquire(k))))
          assert.ok(again.writes >= 30, `${again.writes} writes without TickCork`)
          await Promise.all(again.result.map((lock) => lock.release()))
        }
      })

      test('two Lockers exclude each other', async () => {
        const [a, b] = [await locker(), await locker()]
        const held = await a.acquire(`${p}mutex`)
        assert.equal(await b.tryAcquire(`${p}mutex`), null)
        await assert.rejects(b.acquire(`${p}mutex`, { retryTimeoutMs: 150 }), {
          code: 'ERR_LOCK_ACQUIRE_TIMEOUT',
        })
        await held.release()
        const next = await b.tryAcquire(`${p}mutex`)
        assert.ok(next)
        assert.equal(await a.tryAcquire(`${p}mutex`), null)
        await next.release()
      })

      test('a multi-key lock with a common hash tag', async () => {
        const l = await locker()
        const keys = [`{${p}order:42}:a`, `{${p}order:42}:b`, `{${p}order:42}:c`]
        const lock = await l.acquire(keys)
        for (const key of keys) assert.equal((await l.inspect(key)).token, lock.token)
        assert.equal(await (await locker()).tryAcquire(keys[1]!), null)
        assert.equal(await lock.release(), true)
        for (const key of keys) assert.equal((await l.inspect(key)).isHeld, false)
      })

      test('keys of different slots are rejected before anything is sent', async () => {
        const l = await locker()
        const keys = [`${p}cross:a`, `${p}cross:b`]
        const slots = keys.map((k) => calculateSlot(k))
        assert.notEqual(slots[0], slots[1])
        const before = await scriptCalls(cluster)
        let error: unknown
        try {
          await l.acquire(keys)
        } catch (err) {
          error = err
        }
        assert.ok(error instanceof CrossSlotError, String(error))
        assert.equal(error.code, 'ERR_LOCK_CROSS_SLOT')
        assert.deepEqual(
          error.slots.map((s) => s.slot),
          slots,
        )
        assert.match(error.message, new RegExp(`${slots[0]}.*${slots[1]}`))
        assert.match(error.message, /hash tag/)
        await assert.rejects(l.tryAcquire([`${p}x}y`]), InvalidArgumentError)
        await assert.rejects(l.inspect(`${p}x}y`), InvalidArgumentError)
        assert.equal(await scriptCalls(cluster), before, 'no script call reached the cluster')
        for (const key of keys) assert.equal((await l.inspect(key)).isHeld, false)
      })

      test('auto-extension keeps leases on every master alive, per-slot calls, none lost', async () => {
        const l = await locker({ lifetimeMs: 300, extendIntervalMs: 100 })
        const keys = await keysOnEveryMaster(cluster, p, 4)
        const locks: Lock[] = await Promise.all(keys.map((k) => l.acquire(k)))
        const slots = new Set(keys.map((k) => calculateSlot(k)))
        const masters = new Set<number>()
        for (const slot of slots) masters.add((await cluster.masterOf(slot)).port)
        assert.equal(masters.size, 3)
        const callsBefore = await scriptCallsByNode(cluster)
        await sleep(1000) // more than three lifetimes
        const callsAfter = await scriptCallsByNode(cluster)
        for (const lock of locks) {
          assert.equal(lock.isHeld(), true)
          assert.equal(lock.signal.aborted, false)
        }
        for (const [i, key] of keys.entries()) assert.equal((await l.inspect(key)).token, locks[i]?.token)
        assert.equal(l.stats().lost, 0)
        // Each slot needs its own call, about every 100 ms; every master got its share.
        let calls = 0
        for (const port of masters) {
          const n = (callsAfter.get(port) ?? 0) - (callsBefore.get(port) ?? 0)
          assert.ok(n >= 5, `master ${port}: ${n} extension calls`)
          calls += n
        }
        assert.ok(calls >= 5 * slots.size, `${calls} extension calls for ${slots.size} slots`)
        await Promise.all(locks.map((lock) => lock.release()))
      })

      test('resharding the slot of a held lock (MIGRATING/IMPORTING, ASK, MOVED): still held, extended, exclusive, released', async () => {
        const l = await locker({ lifetimeMs: 1000, extendIntervalMs: 150 })
        const other = await locker({ lifetimeMs: 1000 })
        const key = `${p}reshard`
        const slot = calculateSlot(key)
        const lock = await l.acquire(key)
        const from = await cluster.masterOf(slot)
        const masters = await Promise.all([0, 1, 2].map((i) => cluster.nodes[i]!))
        const to = masters.find((m) => m.port !== from.port)!
        const idOf = async (n: typeof from) => String(await n.command('CLUSTER', 'MYID'))
        const [fromId, toId] = [await idOf(from), await idOf(to)]
        const exclusive = async () => {
          assert.equal(await other.tryAcquire(key), null, 'a second owner during resharding')
        }
        // Phase 1: the slot is migrating; the key is still on its old master.
        await to.command('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId)
        await from.command('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId)
        await sleep(400)
        await exclusive()
        // Phase 2: the key moved; the old master answers ASK for it.
        await from.command('MIGRATE', LOOPBACK, String(to.port), '', '0', '5000', 'KEYS', key)
        await sleep(400)
        await exclusive()
        // Phase 3: the slot belongs to the new master; the old one answers MOVED.
        for (const m of [to, from, ...masters.filter((n) => n !== to && n !== from)]) {
          await m.command('CLUSTER', 'SETSLOT', String(slot), 'NODE', toId)
        }
        await sleep(600)
        await exclusive()
        assert.equal(lock.isHeld(), true)
        assert.equal(lock.signal.aborted, false)
        assert.equal(l.stats().lost, 0)
        assert.equal((await cluster.masterOf(slot)).port, to.port)
        // Extended on the new master all along: its TTL is fresh, not counting down from the move.
        const onNew = new Redis({ host: LOOPBACK, port: to.port, lazyConnect: true })
        onNew.on('error', () => {})
        await onNew.connect()
        try {
          assert.equal(await onNew.get(key), `${lock.token}!`, 'marked by the contender, which waits')
          assert.ok((await onNew.pttl(key)) > 600, 'extended on the new master')
          assert.equal(await lock.release(), true)
          assert.equal(await onNew.exists(key), 0)
        } finally {
          onNew.disconnect()
        }
        const next = await other.acquire(key)
        await next.release()
      })

      test('a multi-key lock whose keys are split by a migration (TRYAGAIN): contenders get null or ERR_LOCK_BACKEND, never the lock; held throughout', async (t) => {
        // GLIDE retries TRYAGAIN itself until its request timeout (2 s here): each
        // contender's attempt and the holder's extensions take that long, so its lease
        // must outlast the three contenders.
        const lifetimeMs = kind === 'valkey-glide' ? 12_000 : 4000
        const l = await locker({ lifetimeMs, extendIntervalMs: 500 })
        const other = await locker({ lifetimeMs })
        const tag = `{${p}split}`
        const keys = [`${tag}:a`, `${tag}:b`]
        const slot = calculateSlot(keys[0]!)
        const lock = await l.acquire(keys)
        const from = await cluster.masterOf(slot)
        const masters = [0, 1, 2].map((i) => cluster.nodes[i]!)
        const to = masters.find((m) => m.port !== from.port)!
        const idOf = async (n: typeof from) => String(await n.command('CLUSTER', 'MYID'))
        const [fromId, toId] = [await idOf(from), await idOf(to)]
        await to.command('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId)
        await from.command('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId)
        // Only the first key moves: a command on both now gets TRYAGAIN from either node.
        await from.command('MIGRATE', LOOPBACK, String(to.port), '', '0', '5000', 'KEYS', keys[0]!)
        const seen = new Map<string, number>()
        for (let i = 0; i < 3; i++) {
          const started = performance.now()
          let outcome: string
          try {
            const got = await other.tryAcquire(keys)
            outcome = got === null ? 'null' : 'GRANTED'
            await got?.release()
          } catch (error) {
            assert.ok(error instanceof BackendError, String(error))
            outcome = `${error.code}: ${error.message.slice(0, 60)}`
          }
          assert.ok(performance.now() - started < 4500, 'bounded by the attempt time')
          seen.set(outcome, (seen.get(outcome) ?? 0) + 1)
        }
        assert.equal(seen.get('GRANTED'), undefined, `a second owner: ${JSON.stringify([...seen])}`)
        // The migration completes: the second key follows, the slot is handed over.
        await from.command('MIGRATE', LOOPBACK, String(to.port), '', '0', '5000', 'KEYS', keys[1]!)
        for (const m of [to, from, ...masters.filter((n) => n !== to && n !== from)]) {
          await m.command('CLUSTER', 'SETSLOT', String(slot), 'NODE', toId)
        }
        await sleep(1200) // extensions reach the new master
        assert.equal(lock.isHeld(), true, String(lock.signal.reason))
        assert.equal(l.stats().lost, 0)
        assert.equal(await other.tryAcquire(keys), null)
        assert.equal(await lock.release(), true)
        const next = await other.acquire(keys)
        assert.equal(await next.release(), true)
        t.diagnostic(`contenders during the split: ${JSON.stringify(Object.fromEntries(seen))}`)
      })

      test('a waiter is woken by the release through sharded pub/sub', async () => {
        const [a, b] = [await locker(), await locker()]
        const master = await cluster.masterOf(calculateSlot(`${p}wake`))
        const spublished = async () =>
          Number(
            String(await master.command('INFO', 'commandstats')).match(/cmdstat_spublish:calls=(\d+)/)?.[1] ??
              0,
          )
        const spublishBefore = await spublished()
        const held = await a.acquire(`${p}wake`)
        const waiting = b.acquire(`${p}wake`, { retryIntervalMs: 5000, retryTimeoutMs: 10_000 })
        await waitFor(() => b.stats().waiting === 1)
        await sleep(50) // the subscription is in place
        const releasedAt = performance.now()
        await held.release()
        const lock = await waiting
        const after = performance.now() - releasedAt
        assert.ok(after < 200, `woken ${after.toFixed(1)} ms after the release`)
        assert.equal(b.stats().wakeups, 1)
        assert.equal(await spublished(), spublishBefore + 1, "announced with SPUBLISH on the key's master")
        await lock.release()
      })

      test('fences increase', async () => {
        const l = await locker({ fencing: true })
        let last = 0n
        for (let i = 0; i < 3; i++) {
          const lock = await l.acquire(`${p}fence`)
          assert.ok(lock.fence > last, `${lock.fence} > ${last}`)
          last = lock.fence
          await lock.release()
        }
        const multi = await l.acquire([`{${p}fence}`, `{${p}fence}:other`])
        assert.ok(multi.fence > last)
        await multi.release()
      })

      test("replicas: 1 acquires; the key is on its master's replica when acquire resolves", async () => {
        const l = await locker({ replicas: 1, replicaTimeoutMs: 500 })
        const keys = await keysOnEveryMaster(cluster, `${p}r1:`, 1)
        for (const key of [...keys, `{${p}r1}:a`]) {
          const lock = await l.acquire(key, { lifetimeMs: 5000 })
          // No polling: WAIT returned only after the replica had the write.
          const replica = await replicaOf(cluster, calculateSlot(key))
          assert.equal(await getOnReplica(replica, key), lock.token, `${key} on replica ${replica}`)
          await lock.extend()
          assert.equal(await lock.release(), true)
        }
        // Per call, over a Locker default of 0; contention is still contention.
        const [a, b] = [await locker(), await locker()]
        const held = await a.acquire(`${p}r1:per-call`, { replicas: 1 })
        assert.equal(
          await getOnReplica(await replicaOf(cluster, calculateSlot(`${p}r1:per-call`)), `${p}r1:per-call`),
          held.token,
        )
        assert.equal(await b.tryAcquire(`${p}r1:per-call`, { replicas: 1 }), null)
        await held.release()
      })

      test('replicas: 2 (each master has one replica) fails closed; the key is not left', async () => {
        const l = await locker()
        const key = `${p}r2`
        const started = performance.now()
        let error: unknown
        try {
          await l.acquire(key, { replicas: 2, replicaTimeoutMs: 300, lifetimeMs: 3000 })
        } catch (err) {
          error = err
        }
        const took = performance.now() - started
        assert.ok(error instanceof BackendError, String(error))
        assert.equal(error.code, 'ERR_LOCK_BACKEND')
        assert.equal(error.operation, 'acquire')
        assert.match(error.message, /only 1 of 2 replicas confirmed/)
        assert.ok(took >= 290 && took < 1500, `took ${took}`)
        const master = await cluster.masterOf(calculateSlot(key))
        assert.equal(await master.command('EXISTS', key), 0, 'the acquisition was undone on the master')
        assert.equal((await l.inspect(key)).isHeld, false)
        assert.equal(l.stats().held, 0)
        await assert.rejects(l.tryAcquire(key, { replicas: 2, replicaTimeoutMs: 100 }), {
          code: 'ERR_LOCK_BACKEND',
        })
        assert.equal(await master.command('EXISTS', key), 0)
        const lock = await l.acquire(key, { replicas: 1 })
        await lock.release()
      })

      test('replicas: 1 after the slot moved behind the client (stale slot map): MOVED is followed once, acquired on the new master', async () => {
        const l = await locker({ replicas: 1, replicaTimeoutMs: 1000 })
        const key = `${p}r1:moved`
        const slot = calculateSlot(key)
        // The client learns the slot map now; then the (empty) slot is handed to another master.
        const warm = await l.acquire(`{${key}}:warm`)
        await warm.release()
        const from = await cluster.masterOf(slot)
        const masters = [0, 1, 2].map((i) => cluster.nodes[i]!)
        const to = masters.find((m) => m.port !== from.port)!
        const toId = String(await to.command('CLUSTER', 'MYID'))
        const movedCount = async () =>
          Number(
            /errorstat_MOVED:count=(\d+)/.exec(String(await from.command('INFO', 'errorstats')))?.[1] ?? 0,
          )
        const movedBefore = await movedCount()
        for (const m of [to, from, ...masters.filter((n) => n !== to && n !== from)]) {
          await m.command('CLUSTER', 'SETSLOT', String(slot), 'NODE', toId)
        }
        // Replicas learn the move by gossip. Until every node agrees, a slot-map refresh
        // (which the client starts on MOVED, asking any node) may bring the old map back.
        const ownerSeenBy = async (node: (typeof cluster.nodes)[number]) => {
          const ranges = (await node.command('CLUSTER', 'SLOTS')) as [number, number, [string, number]][]
          return ranges.find(([lo, hi]) => slot >= lo && slot <= hi)?.[2][1]
        }
        await waitFor(
          async () => (await Promise.all(cluster.nodes.map(ownerSeenBy))).every((p) => p === to.port),
          { timeoutMs: 10_000, message: 'every node to see the slot on its new master' },
        )
        // GLIDE follows the MOVED itself, so its CLIENT ID after WAIT is the new master's:
        // the first attempt fails closed ("the connection changed") and the retry, on the
        // refreshed map, succeeds.
        const retryTimeoutMs = kind === 'valkey-glide' ? 3000 : 0
        const lock = await l.acquire(key, { lifetimeMs: 5000, retryTimeoutMs })
        assert.ok((await movedCount()) > movedBefore, 'the old master answered MOVED (the map was stale)')
        assert.equal(await to.command('GET', key), lock.token, 'on the new master')
        assert.equal(await from.command('CLUSTER', 'COUNTKEYSINSLOT', String(slot)), 0, 'nothing left behind')
        // The replica learns the new slot owner by gossip; until then it answers MOVED.
        const replica = await replicaOf(cluster, slot)
        await waitFor(
          () =>
            getOnReplica(replica, key).then(
              (v) => v === lock.token,
              () => false,
            ),
          {
            timeoutMs: 5000,
            message: 'the key on the new master’s replica',
          },
        )
        assert.equal(await lock.release(), true)
      })

      test('a killed subscriber connection loses no waiter', async () => {
        const [a, b] = [await locker(), await locker()]
        const key = `${p}killed-sub`
        const held = await a.acquire(key)
        const waiting = b.acquire(key, { retryIntervalMs: 5000, retryTimeoutMs: 15_000 })
        await waitFor(() => b.stats().waiting === 1)
        await sleep(50)
        const master = await cluster.masterOf(calculateSlot(key))
        const killed = Number(await master.command('CLIENT', 'KILL', 'TYPE', 'pubsub'))
        assert.ok(killed >= 1, 'the subscriber connection was killed')
        // The client re-subscribes; the waiter is told on its own and goes on waiting.
        await waitFor(async () => {
          const n = (await master.command('PUBSUB', 'SHARDNUMSUB', releaseChannel(key))) as unknown[]
          return Number(n[1]) >= 1
        })
        const releasedAt = performance.now()
        await held.release()
        const lock = await waiting
        const after = performance.now() - releasedAt
        assert.ok(after < 200, `woken ${after.toFixed(1)} ms after the release`)
        await lock.release()
      })
    })
  }
})
