import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Redis } from 'ioredis'
import { TickCork } from '../../src/adapters/tick-cork.js'
import { nodeTimeoutMs } from '../../src/backends/quorum.js'
import { type Lock, Locker, LockLostError, QuorumError } from '../../src/index.js'
import { holdersKey } from '../../src/internal/keys.js'
import { withoutWaitingMark } from '../../src/scripts/index.js'
import { rejectsWith } from '../helpers/assertions.js'
import { type AnyClient, type ClientKind, type ConnectedClient, connectClient } from '../helpers/matrix.js'
import { type RedisServer, startRedis } from '../helpers/redis-server.js'
import { sleep, waitFor } from '../helpers/wait.js'
import { countWrites } from '../helpers/writes.js'

const servers: RedisServer[] = []
const admins: Redis[] = []
const open = new Set<ConnectedClient>()
const lockers = new Set<Locker>()

before(async () => {
  servers.push(...(await Promise.all([0, 1, 2, 3, 4].map(() => startRedis()))))
  for (const s of servers) {
    const admin = new Redis(s.url, { maxRetriesPerRequest: 1, retryStrategy: () => 20, lazyConnect: true })
    admin.on('error', () => {})
    admins.push(admin)
  }
})

after(async () => {
  for (const a of admins) a.disconnect()
  await Promise.all(servers.map((s) => s.stop()))
})

/** Clients of `kind` to the first `n` servers; closed with the test's lockers by `cleanUp`. */
async function clients(n: number, kind: ClientKind = 'ioredis'): Promise<AnyClient[]> {
  const connected = await Promise.all(servers.slice(0, n).map((s) => connectClient(kind, s.url)))
  for (const c of connected) open.add(c)
  return connected.map((c) => c.client)
}

function locker(client: AnyClient, options?: ConstructorParameters<typeof Locker>[1]): Locker {
  const l = new Locker(client, options)
  lockers.add(l)
  return l
}

/** Closes every Locker and client of the test and brings every server back up. */
async function cleanUp(): Promise<void> {
  for (const s of servers) {
    if (!s.running) await s.restart()
    else s.resume()
  }
  await Promise.all([...lockers].map((l) => l.close()))
  lockers.clear()
  await Promise.all([...open].map((c) => c.close()))
  open.clear()
}

/** The token stored on each of the first `n` nodes, less any waiting mark. */
async function values(key: string, n: number): Promise<(string | null)[]> {
  const stored = await Promise.all(admins.slice(0, n).map((a) => a.get(key)))
  return stored.map((v) => (v === null ? null : withoutWaitingMark(v)))
}

function lostReason(lock: Lock): string | undefined {
  const reason = lock.signal.reason as unknown
  return reason instanceof LockLostError ? reason.reason : undefined
}

