import assert from 'node:assert/strict'
import { afterEach, describe, test } from 'node:test'
import type { RedisAdapter } from '../../src/adapters/adapter.js'
import { ClusterBackend, slotOf } from '../../src/backends/cluster.js'
import type { AttemptRequest } from '../../src/backends/lock-backend.js'
import { QuorumBackend } from '../../src/backends/quorum.js'
import { SingleNodeBackend as Backend } from '../../src/backends/single-node.js'
import { BackendError, InvalidArgumentError } from '../../src/errors.js'
import { ACQUIRE, RELEASE, RELEASE_SHARDED } from '../../src/scripts/index.js'
import { type Deferred, deferred, FakeAdapter } from '../helpers/fake-adapter.js'

/** An attempt request, as the Locker builds it. */
function attempt(
  keys: string[],
  token: string,
  lifetimeMs: number,
  timeoutMs: number,
  ack?: { replicas: number; timeoutMs: number },
  fencing = false,
): AttemptRequest {
  return ack === undefined
    ? { keys, token, lifetimeMs, timeoutMs, fencing }
    : { keys, token, lifetimeMs, timeoutMs, ack, fencing }
}

/** A FakeAdapter that also answers WAIT, logging it among the script calls. */
class WaitingAdapter extends FakeAdapter {
  readonly log: string[] = []
  waitAnswer: number | 'hang' = 1
  readonly waits: { replicas: number; timeoutMs: number }[] = []
  readonly hungWaits: Deferred<number>[] = []

  constructor() {
    super()
    this.handler = (call) => {
      const is = (script: { source: string; sha: string }) =>
        call.script === script.source || call.script === script.sha
      this.log.push(is(ACQUIRE) ? 'acquire' : is(RELEASE) || is(RELEASE_SHARDED) ? 'release' : '?')
      return is(ACQUIRE) ? this.acquireReply : [1, 0]
    }
  }

  acquireReply: unknown = [1, '42']

  wait(replicas: number, timeoutMs: number): Promise<number> {
    this.log.push('wait')
    this.waits.push({ replicas, timeoutMs })
    if (this.waitAnswer !== 'hang') return Promise.resolve(this.waitAnswer)
    const d = deferred<number>()
    this.hungWaits.push(d)
    return d.promise
  }
}

const adapters: WaitingAdapter[] = []
function setup(): { adapter: WaitingAdapter; backend: Backend } {
  const adapter = new WaitingAdapter()
  adapters.push(adapter)
  return { adapter, backend: new Backend(adapter) }
}

afterEach(() => {
  for (const a of adapters.splice(0)) for (const d of a.hungWaits) if (!d.settled) d.resolve(0)
})

