import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Redis } from 'ioredis'
import { createSentinel } from 'redis'
import { Locker, type RedisClient } from '../../src/index.js'
import { CLIENT_KINDS, type ClientKind, IOREDIS_DISCONNECT_TIMEOUT } from '../helpers/matrix.js'
import { type RedisServer, startRedis } from '../helpers/redis-server.js'
import { MASTER_NAME, Sentinel, startReplica } from '../helpers/sentinel.js'
import { waitFor } from '../helpers/wait.js'

async function role(server: RedisServer): Promise<string> {
  const reply = (await server.command('ROLE')) as unknown[]
  return String(reply[0])
}

/** A SENTINEL REPLICAS entry (a flat name, value list) as an object. */
function fields(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string
  return out
}

// Valkey GLIDE has no Sentinel client.
for (const kind of CLIENT_KINDS) if (kind !== 'valkey-glide') sentinelSuite(kind)

function sentinelSuite(kind: ClientKind): void {
  describe(`Sentinel failover with replica-acknowledged locks [${kind}]`, () => {
    let master: RedisServer
    let replica: RedisServer
    let sentinels: Sentinel[] = []
    const closers: (() => unknown)[] = []

    before(async () => {
      master = await startRedis()
      replica = await startReplica(master)
      sentinels = await Promise.all([0, 1, 2].map(() => Sentinel.start(master.port)))
      // Every sentinel must know the replica before a failover can pick it.
      await waitFor(
        async () => {
          for (const s of sentinels) {
            const replicas = (await s.command('SENTINEL', 'REPLICAS', MASTER_NAME)) as string[][]
            const ready = replicas.some((flat) => {
              const r = fields(flat)
              return (
                r.port === String(replica.port) && r.flags === 'slave' && r['master-link-status'] === 'ok'
              )
            })
            if (!ready) return false
          }
          return true
        },
        { timeoutMs: 15_000, message: 'the sentinels to discover the replica' },
      )
    })

    after(async () => {
      for (const close of closers) await close()
      await Promise.all(sentinels.map((s) => s.stop()))
      await replica?.stop()
      await master?.stop()
    })

    /** A client that finds the master through the sentinels (ioredis, or node-redis `createSentinel`). */
    const sentinelClient = async (): Promise<RedisClient> => {
      const nodes = sentinels.map((s) => ({ host: s.host, port: s.port }))
      if (kind === 'ioredis') {
        const client = new Redis({ sentinels: nodes, name: MASTER_NAME, ...IOREDIS_DISCONNECT_TIMEOUT })
        client.on('error', () => {})
        closers.push(() => client.disconnect())
        return client
      }
      const client = createSentinel({ name: MASTER_NAME, sentinelRootNodes: nodes })
      client.on('error', () => {})
      await client.connect()
      closers.push(() => client.destroy().catch(() => {}))
      return client as unknown as RedisClient
    }

    test('a lock acquired with replicas: 1 survives a failover and stays extendable', async (t) => {
      // A 20 s lease: the failover (1 s down-after, promotion, the client finding the new
      // master) must fit in it. On a loaded 2-core machine node-redis' sentinel client once
      // took longer than a 10 s lease left (CI, test files two at a time).
      const holder = new Locker(await sentinelClient(), { prefix: 'sf:', replicas: 1, lifetimeMs: 20_000 })
      const lock = await holder.acquire('k')
      assert.equal(await replica.command('GET', 'sf:k'), lock.token, 'confirmed by the replica')
      // A waiter that subscribed before the failover, on a second key (20 s lease, so only a
      // release message, or a retry after the subscriber noticed the failover, wakes it).
      const early = new Locker(await sentinelClient(), { prefix: 'sf:' })
      const held2 = await holder.acquire('k2', { lifetimeMs: 20_000 })
      const earlyWaiter = early.acquire('k2', { retryIntervalMs: 60_000, retryTimeoutMs: 60_000 })
      earlyWaiter.catch(() => {}) // its outcome is read at the end; no unhandled rejection meanwhile
      await new Promise((r) => setTimeout(r, 300))

      // The master crashes: what the lock must survive. (A SENTINEL FAILOVER of a live
      // master leaves both servers masters for many seconds, until the sentinels demote
      // the old one, and the holder keeps extending on the old one meanwhile.)
      await master.kill()
      const killedAt = performance.now()
      await waitFor(
        async () => {
          if ((await role(replica)) !== 'master') return false
          for (const s of sentinels) {
            const addr = (await s.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)) as string[]
            if (addr[1] !== String(replica.port)) return false
          }
          return true
        },
        { timeoutMs: 20_000, intervalMs: 100, message: 'the sentinels to promote the replica' },
      )
      t.diagnostic(
        `the sentinels promoted the replica ${Math.round(performance.now() - killedAt)} ms after the crash`,
      )
      // The promoted replica holds the key with the holder's token and a live lease.
      assert.equal(await replica.command('GET', 'sf:k'), lock.token)
      const left = Number(await replica.command('PTTL', 'sf:k'))
      assert.ok(left > 0, `pttl ${left}`)

      // Once ioredis has asked the sentinels for the new master, an extension re-arms the
      // lease there: the holder never lost the lock.
      await waitFor(
        async () => {
          const before = Number(await replica.command('PTTL', 'sf:k'))
          await lock.extend()
          return Number(await replica.command('PTTL', 'sf:k')) > before
        },
        { timeoutMs: 15_000, intervalMs: 200, message: 'an extension on the new master' },
      )
      t.diagnostic(
        `an extension landed on the new master ${Math.round(performance.now() - killedAt)} ms after the crash`,
      )
      assert.ok(lock.isHeld())
      assert.equal(lock.signal.aborted, false)

      // Nobody else gets it through the new master.
      const other = new Locker(await sentinelClient(), { prefix: 'sf:' })
      assert.equal(await other.tryAcquire('k', { replicas: 0 }), null)

      // A waiter on the new master is woken by the release (pub/sub through the sentinel client).
      const waiting = other.acquire('k', { retryIntervalMs: 10_000, retryTimeoutMs: 10_000, replicas: 0 })
      await new Promise((r) => setTimeout(r, 200))
      const releasedAt = performance.now()
      assert.equal(await lock.release(), true)
      const next = await waiting
      assert.ok(performance.now() - releasedAt < 1500, 'woken by the release, not the retry interval')
      assert.equal(await next.release(), true)
      assert.equal(await replica.command('EXISTS', 'sf:k'), 0)

      // The waiter from before the failover: re-subscribed on the new master, it is woken
      // by the release there, or by the retry the subscriber's reconnect triggers
      // (ioredis: up to its 2 s reconnect back-off), never by its 20 s TTL or 60 s retry
      // interval. A retry that meets the failover itself (its client not reconnected
      // yet) is a transient failure: ridden out within its retryTimeoutMs, never the end.
      const released2At = performance.now()
      assert.equal(await held2.release(), true)
      const got2 = await earlyWaiter
      const took2 = performance.now() - released2At
      t.diagnostic(`pre-failover waiter got the key ${Math.round(took2)} ms after its release`)
      assert.ok(took2 < 10_000, `the pre-failover waiter waited ${Math.round(took2)} ms`)
      assert.equal(await got2.release(), true)
      await early.close()
      await other.close()
      await holder.close()
    })
  })
}
