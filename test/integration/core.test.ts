import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Lock, type LockError, Locker, LockLostError } from '../../src/index.js'
import { fenceKey } from '../../src/internal/keys.js'
import { rejectsWith } from '../helpers/assertions.js'
import { describeMatrix } from '../helpers/matrix.js'

function lostReason(lock: Lock): string | undefined {
  const reason = lock.signal.reason as unknown
  return reason instanceof LockLostError ? reason.reason : undefined
}

describeMatrix('core lock', (ctx) => {
  const locker = async (options?: ConstructorParameters<typeof Locker>[1]) =>
    new Locker(await ctx.client(), options)

  test('release() after locker.close() resolves false (the Locker released it)', async () => {
    // Its own connection, closed by close(): the release cannot even be sent.
    const l = await Locker.fromUrl(ctx.url, { prefix: 'cl:' })
    const lock = await l.acquire('k')
    await l.close()
    assert.equal(await lock.release(), false)
    assert.equal(await ctx.admin.exists('cl:k'), 0, 'close released it')
    await lock[Symbol.asyncDispose]()
  })

  test('extend() racing release() resolves (nothing to extend), never "expired"; extend after release too', async () => {
    const l = await locker({ prefix: 'er:' })
    const lock = await l.acquire('k', { lifetimeMs: 2000 })
    const [extended, released] = await Promise.allSettled([lock.extend(), lock.release()])
    assert.equal(extended.status, 'fulfilled', String((extended as PromiseRejectedResult).reason))
    assert.deepEqual(released, { status: 'fulfilled', value: true })
    await lock.extend()
    assert.equal(lock.signal.aborted, false, 'a release is not a loss')
    await l.close()
  })

  test('inspect takes one key: an array rejects with ERR_LOCK_INVALID_ARGUMENT', async () => {
    const l = await locker()
    await rejectsWith(l.inspect(['a', 'b'] as unknown as string), 'ERR_LOCK_INVALID_ARGUMENT')
    await l.close()
  })

  test('acquire stores the token with the lease as TTL; release deletes it once', async () => {
    const l = await locker({ prefix: 't1:' })
    const lock = await l.acquire('k', { lifetimeMs: 3000 })
    assert.deepEqual(lock.keys, ['t1:k'])
    assert.equal(await ctx.admin.get('t1:k'), lock.token)
    const pttl = await ctx.admin.pttl('t1:k')
    assert.ok(pttl > 2500 && pttl <= 3000, `pttl ${pttl}`)
    assert.ok(lock.isHeld())
    // Without fencing: no token to read, and no fence-mark key written.
    assert.throws(() => lock.fence, { code: 'ERR_LOCK_INVALID_ARGUMENT', argument: 'fencing' })
    assert.equal(await ctx.admin.exists(fenceKey('t1:k')), 0)
    assert.ok(lock.token.length >= 22)
    assert.equal(await lock.release(), true)
    assert.equal(await lock.release(), false)
    assert.equal(lock.isHeld(), false)
    assert.equal(lock.signal.aborted, false, 'a normal release is not a loss')
    assert.equal(await ctx.admin.exists('t1:k'), 0)
    await l.close()
  })

  test('a held key is not acquired by anyone else; tryAcquire resolves null', async () => {
    const a = await locker()
    const b = await locker()
    const lock = await a.acquire('t2')
    assert.equal(await b.tryAcquire('t2'), null)
    const err = await rejectsWith(b.acquire('t2', { retryTimeoutMs: 0 }), 'ERR_LOCK_ACQUIRE_TIMEOUT')
    assert.match(err.message, /t2/)
    const started = performance.now()
    await rejectsWith(
      b.acquire('t2', { retryTimeoutMs: 300, retryIntervalMs: 50 }),
      'ERR_LOCK_ACQUIRE_TIMEOUT',
    )
    const waited = performance.now() - started
    assert.ok(waited >= 290 && waited < 1500, `waited ${waited}`)
    await lock.release()
    const next = await b.tryAcquire('t2')
    assert.ok(next)
    await next.release()
    await a.close()
    await b.close()
  })

  test('multi-key acquire is all-or-nothing', async () => {
    const a = await locker()
    const b = await locker()
    const middle = await a.acquire('t3:b')
    assert.equal(await b.tryAcquire(['t3:a', 't3:b', 't3:c']), null)
    assert.equal(await ctx.admin.exists('t3:a', 't3:c'), 0, 'no subset of the keys may stay locked')
    await middle.release()
    const all = await b.acquire(['t3:a', 't3:b', 't3:c'])
    for (const k of ['t3:a', 't3:b', 't3:c']) assert.equal(await ctx.admin.get(k), all.token)
    assert.equal(await all.release(), true)
    assert.equal(await ctx.admin.exists('t3:a', 't3:b', 't3:c'), 0)
    await a.close()
    await b.close()
  })

  test('auto-extension keeps the key alive for 10 lifetimes', async () => {
    const l = await locker()
    const lock = await l.acquire('t4', { lifetimeMs: 200 })
    const until = performance.now() + 2000
    let checks = 0
    while (performance.now() < until) {
      assert.equal(await ctx.admin.get('t4'), lock.token, 'the key vanished while held')
      assert.ok(lock.isHeld())
      checks++
      await sleep(15)
    }
    assert.ok(checks > 50)
    assert.equal(lock.signal.aborted, false)
    await lock.release()
    await l.close()
  })

  test('a deleted key is reported lost ("deleted"); a taken-over key "stolen"; neither is re-created', async () => {
    const l = await locker()
    const gone = await l.acquire('t5:gone', { lifetimeMs: 300 })
    const taken = await l.acquire('t5:taken', { lifetimeMs: 300 })
    await ctx.admin.del('t5:gone')
    await ctx.admin.set('t5:taken', 'somebody-else', 'PX', 5000)
    await sleep(400)
    assert.equal(gone.signal.aborted, true)
    assert.equal(lostReason(gone), 'deleted')
    assert.equal((gone.signal.reason as LockError).code, 'ERR_LOCK_LOST')
    assert.equal(taken.signal.aborted, true)
    assert.equal(lostReason(taken), 'stolen')
    assert.equal(gone.isHeld(), false)
    assert.equal(await ctx.admin.exists('t5:gone'), 0, 'extension must never re-create a key')
    await rejectsWith(gone.extend(), 'ERR_LOCK_LOST')
    // A late release from the former holder leaves the new owner alone.
    assert.equal(await taken.release(), false)
    assert.equal(await ctx.admin.get('t5:taken'), 'somebody-else')
    await l.close()
  })

  test('explicit extend re-arms the TTL', async () => {
    const l = await locker()
    const lock = await l.acquire('t6', { lifetimeMs: 5000, extendIntervalMs: 4000 })
    await sleep(300)
    const before = await ctx.admin.pttl('t6')
    await lock.extend()
    const after = await ctx.admin.pttl('t6')
    assert.ok(after > before, `${after} > ${before}`)
    await lock.release()
    await l.close()
  })

  test('isHeld() is false right after the event loop was blocked past the deadline', async () => {
    const l = await locker()
    const lock = await l.acquire('t7', { lifetimeMs: 100 })
    const end = performance.now() + 150
    while (performance.now() < end) {
      // Deliberately block the event loop: no timer can run.
    }
    assert.equal(lock.isHeld(), false)
    assert.equal(lock.signal.aborted, true, 'isHeld() must also abort the signal on the spot')
    assert.ok(lostReason(lock))
    await l.close()
  })

  test('signal.aborted alone (no isHeld call, no timer run) is true right after a blocked event loop', async () => {
    const l = await locker()
    const lock = await l.acquire('t7b', { lifetimeMs: 100 })
    const signal = lock.signal
    let fired = 0
    signal.addEventListener('abort', () => fired++)
    const end = performance.now() + 150
    while (performance.now() < end) {
      // Blocked: as after a long GC pause or SIGSTOP.
    }
    assert.equal(signal.aborted, true)
    assert.equal(fired, 1, 'reading aborted fires the abort event once, synchronously')
    assert.equal((signal.reason as LockError).code, 'ERR_LOCK_LOST')
    assert.throws(
      () => signal.throwIfAborted(),
      (e: LockError) => e.code === 'ERR_LOCK_LOST',
    )
    // A signal first read after the loss is born aborted.
    const other = await l.acquire('t7c', { lifetimeMs: 100 })
    const until = performance.now() + 150
    while (performance.now() < until) {
      // Blocked again.
    }
    assert.equal(other.isHeld(), false)
    assert.equal(other.signal.aborted, true)
    assert.equal(lostReason(other), 'expired')
    await l.close()
  })

  test('await using releases at the end of the scope', async () => {
    const l = await locker()
    let token = ''
    {
      await using lock = await l.acquire('t8')
      token = lock.token
      assert.equal(await ctx.admin.get('t8'), token)
    }
    assert.equal(await ctx.admin.exists('t8'), 0)
    assert.ok(token)
    await l.close()
  })

  test('withLock releases on success and on error, and keeps the function’s outcome', async () => {
    const l = await locker()
    const value = await l.withLock('t9', async (signal, lock) => {
      assert.equal(signal, lock.signal)
      assert.equal(await ctx.admin.get('t9'), lock.token)
      return 7
    })
    assert.equal(value, 7)
    assert.equal(await ctx.admin.exists('t9'), 0)
    const boom = new Error('boom')
    await assert.rejects(
      l.withLock('t9', () => {
        throw boom
      }),
      (e) => e === boom,
    )
    assert.equal(await ctx.admin.exists('t9'), 0)
    // A release that fails (the key became a hash) must not replace the result.
    const result = await l.withLock('t9', async () => {
      await ctx.admin.del('t9')
      await ctx.admin.hset('t9', 'f', 'v')
      return 'mine'
    })
    assert.equal(result, 'mine')
    await ctx.admin.del('t9')
    await l.close()
  })

  test('close() releases held locks, aborts their signals and rejects pending and new acquires', async () => {
    const l = await locker()
    const other = await locker()
    const held = await l.acquire('t10:a')
    const blocker = await other.acquire('t10:b')
    const pending = rejectsWith(l.acquire('t10:b', { retryTimeoutMs: null }), 'ERR_LOCK_CLOSED')
    await sleep(50)
    await l.close()
    await pending
    assert.equal(held.signal.aborted, true)
    assert.equal(lostReason(held), 'closed')
    assert.equal(await ctx.admin.exists('t10:a'), 0)
    await rejectsWith(l.acquire('x'), 'ERR_LOCK_CLOSED')
    await l.close() // idempotent
    await blocker.release()
    await other.close()
  })

  test('a caller’s AbortSignal rejects a pending acquire with signal.reason unchanged', async () => {
    const l = await locker()
    const holder = await l.acquire('t11')
    const controller = new AbortController()
    const reason = new Error('user gave up')
    const pending = l.acquire('t11', { retryTimeoutMs: null, signal: controller.signal })
    setTimeout(() => controller.abort(reason), 50)
    await assert.rejects(pending, (e) => e === reason)
    await assert.rejects(l.acquire('t11', { signal: AbortSignal.abort('already') }), (e) => e === 'already')
    await holder.release()
    await l.close()
  })
})