for (const kind of ['ioredis', 'node-redis'] as const) {
  describe(`quorum of 3 [${kind}]`, () => {
    after(cleanUp)

    test('acquire sets the key on every node; release deletes it on every node', async () => {
      const l = locker(await clients(3, kind), { prefix: `q1${kind}:` })
      const lock = await l.acquire('k', { lifetimeMs: 3000 })
      assert.deepEqual(await values(`q1${kind}:k`, 3), [lock.token, lock.token, lock.token])
      for (const a of admins.slice(0, 3)) {
        const pttl = await a.pttl(`q1${kind}:k`)
        assert.ok(pttl > 2500 && pttl <= 3000, `pttl ${pttl}`)
      }
      const fenced = await l.acquire('f', { fencing: true })
      assert.equal(typeof fenced.fence, 'bigint')
      await fenced.release()
      const seen = await l.inspect('k')
      assert.equal(seen.token, lock.token)
      assert.ok(seen.remainingMs !== null && seen.remainingMs > 2000, `remaining ${seen.remainingMs}`)
      assert.equal(await lock.release(), true)
      assert.deepEqual(await values(`q1${kind}:k`, 3), [null, null, null])
      assert.equal((await l.inspect('k')).isHeld, false)
    })

    test('24 acquisitions of one turn leave in a few writes per member (issue 14)', async (t) => {
      const l = locker(await clients(3, kind), { prefix: `qt${kind}:`, lifetimeMs: 30_000 })
      await (await l.acquire('warm')).release()
      const keys = Array.from({ length: 24 }, (_, i) => `k${i}`)
      const acquired = await countWrites(() => Promise.all(keys.map((k) => l.acquire(k))))
      // ioredis: batches of 1, 4, 16 and 3 per member; node-redis: a turn per member.
      assert.ok(acquired.writes <= 12, `${acquired.writes} writes for 24 acquisitions on 3 members`)
      assert.deepEqual(await values(`qt${kind}:k7`, 3), Array(3).fill(acquired.result[7]!.token))
      await Promise.all(acquired.result.map((lock) => lock.release()))
      if (kind === 'ioredis') {
        t.mock.method(TickCork.prototype, 'enter', () => false)
        const again = await countWrites(() => Promise.all(keys.map((k) => l.acquire(k))))
        assert.ok(again.writes >= 72, `negative control: ${again.writes} writes without TickCork`)
        await Promise.all(again.result.map((lock) => lock.release()))
      }
    })

    test('two quorum Lockers exclude each other; a waiter is woken by the release message', async () => {
      const a = locker(await clients(3, kind))
      const b = locker(await clients(3, kind))
      const lock = await a.acquire('q2')
      assert.equal(await b.tryAcquire('q2'), null)
      // Contention with every node healthy is contention, not a quorum failure.
      await rejectsWith(
        b.acquire('q2', { retryTimeoutMs: 200, retryIntervalMs: 50 }),
        'ERR_LOCK_ACQUIRE_TIMEOUT',
      )
      const waiting = b.acquire('q2', { retryIntervalMs: 10_000, lifetimeMs: 20_000 })
      await sleep(150) // subscribed and parked
      const releasedAt = performance.now()
      await lock.release()
      const next = await waiting
      const latency = performance.now() - releasedAt
      // The holder's TTL (1–2 s) bounds the wait otherwise: well under it means the message woke it.
      assert.ok(latency < 500, `woken after ${latency} ms: the release message was not heard`)
      assert.ok(b.stats().wakeups >= 1)
      await next.release()
    })
  })
}

