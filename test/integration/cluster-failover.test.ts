import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import calculateSlot from 'cluster-key-slot'
import { Redis } from 'ioredis'
import { type Lock, LockError, type Locker, LockLostError } from '../../src/index.js'
import { withoutWaitingMark } from '../../src/scripts/index.js'
import { type LocalCluster, startCluster } from '../helpers/cluster.js'
import { ClusterLockers } from '../helpers/cluster-clients.js'
import { CLIENT_KINDS } from '../helpers/matrix.js'
import { LOOPBACK, type RedisServer } from '../helpers/redis-server.js'
import { sleep, waitFor } from '../helpers/wait.js'

// A lease that outlives the failover window (cluster-node-timeout 2000 plus the election).
const HOLDER = { lifetimeMs: 8000, extendIntervalMs: 500 }
// Probes are short: a probe that hangs on the dead master is cut off at its lease.
const PROBE_LIFETIME_MS = 1500
/** How long a probe's acquire keeps trying, through contention and transient failures. */
const PROBE_RETRY_MS = 3000
const FAILOVER_TIMEOUT_MS = 20_000

/** `[from, to, port]` of every slot range, asked of `node` (one that is still alive). */
async function slotRanges(node: RedisServer): Promise<[number, number, number][]> {
  const ranges = (await node.command('CLUSTER', 'SLOTS')) as [number, number, [string, number]][]
  return ranges.map(([from, to, [, port]]) => [from, to, Number(port)])
}

/** The port `node` says serves `slot` as a master, or undefined if none does. */
async function masterPortOf(node: RedisServer, slot: number): Promise<number | undefined> {
  for (const [from, to, port] of await slotRanges(node)) if (slot >= from && slot <= to) return port
  return undefined
}

async function clusterStateOf(node: RedisServer): Promise<string | undefined> {
  return String(await node.command('CLUSTER', 'INFO')).match(/cluster_state:(\w+)/)?.[1]
}

/** A key (of `prefix`) whose slot `master` serves now, as `master` itself says. */
async function keyOn(master: RedisServer, prefix: string): Promise<string> {
  const ranges = (await slotRanges(master)).filter(([, , port]) => port === master.port)
  for (let i = 0; ; i++) {
    const key = `${prefix}${i}`
    const slot = calculateSlot(key)
    if (ranges.some(([from, to]) => slot >= from && slot <= to)) return key
  }
}

/** A one-off connection to `port` (no cluster routing). */
async function direct<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ host: LOOPBACK, port, lazyConnect: true, maxRetriesPerRequest: 1 })
  r.on('error', () => {})
  try {
    await r.connect()
    return await fn(r)
  } finally {
    r.disconnect()
  }
}

/** The node replicating `master` (each master has one), asked with ROLE. */
async function replicaOf(cluster: LocalCluster, master: RedisServer): Promise<RedisServer> {
  for (const node of cluster.nodes.filter((n) => n.running && n !== master)) {
    const role = (await node.command('ROLE')) as unknown[]
    if (role[0] === 'slave' && Number(role[2]) === master.port) return node
  }
  throw new Error(`no replica of master ${master.port}`)
}