describeMatrix('Redis stops answering', (ctx) => {
  test('SIGSTOPped Redis: the signal aborts by the local deadline, before the key can expire', async () => {
    const l = new Locker(await ctx.client(), { lifetimeMs: 600 })
    const lock = await l.acquire('frozen')
    await sleep(100)
    let abortedAt = 0
    lock.signal.addEventListener('abort', () => {
      abortedAt = performance.now()
    })
    // Everything the lock knows: the deadline is at most this far away.
    const deadline = performance.now() + lock.remainingMs()
    ctx.server.pause()
    const pausedAt = performance.now()
    try {
      await sleep(900)
      assert.ok(abortedAt > 0, 'the signal did not abort while Redis was frozen')
      assert.ok(
        abortedAt <= deadline + 30,
        `aborted ${Math.round(abortedAt - deadline)} ms after the deadline`,
      )
      assert.ok(abortedAt - pausedAt < 600, 'aborted later than a full lease after the freeze')
      assert.equal(lostReason(lock), 'unreachable')
      assert.equal(lock.isHeld(), false)
      // Calls settle in bounded time instead of hanging.
      const started = performance.now()
      const outcome = await l.tryAcquire('frozen-2', { lifetimeMs: 300 }).then(
        () => 'resolved',
        (e: LockError) => e.code,
      )
      assert.equal(outcome, 'ERR_LOCK_BACKEND')
      assert.ok(performance.now() - started < 1000)
    } finally {
      ctx.server.resume()
    }
    await l.close()
  })
})
