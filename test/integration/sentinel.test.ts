import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Redis } from 'ioredis'
import { Locker } from '../../src/index.js'
import { IOREDIS_DISCONNECT_TIMEOUT } from '../helpers/matrix.js'
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

describe('Sentinel failover with replica-acknowledged locks [ioredis]', () => {
  let master: RedisServer
  let replica: RedisServer
  let sentinels: Sentinel[] = []
  const clients: Redis[] = []

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
            return r.port === String(replica.port) && r.flags === 'slave' && r['master-link-status'] === 'ok'
          })
          if (!ready) return false
        }
        return true
      },
      { timeoutMs: 15_000, message: 'the sentinels to discover the replica' },
    )
  })

  after(async () => {
    for (const c of clients) c.disconnect()
    await Promise.all(sentinels.map((s) => s.stop()))
    await replica?.stop()
    await master?.stop()
  })

  const sentinelClient = (): Redis => {
    const client = new Redis({
      sentinels: sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: MASTER_NAME,
      ...IOREDIS_DISCONNECT_TIMEOUT,
    })
    client.on('error', () => {})
    clients.push(client)
    return client
  }

  test('a lock acquired with replicas: 1 survives a failover and stays extendable', async () => {
    const holder = new Locker(sentinelClient(), { prefix: 'sf:', replicas: 1, lifetimeMs: 10_000 })
    const lock = await holder.acquire('k')
    assert.equal(await replica.command('GET', 'sf:k'), lock.token, 'confirmed by the replica')

    // The master crashes: what the lock must survive. (A SENTINEL FAILOVER of a live
    // master leaves both servers masters for many seconds, until the sentinels demote
    // the old one, and the holder keeps extending on the old one meanwhile.)
    await master.kill()
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
      { timeoutMs: 8_000, intervalMs: 200, message: 'an extension on the new master' },
    )
    assert.ok(lock.isHeld())
    assert.equal(lock.signal.aborted, false)

    // Nobody else gets it through the new master.
    const other = new Locker(sentinelClient(), { prefix: 'sf:' })
    assert.equal(await other.tryAcquire('k', { replicas: 0 }), null)

    assert.equal(await lock.release(), true)
    assert.equal(await replica.command('EXISTS', 'sf:k'), 0)
    await other.close()
    await holder.close()
  })
})