/** What one probe of the master-less slot came back with, for the report. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = error instanceof LockError ? error.code : error.name
  const cause = error.cause instanceof Error ? error.cause.message : error.message
  return `${code}: ${cause.replace(/\s+/g, ' ').slice(0, 80)}`
}

describe('Redis Cluster failover', () => {
  let cluster: LocalCluster
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  before(async () => {
    process.on('unhandledRejection', onUnhandled)
    cluster = await startCluster()
  })
  after(async () => {
    process.off('unhandledRejection', onUnhandled)
    await cluster?.stop()
  })

  for (const [index, kind] of CLIENT_KINDS.entries()) {
    describe(`[${kind}]`, () => {
      const p = `${kind}:failover:`
      const clients = new ClusterLockers(kind, () => cluster)
      const locker = (options?: ConstructorParameters<typeof Locker>[1]) => clients.locker(options)
      after(() => clients.close())

      test('master of a held lock killed, replica promoted: never a second owner; the slot without a master is a backend error, not contention', async (t) => {
        // Each client kind fails over a different original master (nodes 0..2 are the
        // masters `redis-cli --cluster create` made), so the second kind starts from a
        // healthy master that still has its replica.
        const master = cluster.nodes[index]!
        assert.equal(String(((await master.command('ROLE')) as unknown[])[0]), 'master')
        const survivor = cluster.nodes.find((n) => n !== master && n.running)!
        const holder = await locker(HOLDER)
        const other = await locker({ lifetimeMs: 2000 })
        const prober = await locker({ lifetimeMs: PROBE_LIFETIME_MS })
        const key = await keyOn(master, p)
        const slot = calculateSlot(key)
        const lock: Lock = await holder.acquire(key)
        let lostAt: number | undefined
        lock.signal.addEventListener('abort', () => {
          lostAt = performance.now()
        })
        // The key reached the replica before the crash (and a few extensions after it).
        const replica = await replicaOf(cluster, master)
        await waitFor(
          () =>
            direct(replica.port, async (r) => {
              await r.call('READONLY')
              const stored = await r.get(key)
              return stored !== null && withoutWaitingMark(stored) === lock.token
            }),
          // A replica that just joined may still be finishing its first sync.
          { message: 'the key on the replica', timeoutMs: 15_000 },
        )
        await sleep(1200)

        // Exclusivity, continuously, from before the kill until the end.
        const violations: string[] = []
        const contenderSeen = new Map<string, number>()
        let stopContender = false
        t.after(() => {
          stopContender = true // also when an assertion fails first: the loop must not keep the file alive
        })
        const contender = (async () => {
          while (!stopContender) {
            const sentAt = performance.now()
            const heldWhenSent = lock.isHeld()
            try {
              const got = await other.tryAcquire(key)
              const seen = got === null ? 'null (held)' : 'granted'
              contenderSeen.set(seen, (contenderSeen.get(seen) ?? 0) + 1)
              if (got !== null) {
                if (heldWhenSent || lostAt === undefined || lostAt > sentAt) {
                  violations.push(`granted at +${Math.round(sentAt)} while the holder held the lock`)
                }
                await got.release().catch(() => {})
              }
            } catch (error) {
              const seen = describeError(error)
              contenderSeen.set(seen, (contenderSeen.get(seen) ?? 0) + 1)
              if (!(error instanceof LockError) || error.code !== 'ERR_LOCK_BACKEND') {
                violations.push(`tryAcquire rejected with ${seen}`)
              }
            }
            await sleep(100)
          }
        })()

        // Crash the master, then probe a free key of the same slot until the replica takes over.
        const probeKey = `{${key}}:probe`
        assert.equal(calculateSlot(probeKey), slot)
        // Meanwhile, a key on a master that stays up: while the dead master is flagged FAIL
        // and not yet replaced, the whole cluster answers CLUSTERDOWN (full coverage is
        // required by default), which the client may ride out or report; never contention.
        const healthy = cluster.nodes[2]!
        const healthyKey = await keyOn(healthy, `${p}healthy:`)
        const healthyProber = await locker({ lifetimeMs: PROBE_LIFETIME_MS })
        const healthySeen = new Map<string, number>()
        const killedAt = performance.now()
        await master.kill()
        const probes: string[] = []
        let probedWithoutMaster = 0
        let promotedAt: number | undefined
        const promoted = (async () => {
          await waitFor(
            async () => {
              const port = await masterPortOf(survivor, slot)
              return port !== undefined && port !== master.port && (await clusterStateOf(survivor)) === 'ok'
            },
            { timeoutMs: FAILOVER_TIMEOUT_MS, intervalMs: 50, message: `a replica to take slot ${slot}` },
          )
          promotedAt = performance.now()
        })()
        const healthyProbes = (async () => {
          while (promotedAt === undefined && performance.now() - killedAt < FAILOVER_TIMEOUT_MS) {
            const started = performance.now()
            let seen = 'acquired'
            try {
              const got = await healthyProber.acquire(healthyKey, { retryTimeoutMs: PROBE_RETRY_MS })
              await got.release()
            } catch (error) {
              seen = describeError(error)
              if (!(error instanceof LockError) || error.code !== 'ERR_LOCK_BACKEND') {
                violations.push(`healthy-master probe rejected with ${seen}`)
              }
            }
            const took = performance.now() - started
            // An acquire rides out CLUSTERDOWN until its retryTimeoutMs (3 s), then reports it.
            if (took > PROBE_RETRY_MS + PROBE_LIFETIME_MS + 1500)
              violations.push(`a healthy-master probe took ${Math.round(took)} ms`)
            healthySeen.set(seen, (healthySeen.get(seen) ?? 0) + 1)
            await sleep(50)
          }
        })()
        while (promotedAt === undefined && performance.now() - killedAt < FAILOVER_TIMEOUT_MS) {
          const started = performance.now()
          try {
            // One attempt each (acquire would ride the failover out): what the slot answers now.
            const got = await prober.tryAcquire(probeKey)
            if (got === null) {
              // Held by an earlier probe's own attempt that timed out but was applied
              // (ambiguous: released once its connection delivers the release).
              probes.push(
                `null (an earlier probe's ambiguous attempt) after ${Math.round(performance.now() - killedAt)} ms`,
              )
              await sleep(50)
              continue
            }
            // Only possible once a new master serves the slot.
            probes.push(`acquired after ${Math.round(performance.now() - killedAt)} ms`)
            await got.release().catch(() => {})
            if (promotedAt === undefined) await promoted
            break
          } catch (error) {
            const took = performance.now() - started
            const afterPromotion = promotedAt !== undefined
            if (!afterPromotion) probedWithoutMaster++
            probes.push(
              `${describeError(error)} in ${Math.round(took)} ms${afterPromotion ? ' (after)' : ''}`,
            )
            assert.ok(error instanceof LockError, String(error))
            assert.equal(error.code, 'ERR_LOCK_BACKEND', `classified as ${describeError(error)}`)
            assert.ok(took < PROBE_RETRY_MS + PROBE_LIFETIME_MS + 1500, `a probe took ${Math.round(took)} ms`)
          }
          await sleep(50)
        }
        await promoted
        await healthyProbes
        const newPort = (await masterPortOf(survivor, slot))!
        const failoverMs = Math.round(promotedAt! - killedAt)
        assert.equal(newPort, replica.port, "the master's own replica took over")

        // After the failover: either the holder's extensions reach the new master (the key
        // was replicated before the crash), or the holder is told it lost the lock.
        // The contender's attempts append the waiting mark to the stored token.
        const ttlOnNew = () =>
          direct(newPort, async (r) => {
            const stored = await r.get(key)
            return [stored === null ? null : withoutWaitingMark(stored), await r.pttl(key)] as const
          })
        await waitFor(
          async () => {
            if (lock.signal.aborted) return true
            const [token, pttl] = await ttlOnNew()
            // More than a copy from before the crash could have left: extended after it.
            return token === lock.token && pttl > HOLDER.lifetimeMs - (performance.now() - killedAt) + 300
          },
          { timeoutMs: 9000, intervalMs: 100, message: 'an extension on the new master or a loss' },
        )
        await sleep(600) // the contender keeps trying against the new master
        stopContender = true
        await contender
        const outcome = lock.signal.aborted
          ? `told lost (${(lock.signal.reason as LockLostError).reason})`
          : 'held through the failover'
        t.diagnostic(
          `slot ${slot}: master ${master.port} killed, replica ${newPort} promoted after ${failoverMs} ms`,
        )
        t.diagnostic(`holder: ${outcome}; stats ${JSON.stringify(holder.stats().lostByReason)}`)
        t.diagnostic(`probes of a free key in the slot without a master: ${probes.join('; ')}`)
        t.diagnostic(`contender tryAcquire results: ${JSON.stringify(Object.fromEntries(contenderSeen))}`)
        t.diagnostic(`key on a healthy master meanwhile: ${JSON.stringify(Object.fromEntries(healthySeen))}`)
        assert.deepEqual(violations, [], 'a second owner while the holder held the lock')
        assert.ok(probedWithoutMaster > 0, 'the slot was probed while it had no master')
        if (!lock.signal.aborted) {
          assert.equal(lock.isHeld(), true)
          assert.equal(holder.stats().lost, 0)
          const [token, pttl] = await ttlOnNew()
          assert.equal(token, lock.token)
          assert.ok(pttl > HOLDER.lifetimeMs - 1500, `extended on the new master (PTTL ${pttl})`)
          assert.equal(await other.tryAcquire(key), null)
          assert.equal(await lock.release(), true)
        } else {
          assert.ok(lock.signal.reason instanceof LockLostError)
          assert.equal(lock.isHeld(), false)
        }
        // After the release (or the loss), the key is free for the other Locker.
        const next = await other.acquire(key, { retryTimeoutMs: 10_000 })
        assert.equal(await direct(newPort, (r) => r.get(key)), next.token)
        assert.equal(await next.release(), true)
        assert.deepEqual(unhandled, [], 'unhandled rejections')
      })
    })
  }
})