describe('Backend.acquire with replicas', () => {
  test('no ack, or replicas 0: no WAIT', async () => {
    const { adapter, backend } = setup()
    await backend.acquire(attempt(['k'], 't', 1000, 900))
    await backend.acquire(attempt(['k'], 't', 1000, 900, { replicas: 0, timeoutMs: 100 }))
    assert.deepEqual(adapter.log, ['acquire', 'acquire'])
  })

  test('WAIT follows the script; enough replicas: acquired', async () => {
    const { adapter, backend } = setup()
    adapter.waitAnswer = 2
    const r = await backend.acquire(attempt(['k'], 't', 1000, 900, { replicas: 2, timeoutMs: 250 }))
    assert.deepEqual(r, { acquired: true, fence: 42n })
    assert.deepEqual(adapter.log, ['acquire', 'wait'])
    assert.deepEqual(adapter.waits, [{ replicas: 2, timeoutMs: 250 }])
  })

  test('contention: no WAIT', async () => {
    const { adapter, backend } = setup()
    adapter.acquireReply = [0, 500, 1]
    const r = await backend.acquire(attempt(['k'], 't', 1000, 900, { replicas: 1, timeoutMs: 250 }))
    assert.equal(r.acquired, false)
    assert.deepEqual(adapter.log, ['acquire'])
  })

  test('too few replicas: released first, then a BackendError saying how many of how many', async () => {
    const { adapter, backend } = setup()
    adapter.waitAnswer = 1
    await assert.rejects(
      backend.acquire(attempt(['k'], 't', 1000, 900, { replicas: 3, timeoutMs: 250 })),
      (err: unknown) => {
        assert.ok(err instanceof BackendError)
        assert.equal(err.operation, 'acquire')
        assert.match(err.message, /only 1 of 3 replicas/)
        return true
      },
    )
    // The release was awaited before the rejection.
    assert.deepEqual(adapter.log, ['acquire', 'wait', 'release'])
  })

  test("the server's WAIT timeout never outlasts the attempt; a hung WAIT is bounded by it", async () => {
    const { adapter, backend } = setup()
    adapter.waitAnswer = 'hang'
    // The Backend's watchdog timer is unref'd: keep the test's event loop alive.
    const keepAlive = setTimeout(() => {}, 5000)
    const started = performance.now()
    await assert.rejects(
      backend.acquire(attempt(['k'], 't', 1000, 80, { replicas: 1, timeoutMs: 500 })),
      (err: unknown) => err instanceof BackendError && err.operation === 'acquire',
    )
    const took = performance.now() - started
    clearTimeout(keepAlive)
    assert.ok(took >= 70 && took < 400, `took ${took}`)
    assert.ok((adapter.waits[0]?.timeoutMs ?? 0) <= 80, `WAIT timeout ${adapter.waits[0]?.timeoutMs}`)
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(adapter.log, ['acquire', 'wait', 'release'])
  })

  test('a WAIT error: released, BackendError', async () => {
    const { adapter, backend } = setup()
    adapter.wait = () => Promise.reject(new Error('ERR WAIT cannot be used with replica instances'))
    await assert.rejects(
      backend.acquire(attempt(['k'], 't', 1000, 900, { replicas: 1, timeoutMs: 100 })),
      (err: unknown) => err instanceof BackendError && /WAIT cannot/.test(err.message),
    )
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(adapter.log, ['acquire', 'release'])
  })
})

/** A WaitingAdapter that answers CLIENT ID from a list (a reconnect changes it). */
class IdentifiedAdapter extends WaitingAdapter {
  ids: unknown[] = [7, 7]

  connectionId(): Promise<unknown> {
    this.log.push('id')
    const id = this.ids.shift()
    return id instanceof Error ? Promise.reject(id) : Promise.resolve(id)
  }
}

describe('Backend.acquire with replicas: the connection must not change before WAIT', () => {
  const ack = { replicas: 1, timeoutMs: 100 }
  const replyError = () => Object.assign(new Error('NOPERM no CLIENT'), { name: 'ReplyError' })

  test('CLIENT ID before the acquisition and after WAIT; the same: confirmed', async () => {
    const adapter = new IdentifiedAdapter()
    adapter.isReplyError = (err) => err instanceof Error && err.name === 'ReplyError'
    adapters.push(adapter)
    assert.deepEqual(await new Backend(adapter).acquire(attempt(['k'], 't', 1000, 900, ack)), {
      acquired: true,
      fence: 42n,
    })
    assert.deepEqual(adapter.log, ['id', 'acquire', 'wait', 'id'])
  })

  test('a different connection after WAIT (a reconnect resent it): undone, ERR_LOCK_BACKEND', async () => {
    const adapter = new IdentifiedAdapter()
    adapters.push(adapter)
    adapter.ids = [7, 8]
    await assert.rejects(
      new Backend(adapter).acquire(attempt(['k'], 't', 1000, 900, ack)),
      (err: unknown) => {
        assert.ok(err instanceof BackendError && err.operation === 'acquire')
        assert.match(err.message, /connection changed/)
        return true
      },
    )
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(adapter.log, ['id', 'acquire', 'wait', 'id', 'release'])
    // The id lost with the connection: unknown, so also undone.
    adapter.ids = [7, new Error('Connection is closed.')]
    await assert.rejects(
      new Backend(adapter).acquire(attempt(['k'], 't2', 1000, 900, ack)),
      /connection changed/,
    )
  })

  test('CLIENT ID refused by an ACL (a reply error): the check is skipped', async () => {
    const adapter = new IdentifiedAdapter()
    adapter.isReplyError = (err) => err instanceof Error && err.name === 'ReplyError'
    adapters.push(adapter)
    adapter.ids = [replyError(), replyError()]
    assert.equal((await new Backend(adapter).acquire(attempt(['k'], 't', 1000, 900, ack))).acquired, true)
  })
})

