import assert from 'node:assert/strict'
import { after, afterEach, before, beforeEach, test } from 'node:test'
import { EVICTION_WARNING_CODE, WARNING_TYPE } from '../../src/eviction.js'
import { Locker } from '../../src/index.js'
import { MEMORY_POLICY } from '../../src/scripts/index.js'
import { describeMatrix, type MatrixContext } from '../helpers/matrix.js'
import { type RedisServer, startRedis } from '../helpers/redis-server.js'
import { sleep, waitFor } from '../helpers/wait.js'

const EVICTING = ['--maxmemory', '100mb', '--maxmemory-policy', 'allkeys-lru']

/** Records the process warnings with our code, and any unhandled rejection. */
function recordWarnings(): { warnings: Error[]; rejections: unknown[] } {
  const warnings: Error[] = []
  const rejections: unknown[] = []
  const onWarning = (w: Error) => {
    if ((w as Error & { code?: unknown }).code === EVICTION_WARNING_CODE) warnings.push(w)
  }
  const onRejection = (reason: unknown) => rejections.push(reason)
  before(() => {
    process.on('warning', onWarning)
    process.on('unhandledRejection', onRejection)
  })
  after(() => {
    process.off('warning', onWarning)
    process.off('unhandledRejection', onRejection)
  })
  beforeEach(() => {
    warnings.length = 0
    rejections.length = 0
  })
  afterEach(() => assert.deepEqual(rejections, [], 'no unhandled rejection'))
  return { warnings, rejections }
}

/** True once `server` has been sent the check's script (EVAL caches it even when it then fails). */
async function checked(server: RedisServer): Promise<boolean> {
  const [exists] = (await server.command('SCRIPT', 'EXISTS', MEMORY_POLICY.sha)) as [number]
  return exists === 1
}

/**
 * Acquires once (single key, no fencing, a long lease: a SET NX and no script) with
 * a new Locker on `client`, waits until every server in `servers` has been sent the
 * check's script, and a little longer for the replies and the warning; returns the
 * Locker.
 */
async function acquireAndSettle(servers: RedisServer[], client: unknown, key: string): Promise<Locker> {
  for (const server of servers) await server.command('SCRIPT', 'FLUSH')
  const locker = new Locker(client as never, { prefix: 'evict:' })
  const lock = await locker.acquire(key, { lifetimeMs: 30_000 })
  assert.equal(lock.isHeld(), true)
  for (const server of servers) await waitFor(() => checked(server), { message: 'the eviction check' })
  await sleep(300)
  return locker
}

async function configure(ctx: MatrixContext, maxmemory: string, policy: string): Promise<void> {
  await ctx.admin.call('CONFIG', 'SET', 'maxmemory', maxmemory, 'maxmemory-policy', policy)
}

describeMatrix(
  'eviction warning',
  (ctx) => {
    const { warnings } = recordWarnings()

    test('maxmemory with allkeys-lru: exactly one warning per Locker, naming policy, server and fix', async () => {
      const locker = await acquireAndSettle([ctx.server], await ctx.client(), 'a')
      await waitFor(() => warnings.length > 0, { message: 'the warning' })
      // More acquisitions of the same Locker check nothing again.
      await (await locker.acquire('b')).release()
      await (await locker.acquire(['c', 'd'])).release()
      await sleep(150)
      assert.equal(warnings.length, 1, warnings.map((w) => w.message).join('\n'))
      const [warning] = warnings as [Error]
      assert.equal(warning.name, WARNING_TYPE)
      assert.match(warning.message, /maxmemory-policy allkeys-lru/)
      assert.match(warning.message, /maxmemory 100\.00M/)
      assert.match(warning.message, new RegExp(`Redis server on port ${ctx.server.port} \\(Redis \\d`))
      assert.match(warning.message, /set maxmemory-policy noeviction/)
      assert.match(warning.message, /dedicated Redis/)
      await locker.close()

      // Another Locker warns for itself.
      const other = await acquireAndSettle([ctx.server], await ctx.client(), 'e')
      await waitFor(() => warnings.length >= 2, { message: "the second Locker's warning" })
      await sleep(100)
      assert.equal(warnings.length, 2)
      await other.close()
    })

    test('volatile-lru (lock keys all have a TTL) is warned about too', async () => {
      await configure(ctx, '100mb', 'volatile-lru')
      const locker = await acquireAndSettle([ctx.server], await ctx.client(), 'v')
      await waitFor(() => warnings.length > 0, { message: 'the warning' })
      await sleep(100)
      assert.equal(warnings.length, 1)
      assert.match(warnings[0]?.message ?? '', /maxmemory-policy volatile-lru/)
      await locker.close()
    })

    test('noeviction, or no maxmemory at all: no warning', async () => {
      await configure(ctx, '100mb', 'noeviction')
      const a = await acquireAndSettle([ctx.server], await ctx.client(), 'n')
      await configure(ctx, '0', 'allkeys-lru')
      const b = await acquireAndSettle([ctx.server], await ctx.client(), 'z')
      assert.deepEqual(warnings, [])
      await a.close()
      await b.close()
    })

    test('a user whose ACL refuses INFO: no warning, no error, the lock works', async () => {
      await configure(ctx, '100mb', 'allkeys-lru')
      // GLIDE cannot connect without INFO REPLICATION (it reads the node's role): that section only.
      const glide = ctx.kind === 'valkey-glide' ? ['+info|replication'] : []
      await ctx.admin.call('ACL', 'SETUSER', 'noinfo', 'on', '>pw', '~*', '&*', '+@all', '-info', ...glide)
      const url = `redis://noinfo:pw@127.0.0.1:${ctx.server.port}`
      const locker = await acquireAndSettle([ctx.server], await ctx.client({ url }), 'acl')
      const lock = await locker.acquire('acl2', { fencing: true, lifetimeMs: 400 })
      await waitFor(() => locker.stats().extendCalls > 0, { message: 'an extension' })
      assert.equal(await lock.release(), true)
      assert.deepEqual(warnings, [])
      await locker.close()
    })

    test('a quorum: one warning naming the nodes that may evict', async () => {
      await configure(ctx, '100mb', 'allkeys-lru')
      const quiet = await startRedis()
      const evicting = await startRedis({
        args: ['--maxmemory', '50mb', '--maxmemory-policy', 'volatile-ttl'],
      })
      try {
        const clients = [
          await ctx.client(),
          await ctx.client({ url: quiet.url }),
          await ctx.client({ url: evicting.url }),
        ]
        const locker = await acquireAndSettle([ctx.server, quiet, evicting], clients, 'q')
        await waitFor(() => warnings.length > 0, { message: 'the warning' })
        await sleep(100)
        assert.equal(warnings.length, 1)
        const text = warnings[0]?.message ?? ''
        assert.match(text, /^2 of the 3 Redis nodes of this quorum may evict lock keys/)
        assert.match(
          text,
          new RegExp(`client 0 \\(port ${ctx.server.port},.*maxmemory-policy allkeys-lru\\)`),
        )
        assert.match(text, new RegExp(`client 2 \\(port ${evicting.port},.*maxmemory-policy volatile-ttl\\)`))
        assert.doesNotMatch(text, /client 1/)
        await locker.close()
      } finally {
        await quiet.stop()
        await evicting.stop()
      }
    })
  },
  { redisArgs: EVICTING },
)