describe('quorum of 3 [ioredis] under faults', () => {
  after(cleanUp)

  test('one node SIGKILLed: acquire, extend, wake-up and release still work', async () => {
    const l = locker(await clients(3), { prefix: 'q3:' })
    const waiter = locker(await clients(3), { prefix: 'q3:' })
    await servers[2]?.kill()
    const lock = await l.acquire('k', { lifetimeMs: 400 })
    const waiting = waiter.acquire('k', { retryIntervalMs: 10_000, lifetimeMs: 400 })
    await sleep(900) // two extension rounds and more
    assert.ok(lock.isHeld(), String(lock.signal.reason))
    assert.deepEqual(await values('q3:k', 2), [lock.token, lock.token])
    const releasedAt = performance.now()
    assert.equal(await lock.release(), true)
    const next = await waiting
    // The holder's 400 ms lease bounds the wait otherwise.
    assert.ok(performance.now() - releasedAt < 200, 'the waiter was not woken by the release message')
    assert.deepEqual(await values('q3:k', 2), [next.token, next.token])
    await next.release()
    await cleanUp()
  })

  test('ioredis and node-redis clients can be mixed', async () => {
    const [a, , c] = await clients(3)
    const [, b] = await clients(2, 'node-redis')
    const l = locker([a, b, c], { prefix: 'q11:' })
    const lock = await l.acquire('k')
    assert.deepEqual(await values('q11:k', 3), [lock.token, lock.token, lock.token])
    await lock.release()
    assert.deepEqual(await values('q11:k', 3), [null, null, null])
    await cleanUp()
  })

  test('one node SIGSTOPped costs at most the per-node timeout', async () => {
    const l = locker(await clients(3), { prefix: 'q4:' })
    await (await l.acquire('warm')).release() // scripts cached, connections ready
    servers[1]?.pause()
    const bound = nodeTimeoutMs(1000, 1000) + 20 + 60 // per-node timeout, watchdog slack, scheduling
    const started = performance.now()
    const lock = await l.acquire('k', { lifetimeMs: 1000 })
    const took = performance.now() - started
    assert.ok(took < bound, `acquire took ${took} ms with a hung node (bound ${bound})`)
    await sleep(1200)
    assert.ok(lock.isHeld(), String(lock.signal.reason))
    assert.equal(await lock.release(), true)
    await cleanUp()
  })

  test('a majority down: acquire fails with ERR_LOCK_QUORUM and every outcome, within its bound', async () => {
    const l = locker(await clients(3), { prefix: 'q5:' })
    await (await l.acquire('warm')).release()
    servers[0]?.pause()
    servers[1]?.pause()
    const started = performance.now()
    // A quorum that cannot decide is transient: acquire retries it until retryTimeoutMs,
    // then rejects with the last QuorumError; tryAcquire reports it at once.
    const once = await rejectsWith(l.tryAcquire('k', { lifetimeMs: 1000 }), 'ERR_LOCK_QUORUM')
    const tookOnce = performance.now() - started
    assert.ok(tookOnce < nodeTimeoutMs(1000, 1000) + 150, `tryAcquire failed after ${tookOnce} ms`)
    assert.ok(once instanceof QuorumError)
    const startedRetrying = performance.now()
    const err = await rejectsWith(
      l.acquire('k', { lifetimeMs: 1000, retryTimeoutMs: 400 }),
      'ERR_LOCK_QUORUM',
    )
    const took = performance.now() - startedRetrying
    assert.ok(took >= 300 && took < 400 + nodeTimeoutMs(1000, 1000) + 200, `failed after ${took} ms`)
    assert.ok(err instanceof QuorumError)
    assert.equal(err.operation, 'acquire')
    assert.deepEqual(
      [...err.outcomes].sort((x, y) => x.node - y.node).map((o) => o.outcome),
      ['timeout', 'timeout', 'acquired'],
    )
    // What the failed attempt got is released again.
    await waitFor(async () => (await admins[2]?.exists('q5:k')) === 0, {
      message: 'partial acquisition released',
    })
    await cleanUp()
  })

  test('a node that grants late, after a majority did, keeps the key: the lease is on every node', async () => {
    const l = locker(await clients(3), { prefix: 'q12:' })
    await (await l.acquire('warm')).release()
    servers[2]?.pause()
    // Lease 2 s: a per-node bound of 200 ms; the first extension comes after 1 s.
    const lock = await l.acquire('k', { lifetimeMs: 2000 })
    await sleep(nodeTimeoutMs(2000, 2000))
    servers[2]?.resume() // the stopped node now runs the SET it was sent
    await sleep(100)
    assert.deepEqual(await values('q12:k', 3), [lock.token, lock.token, lock.token])
    assert.equal(await lock.release(), true)
    assert.deepEqual(await values('q12:k', 3), [null, null, null])
    // An attempt that fails as a whole is undone on every node, the late ones included.
    servers[1]?.pause()
    servers[2]?.pause()
    await rejectsWith(l.tryAcquire('gone', { lifetimeMs: 2000 }), 'ERR_LOCK_QUORUM')
    servers[1]?.resume()
    servers[2]?.resume()
    // Well inside the 2 s lease: freed by a release, not by the TTL.
    await waitFor(async () => (await values('q12:gone', 3)).every((v) => v === null), {
      timeoutMs: 800,
      message: 'a failed attempt left a key behind',
    })
    await cleanUp()
  })

  test('a holder is told by its deadline when a majority stops answering', async () => {
    const l = locker(await clients(3), { prefix: 'q6:' })
    const lock = await l.acquire('k', { lifetimeMs: 600 })
    const deadline = performance.now() + lock.remainingMs()
    const lost = new Promise<number>((resolve) =>
      lock.signal.addEventListener('abort', () => resolve(performance.now()), { once: true }),
    )
    servers[0]?.pause()
    servers[2]?.pause()
    const at = await lost
    assert.ok(at <= deadline + 30, `told ${Math.round(at - deadline)} ms after the local deadline`)
    assert.equal(lostReason(lock), 'unreachable')
    await cleanUp()
  })

  test('a partial acquisition is released on the nodes it got', async () => {
    const [a, b, c] = await clients(3)
    const l = locker([a, b, c], { prefix: 'q7:' })
    const single0 = locker(a, { prefix: 'q7:' })
    const single1 = locker(b, { prefix: 'q7:' })
    // Held elsewhere on one node: the quorum still wins the other two.
    const other = await single0.acquire('one')
    const lock = await l.acquire('one')
    assert.deepEqual(await values('q7:one', 3), [other.token, lock.token, lock.token])
    await lock.release()
    assert.deepEqual(await values('q7:one', 3), [other.token, null, null])
    // Held elsewhere on two nodes: contention, and the third node is let go again.
    const o0 = await single0.acquire('two')
    const o1 = await single1.acquire('two')
    assert.equal(await l.tryAcquire('two'), null)
    await waitFor(async () => (await admins[2]?.exists('q7:two')) === 0, { message: 'node 2 released' })
    assert.deepEqual(await values('q7:two', 2), [o0.token, o1.token])
    await cleanUp()
  })

  test('the same server twice, the same client twice, or no client at all is rejected', async () => {
    const [a] = await clients(1)
    const again = await connectClient('ioredis', servers[0]?.url as string)
    open.add(again)
    const [, b] = await clients(2)
    assert.throws(() => new Locker([]), { code: 'ERR_LOCK_INVALID_ARGUMENT' })
    assert.throws(() => new Locker([a, b, a]), { code: 'ERR_LOCK_INVALID_ARGUMENT' })
    const l = locker([a, b, again.client])
    const err = await rejectsWith(l.acquire('q8'), 'ERR_LOCK_INVALID_ARGUMENT')
    assert.match(err.message, /clients 0 and 2/)
    assert.equal(await admins[0]?.exists('q8'), 0)
    await cleanUp()
  })
})