/** A pooled client (node-redis Sentinel): no WAIT of its own, lends one connection with `pinned`. */
class PooledAdapter extends WaitingAdapter {
  readonly lent = new WaitingAdapter()
  lend: 'now' | 'hang' = 'now'
  override readonly wait = undefined as unknown as WaitingAdapter['wait']

  pinned<T>(fn: (adapter: RedisAdapter) => Promise<T>): Promise<T> {
    this.log.push('lend')
    if (this.lend === 'hang') return new Promise(() => {})
    return fn(this.lent)
  }
}

describe('Backend.acquire with replicas on a pooled client', () => {
  test('the acquisition and its WAIT go on one lent connection; without replicas, the pool', async () => {
    const pool = new PooledAdapter()
    adapters.push(pool, pool.lent)
    const backend = new Backend(pool)
    assert.deepEqual(await backend.acquire(attempt(['k'], 't', 1000, 900, { replicas: 1, timeoutMs: 100 })), {
      acquired: true,
      fence: 42n,
    })
    assert.deepEqual(pool.log, ['lend'])
    assert.deepEqual(pool.lent.log, ['acquire', 'wait'])
    await backend.acquire(attempt(['k'], 't2', 1000, 900))
    assert.deepEqual(pool.log, ['lend', 'acquire'])
    // Too few replicas on the lent connection: undone there, ERR_LOCK_BACKEND.
    pool.lent.waitAnswer = 0
    await assert.rejects(
      backend.acquire(attempt(['k'], 't3', 1000, 900, { replicas: 1, timeoutMs: 100 })),
      /only 0 of 1/,
    )
    assert.deepEqual(pool.lent.log, ['acquire', 'wait', 'acquire', 'wait', 'release'])
  })

  test('no connection lent within the attempt: ERR_LOCK_BACKEND in time, nothing sent', async () => {
    const pool = new PooledAdapter()
    adapters.push(pool, pool.lent)
    pool.lend = 'hang'
    const keepAlive = setTimeout(() => {}, 5000) // the call watchdog's timer is unref'd
    const started = performance.now()
    await assert.rejects(
      new Backend(pool).acquire(attempt(['k'], 't', 1000, 80, { replicas: 1, timeoutMs: 50 })),
      (err: unknown) => err instanceof BackendError && err.operation === 'acquire',
    )
    clearTimeout(keepAlive)
    assert.ok(performance.now() - started < 500)
    assert.deepEqual(pool.lent.log, [])
  })
})

/** A cluster adapter (the client's routing) that hands out one WaitingAdapter per slot master. */
class FakeClusterAdapter extends WaitingAdapter {
  override topology = 'cluster' as const
  readonly masters = new Map<number, WaitingAdapter>()
  readonly asked: number[] = []
  slotMasterAnswer: 'ok' | 'reject' | 'hang' = 'ok'

  slotMaster(slot: number): Promise<RedisAdapter> {
    this.asked.push(slot)
    if (this.slotMasterAnswer === 'reject') return Promise.reject(new Error('slot map not loaded'))
    if (this.slotMasterAnswer === 'hang') return new Promise(() => {})
    let master = this.masters.get(slot)
    if (!master) {
      master = new WaitingAdapter()
      adapters.push(master)
      this.masters.set(slot, master)
    }
    return Promise.resolve(master)
  }
}

