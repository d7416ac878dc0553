import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BackendError, type Lock, Locker, LockLostError } from '../../src/index.js'
import { fenceKey, LUA_RELEASE_CHANNEL, RESERVED, releaseChannel } from '../../src/internal/keys.js'
import { withoutWaitingMark } from '../../src/scripts/index.js'
import { rejectsWith } from '../helpers/assertions.js'
import { describeMatrix } from '../helpers/matrix.js'
import { sleep, waitFor } from '../helpers/wait.js'

function lostReason(lock: Lock): string | undefined {
  const reason = lock.signal.reason as unknown
  return reason instanceof LockLostError ? reason.reason : undefined
}

/** Calls of every command but the admin's own INFO (and health-check PINGs). */
async function commandCalls(info: string): Promise<number> {
  let n = 0
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] !== 'info' && m[1] !== 'ping') n += Number(m[2])
  }
  return n
}

describeMatrix('key layout: every key and channel under the prefix, in the key slot', (ctx) => {
  test("the release scripts name a key's release channel exactly as releaseChannel does (tags, braces, NUL-free keys)", async () => {
    const keys = [
      'k',
      'app:x',
      'p:{t}k',
      '{t}',
      'a{}b',
      '{}{t}',
      'x}y',
      '}{',
      'a{b',
      'a{b}c{d}',
      'ünï:cödé',
      '',
    ]
    for (const key of keys) {
      const inLua = await ctx.admin.eval(`${LUA_RELEASE_CHANNEL} return releaseChannel(KEYS[1])`, 1, key)
      assert.equal(inLua, releaseChannel(key), JSON.stringify(key))
    }
  })

  test('a Redis user limited to ~app:* &app:* acquires with fencing, inspects, is woken by a release, extends and releases (prefix app:)', async () => {
    await ctx.admin.call('ACL', 'SETUSER', 'u', 'reset', 'on', '>pw', '~app:*', '&app:*', '+@all')
    await ctx.admin.call('ACL', 'LOG', 'RESET')
    const url = new URL(ctx.url)
    url.username = 'u'
    url.password = 'pw'
    const asUser = () => ctx.client({ url: url.href })
    const holder = new Locker(await asUser(), { prefix: 'app:' })
    const waiter = new Locker(await asUser(), { prefix: 'app:' })
    // A long lease, extended often: only the release message can wake the waiter early.
    const lock = await holder.acquire('x', { fencing: true, lifetimeMs: 8000, extendIntervalMs: 200 })
    assert.deepEqual(lock.keys, ['app:x'])
    assert.equal(typeof lock.fence, 'bigint')
    const keys = ((await ctx.admin.keys('*')) as string[]).sort()
    assert.deepEqual(keys, ['app:x', fenceKey('app:x')].sort())
    assert.equal(fenceKey('app:x'), `app:x${RESERVED}fence:{app:x}`)
    for (const key of keys) assert.ok(key.startsWith('app:'), JSON.stringify(key))
    assert.equal(await ctx.admin.get(fenceKey('app:x')), String(lock.fence))

    const seen = await holder.inspect('x')
    assert.deepEqual(
      { key: seen.key, isHeld: seen.isHeld, token: seen.token, fence: seen.fence },
      { key: 'app:x', isHeld: true, token: lock.token, fence: lock.fence },
    )
    // The names depend on the full key only: a Locker without a prefix (as the CLI) sees the same.
    const plain = new Locker(await ctx.client())
    assert.equal((await plain.inspect('app:x')).fence, lock.fence)
    await plain.close()

    const started = performance.now()
    const next = waiter.acquire('x', { fencing: true, retryIntervalMs: 10_000, retryTimeoutMs: 15_000 })
    await waitFor(async () => (await ctx.admin.get('app:x')) === `${lock.token}!`, {
      message: 'the waiter to mark the holder',
    })
    const channel = releaseChannel('app:x')
    assert.ok(channel.startsWith('app:'))
    await waitFor(
      async () => ((await ctx.admin.call('PUBSUB', 'NUMSUB', channel)) as [string, number])[1] === 1,
      { message: `a subscriber on ${JSON.stringify(channel)}` },
    )
    await sleep(500) // past two extensions
    assert.equal(lock.signal.aborted, false, 'extended')
    await lock.extend()
    assert.ok((await ctx.admin.pttl('app:x')) > 7000)
    const releasedAt = performance.now()
    assert.equal(await lock.release(), true)
    const second = await next
    const woken = performance.now() - releasedAt
    assert.ok(woken < 1000, `woken ${Math.round(woken)} ms after the release (retry interval 10 s)`)
    assert.ok(performance.now() - started < 5000)
    assert.ok((second.fence as bigint) > (lock.fence as bigint))
    assert.equal(await second.release(), true)
    await holder.close()
    await waiter.close()
    // Nothing the library did was refused: no key or channel outside app:*.
    assert.deepEqual(await ctx.admin.call('ACL', 'LOG'), [])
    assert.deepEqual(await ctx.admin.keys('*'), [fenceKey('app:x')])
  })

  test('a lock key cannot be a fence mark: a lock on "{y}:fence" is left alone by a fenced acquisition of y', async () => {
    const l = new Locker(await ctx.client())
    const other = await l.acquire('{y}:fence', { lifetimeMs: 5000 })
    const fenced = await l.acquire('y', { fencing: true, lifetimeMs: 5000 })
    assert.equal(await ctx.admin.get('{y}:fence'), other.token, 'the other lock was overwritten')
    assert.equal(await ctx.admin.get(fenceKey('y')), String(fenced.fence))
    await other.extend()
    assert.equal(other.signal.aborted, false)
    assert.equal(await other.release(), true)
    assert.equal(await fenced.release(), true)
    await l.close()
  })

  test('a key in the reserved namespace is rejected with ERR_LOCK_INVALID_ARGUMENT before anything is sent', async () => {
    const l = new Locker(await ctx.client(), { prefix: 'app:' })
    const straddling = new Locker(await ctx.client(), { prefix: 'app:\u0000' })
    await l.inspect('warm-up') // connections and scripts ready
    const before = await commandCalls(await ctx.admin.info('commandstats'))
    const reserved = [
      () => l.acquire(`x${RESERVED}fence`),
      () => l.acquire(['a', `x${RESERVED}fence:{app:x}`], { fencing: true }),
      () => l.tryAcquire(`x${RESERVED}released`),
      () => l.withLock(`x${RESERVED}fence`, () => assert.fail('ran')),
      () => l.inspect(`x${RESERVED}fence`),
      () => straddling.acquire('arl:fence'),
    ]
    for (const call of reserved) {
      const err = await rejectsWith(call(), 'ERR_LOCK_INVALID_ARGUMENT')
      assert.equal((err as { argument?: string }).argument, 'keys')
      assert.ok(
        err.message.includes(JSON.stringify(RESERVED)) && err.message.includes('reserved'),
        err.message,
      )
    }
    assert.throws(() => new Locker(ctx.admin, { prefix: `app:${RESERVED}` }), {
      code: 'ERR_LOCK_INVALID_ARGUMENT',
      argument: 'prefix',
    })
    const after = await commandCalls(await ctx.admin.info('commandstats'))
    assert.equal(after, before, 'commands were sent')
    assert.equal(await ctx.admin.exists('app:a'), 0)
    await l.close()
    await straddling.close()
  })
})