describe('quorum of 5 [ioredis]', () => {
  after(cleanUp)

  test('two nodes down (one killed, one stopped): operations still succeed', async () => {
    const l = locker(await clients(5), { prefix: 'q9:' })
    await (await l.acquire('warm')).release()
    await servers[0]?.kill()
    servers[3]?.pause()
    const started = performance.now()
    const lock = await l.acquire('k', { lifetimeMs: 500 })
    const took = performance.now() - started
    assert.ok(took < nodeTimeoutMs(500, 500) + 80, `acquire took ${took} ms`)
    await sleep(800)
    assert.ok(lock.isHeld(), String(lock.signal.reason))
    assert.equal(await lock.release(), true)
    await cleanUp()
  })

  test('three nodes down: ERR_LOCK_QUORUM; healthy contention: ERR_LOCK_ACQUIRE_TIMEOUT', async () => {
    const a = locker(await clients(5), { prefix: 'q10:' })
    const b = locker(await clients(5), { prefix: 'q10:' })
    const lock = await a.acquire('k')
    await rejectsWith(
      b.acquire('k', { retryTimeoutMs: 300, retryIntervalMs: 50 }),
      'ERR_LOCK_ACQUIRE_TIMEOUT',
    )
    await lock.release()
    for (const i of [1, 2, 4]) servers[i]?.pause()
    const err = await rejectsWith(b.acquire('k', { lifetimeMs: 500 }), 'ERR_LOCK_QUORUM')
    assert.equal((err as QuorumError).outcomes.length, 5)
    await cleanUp()
  })
})

describe('quorum: a long-held lock survives one-node-at-a-time restarts (heal on extend)', () => {
  after(cleanUp)

  for (const n of [3, 5]) {
    test(`${n} nodes, each restarted empty in turn: held throughout, on every node at the end`, async () => {
      const l = locker(await clients(n), { prefix: `heal${n}:` })
      const lock = await l.acquire('k', { lifetimeMs: 600 })
      for (const server of servers.slice(0, n)) {
        await server.restart() // empty: no persistence
        // Two extension rounds: the restarted node gets the key back from the extension.
        await sleep(700)
        assert.ok(lock.isHeld(), `lost after a restart: ${String(lock.signal.reason)}`)
      }
      await sleep(400)
      assert.ok(lock.isHeld(), String(lock.signal.reason))
      assert.deepEqual(await values(`heal${n}:k`, n), Array(n).fill(lock.token))
      assert.equal(await lock.release(), true)
      await cleanUp()
    })
  }

  test('3 nodes, a shared holder: re-added to the holders set of each restarted node, never made an exclusive holder', async () => {
    const l = locker(await clients(3), { prefix: 'healS:' })
    const other = locker(await clients(3), { prefix: 'healS:' })
    const lock = await l.acquire('k', { lifetimeMs: 600, shared: true })
    const beside = await other.acquire('k', { lifetimeMs: 600, shared: true })
    for (const server of servers.slice(0, 3)) {
      await server.restart()
      await sleep(700)
      assert.ok(lock.isHeld() && beside.isHeld(), String(lock.signal.reason ?? beside.signal.reason))
    }
    await sleep(400)
    assert.deepEqual(await values('healS:k', 3), Array(3).fill('arl1.shared'))
    for (const admin of admins.slice(0, 3)) {
      assert.deepEqual(
        (await admin.zrange(holdersKey('healS:k'), '0', '-1')).sort(),
        [lock.token, beside.token].sort(),
      )
    }
    assert.equal(await lock.release(), true)
    assert.equal(await beside.release(), true)
    await cleanUp()
  })
})