describe('ClusterBackend.acquire with replicas', () => {
  function clusterSetup(): { routed: FakeClusterAdapter; backend: ClusterBackend } {
    const routed = new FakeClusterAdapter()
    adapters.push(routed)
    return { routed, backend: new ClusterBackend(routed) }
  }
  const ack = { replicas: 1, timeoutMs: 250 }

  test("script and WAIT both go on the slot master's connection, none through the routing", async () => {
    const { routed, backend } = clusterSetup()
    const r = await backend.acquire(attempt(['{a}x', '{a}y'], 't', 1000, 900, ack))
    assert.deepEqual(r, { acquired: true, fence: 42n })
    assert.deepEqual(routed.asked, [slotOf('{a}x')])
    const master = routed.masters.get(slotOf('{a}x'))
    assert.deepEqual(master?.log, ['acquire', 'wait'])
    assert.deepEqual(routed.log, [])
    // The Backend on that connection is kept: its script cache too (EVALSHA from then on).
    await backend.acquire(attempt(['{a}x'], 't2', 1000, 900, ack))
    assert.deepEqual(master?.log, ['acquire', 'wait', 'acquire', 'wait'])
    assert.deepEqual(
      master?.calls.map((c) => c.command),
      ['eval', 'evalsha'],
    )
    // Without replicas: routed by the client, no WAIT.
    await backend.acquire(attempt(['{a}x'], 't3', 1000, 900, { replicas: 0, timeoutMs: 250 }))
    assert.deepEqual(routed.log, ['acquire'])
    assert.equal(routed.asked.length, 2)
  })

  test('too few replicas: released on that master, then ERR_LOCK_BACKEND', async () => {
    const { routed, backend } = clusterSetup()
    const slot = slotOf('k')
    await routed.slotMaster(slot)
    const master = routed.masters.get(slot) as WaitingAdapter
    master.waitAnswer = 1
    await assert.rejects(
      backend.acquire(attempt(['k'], 't', 1000, 900, { replicas: 2, timeoutMs: 100 })),
      (err) => {
        assert.ok(err instanceof BackendError && err.operation === 'acquire')
        assert.match(err.message, /only 1 of 2 replicas/)
        return true
      },
    )
    assert.deepEqual(master.log, ['acquire', 'wait', 'release'])
  })

  test('MOVED from the master: released through the routing (which refreshes the slot map), then tried once more', async () => {
    const { routed, backend } = clusterSetup()
    const slot = slotOf('k')
    await routed.slotMaster(slot)
    const master = routed.masters.get(slot) as WaitingAdapter
    const answer = master.handler
    let redirects = 1
    // The old master redirects everything (the attempt and its clean-up release) while
    // `redirects` acquisitions are left to redirect.
    master.handler = (call) => {
      if (redirects > 0) {
        if (call.script === ACQUIRE.source || call.script === ACQUIRE.sha) redirects--
        throw new Error(`MOVED ${slot} 127.0.0.1:7001`)
      }
      return answer?.(call)
    }
    assert.deepEqual(await backend.acquire(attempt(['k'], 't', 1000, 900, ack)), {
      acquired: true,
      fence: 42n,
    })
    assert.deepEqual(routed.log, ['release'], 'the routed release came before the second try')
    // (Besides the redirected attempt's own fire-and-forget clean-up release.)
    assert.deepEqual(
      master.log.filter((op) => op !== 'release'),
      ['acquire', 'wait'],
      'the retry, on the refreshed master',
    )
    assert.deepEqual(routed.asked, [slot, slot, slot])
    // Still MOVED on the second try: ERR_LOCK_BACKEND, released through the routing each time.
    redirects = 2
    await assert.rejects(backend.acquire(attempt(['k'], 't2', 1000, 900, ack)), (err) => {
      assert.ok(err instanceof BackendError && /MOVED/.test(err.message))
      return true
    })
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(routed.log, ['release', 'release', 'release'])
  })

  test('ASK from the master (slot mid-migration): ERR_LOCK_BACKEND at once, released through the routing', async () => {
    const { routed, backend } = clusterSetup()
    const slot = slotOf('k')
    await routed.slotMaster(slot)
    const master = routed.masters.get(slot) as WaitingAdapter
    master.handler = () => {
      throw new Error(`ASK ${slot} 127.0.0.1:7001`)
    }
    await assert.rejects(backend.acquire(attempt(['k'], 't', 1000, 900, ack)), /ASK/)
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(routed.log, ['release'])
    assert.deepEqual(routed.asked, [slot, slot])
  })

  test('no known master, or none within the timeout: ERR_LOCK_BACKEND, nothing sent', async () => {
    const { routed, backend } = clusterSetup()
    routed.slotMasterAnswer = 'reject'
    await assert.rejects(backend.acquire(attempt(['k'], 't', 1000, 900, ack)), (err) => {
      assert.ok(err instanceof BackendError && err.operation === 'acquire')
      assert.match(err.message, /master of slot \d+: slot map not loaded/)
      return true
    })
    routed.slotMasterAnswer = 'hang'
    const started = performance.now()
    await assert.rejects(
      backend.acquire(attempt(['k'], 't', 1000, 60, ack)),
      /no connection within (5[0-9]|60) ms/,
    ) // the budget left, 60 ms less what the lookup took
    assert.ok(performance.now() - started < 500)
    assert.deepEqual(routed.log, [])
    assert.equal(routed.masters.size, 0)
  })
})