describeMatrix('stored values: only ours are written to', (ctx) => {
  test('a failed acquire leaves a value that is not ours unchanged and says "not a lock"; inspect says so too', async () => {
    const l = new Locker(await ctx.client())
    const foreign: [string, string][] = [
      ['sv:old', 'C'.repeat(22)], // 0.1.0's token (22 characters)
      ['sv:old-marked', `${'C'.repeat(22)}!`],
      ['sv:unprefixed', 'C'.repeat(27)], // a token's length without the version prefix
      ['sv:other', 'some application value'],
    ]
    for (const [key, value] of foreign) {
      await ctx.admin.set(key, value, 'PX', 60_000)
      for (const options of [{}, { fencing: true }]) {
        const started = performance.now()
        const outcome = await l.acquire(key, { ...options, retryTimeoutMs: 2000 }).catch((e: unknown) => e)
        assert.equal(await ctx.admin.get(key), value, `${key} was written to`)
        assert.ok((await ctx.admin.pttl(key)) > 55_000)
        assert.ok(outcome instanceof BackendError, `acquire of ${key}: ${String(outcome)}`)
        assert.equal(outcome.code, 'ERR_LOCK_BACKEND')
        assert.match(outcome.message, /not a lock/)
        assert.ok(performance.now() - started < 1000, 'a permanent error, not contention waited out')
        await rejectsWith(l.tryAcquire(key, options), 'ERR_LOCK_BACKEND')
      }
      // Several keys: the ones taken before it are given back.
      await rejectsWith(l.acquire(['sv:first', key]), 'ERR_LOCK_BACKEND')
      assert.equal(await ctx.admin.exists('sv:first'), 0)
      const inspected = await rejectsWith(l.inspect(key), 'ERR_LOCK_BACKEND')
      assert.match(inspected.message, /not a lock/)
      assert.equal(await ctx.admin.get(key), value, `${key} was written to`)
    }
    // A value of our format is a lock: contention, and the waiting mark.
    const held = `arl1.${'D'.repeat(22)}`
    await ctx.admin.set('sv:ours', held, 'PX', 60_000)
    assert.equal(await l.tryAcquire('sv:ours'), null)
    assert.equal(await ctx.admin.get('sv:ours'), `${held}!`)
    assert.equal((await l.inspect('sv:ours')).token, held)
    await l.close()
  })

  for (const shape of ['one key each, one lease length', 'with a two-key lease']) {
    test(`extension batch (${shape}): a key turned into a hash costs only its own lease`, async () => {
      const l = new Locker(await ctx.client(), { lifetimeMs: 400 })
      const prefix = shape.startsWith('one') ? 'bu' : 'bm'
      const keys: (string | string[])[] = Array.from({ length: 19 }, (_, i) => `${prefix}:${i}`)
      if (prefix === 'bm') keys[3] = [`{${prefix}}:a`, `{${prefix}}:b`]
      const locks = await Promise.all(keys.map((k) => l.acquire(k)))
      const victim = 7
      await ctx.admin.del(`${prefix}:${victim}`)
      await ctx.admin.hset(`${prefix}:${victim}`, 'f', 'v')
      const calls = l.stats().extendCalls
      await sleep(550) // past two extensions (every 200 ms)
      assert.ok(l.stats().extendCalls - calls >= 2, 'extended at least twice')
      const lost = locks.flatMap((lock, i) => (lock.signal.aborted ? [`${i}: ${lostReason(lock)}`] : []))
      assert.deepEqual(lost, [`${victim}: stolen`], 'only the lease of the foreign key is lost')
      for (const [i, lock] of locks.entries()) {
        if (i === victim) continue
        assert.ok(lock.isHeld(), `lock ${i}`)
        for (const key of lock.keys) {
          assert.equal(withoutWaitingMark((await ctx.admin.get(key)) ?? ''), lock.token, key)
        }
      }
      assert.deepEqual(
        await ctx.admin.hgetall(`${prefix}:${victim}`),
        { f: 'v' },
        'the hash is not ours to touch',
      )
      assert.equal(l.stats().lost, 1)
      await l.close()
      await ctx.admin.del(`${prefix}:${victim}`)
    })
  }
})