describe('backends that cannot wait for replicas', () => {
  const ack = { replicas: 1, timeoutMs: 100 }
  const isUnsupported = (where: RegExp) => (err: unknown) =>
    err instanceof InvalidArgumentError && err.argument === 'replicas' && where.test(err.message)

  test('a cluster adapter without slot masters rejects replicas > 0 without sending anything', async () => {
    const adapter = new FakeAdapter()
    await assert.rejects(
      new ClusterBackend(adapter).acquire(attempt(['k'], 't', 1000, 900, ack)),
      isUnsupported(/Cluster/),
    )
    assert.equal(adapter.calls.length, 0)
  })

  test('a quorum rejects replicas > 0 without sending anything', async () => {
    const adapter = new FakeAdapter()
    const quorum = new QuorumBackend([new Backend(adapter)])
    await assert.rejects(quorum.acquire(attempt(['k'], 't', 1000, 900, ack)), isUnsupported(/quorum/))
    assert.equal(adapter.calls.length, 0)
  })

  test('an adapter without WAIT rejects replicas > 0 without sending anything', async () => {
    const adapter = new FakeAdapter()
    await assert.rejects(
      new Backend(adapter).acquire(attempt(['k'], 't', 1000, 900, ack)),
      isUnsupported(/client/),
    )
    assert.equal(adapter.calls.length, 0)
  })
})

describe('Backend.acquire cleanup after a failed attempt', () => {
  for (const callerUndoes of [false, true]) {
    test(`an attempt that failed is released by the backend${callerUndoes ? ' unless the caller undoes it (a quorum node)' : ''}`, async () => {
      const { adapter, backend } = setup()
      adapter.acquireReply = undefined
      const failing = adapter.handler
      adapter.handler = (call) => {
        const reply = failing?.(call)
        if (reply === undefined) throw new Error('ERR connection lost')
        return reply
      }
      await assert.rejects(backend.acquire({ ...attempt(['k'], 't', 1000, 900), callerUndoes }), BackendError)
      await new Promise((r) => setImmediate(r))
      assert.deepEqual(adapter.log, callerUndoes ? ['acquire'] : ['acquire', 'release'])
    })
  }
})
