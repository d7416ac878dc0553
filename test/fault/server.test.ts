import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { type Lock, LockError, Locker, type LockLostError } from '../../src/index.js'
import { describeMatrix } from '../helpers/matrix.js'
import { startRedis } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

function reasonOf(lock: Lock): string | undefined {
  return (lock.signal.reason as LockLostError | undefined)?.reason
}

function settle(
  p: Promise<unknown>,
): Promise<{ value?: unknown; code?: string; cause?: string; at: number }> {
  return p.then(
    (value) => ({ value, at: performance.now() }),
    (e: unknown) => ({
      code: e instanceof LockError ? e.code : String(e),
      cause: String((e as { cause?: { message?: string } }).cause?.message),
      at: performance.now(),
    }),
  )
}

describeMatrix('faults on the Redis server', (ctx) => {
  const LEASE = 600

  for (const factor of [0.3, 1, 3]) {
    test(`Redis SIGSTOPped for ${factor}× the lease`, async () => {
      const l = new Locker(await ctx.client(), { lifetimeMs: LEASE })
      const lock = await l.acquire(`stop-${factor}`)
      await sleep(50)
      let abortedAt = 0
      lock.signal.addEventListener('abort', () => {
        abortedAt = performance.now()
      })
      const deadline = performance.now() + lock.remainingMs()
      ctx.server.pause()
      const pausedAt = performance.now()
      // Calls made while Redis is frozen settle in bounded time instead of hanging.
      const attempt = settle(l.tryAcquire(`stop-${factor}-other`, { lifetimeMs: LEASE }))
      const release = settle(lock.extend())
      await sleep(LEASE * factor)
      ctx.server.resume()
      const [a, e] = await Promise.all([attempt, release])
      // One attempt waits attemptTimeoutMs (a quarter of the lease), not the lease.
      assert.ok(a.at - pausedAt < LEASE / 4 + 300, `acquire settled after ${Math.round(a.at - pausedAt)} ms`)
      assert.equal(a.code, 'ERR_LOCK_BACKEND')
      assert.ok(e.at - pausedAt < LEASE * factor + LEASE + 300, 'extend settled too late')
      if (factor < 1) {
        assert.equal(lock.isHeld(), true, 'a short freeze must not cost the lock')
        // The timed-out attempt is undone once Redis answers again.
        await waitFor(async () => (await ctx.admin.exists(`stop-${factor}-other`)) === 0, { timeoutMs: 1500 })
      } else {
        assert.ok(
          abortedAt > 0 && abortedAt <= deadline + 30,
          `aborted ${Math.round(abortedAt - deadline)} ms late`,
        )
        assert.equal(reasonOf(lock), 'unreachable')
        assert.equal(a.code, 'ERR_LOCK_BACKEND')
        // Commands delivered late after SIGCONT do no harm: the timed-out acquisition
        // is undone and the lost lease is cleaned up.
        await waitFor(async () => (await ctx.admin.exists(`stop-${factor}`, `stop-${factor}-other`)) === 0, {
          timeoutMs: 1500,
        })
      }
      await l.close()
    })
  }

  test('Redis not answering: one tryAcquire is bounded by attemptTimeoutMs, not the lease', async () => {
    const l = new Locker(await ctx.client(), { lifetimeMs: 3000 })
    try {
      ctx.server.pause()
      const started = performance.now()
      const err = await l.tryAcquire('unanswered').then(
        () => undefined,
        (e: unknown) => e,
      )
      const tookMs = performance.now() - started
      assert.ok(err instanceof LockError && err.code === 'ERR_LOCK_BACKEND', String(err))
      // Default attemptTimeoutMs: a quarter of the 3 s lease, 750 ms (was about the whole lease).
      assert.ok(tookMs >= 700 && tookMs < 750 + 400, `took ${tookMs.toFixed(0)} ms`)
    } finally {
      ctx.server.resume()
      await l.close()
    }
  })

  // GLIDE exposes no connection state: its attempts are bounded by attemptTimeoutMs instead.
  const noState = ctx.kind === 'valkey-glide' && 'GLIDE exposes no connection state'
  test('a client that lost its connection: an attempt fails at once instead of waiting in the offline queue', {
    skip: noState,
  }, async () => {
    const l = new Locker(await ctx.client(), { lifetimeMs: 3000 })
    try {
      const warm = await l.acquire('offline')
      await warm.release()
      await ctx.server.kill()
      await sleep(300) // the client has noticed and is reconnecting
      const started = performance.now()
      const err = await l.tryAcquire('offline').then(
        () => undefined,
        (e: unknown) => e,
      )
      const tookMs = performance.now() - started
      assert.ok(err instanceof LockError && err.code === 'ERR_LOCK_BACKEND', String(err))
      assert.ok(tookMs < 200, `took ${tookMs.toFixed(0)} ms`)
    } finally {
      await ctx.server.restart()
      await l.close()
    }
  })

  test('a Locker built on an ioredis client that is already reconnecting fails an attempt at once too', {
    skip: ctx.kind !== 'ioredis' && 'ioredis only: its status tells a reconnect from a first connect',
  }, async () => {
    const client = await ctx.client()
    await client.ping()
    await ctx.server.kill()
    try {
      await sleep(300) // the client has noticed and is reconnecting
      const l = new Locker(client, { lifetimeMs: 3000 })
      try {
        const started = performance.now()
        const err = await l.tryAcquire('offline-new').then(
          () => undefined,
          (e: unknown) => e,
        )
        const tookMs = performance.now() - started
        assert.ok(err instanceof LockError && err.code === 'ERR_LOCK_BACKEND', String(err))
        assert.match(err.message, /reconnecting/)
        assert.ok(tookMs < 200, `took ${tookMs.toFixed(0)} ms`)
      } finally {
        await l.close()
      }
    } finally {
      await ctx.server.restart()
    }
  })

  test('an outage of ~1.5 s: waiters with a long retryTimeoutMs get the lock after the restart; a short one rejects with the last error in its bound', async (t) => {
    const holder = new Locker(await ctx.client(), { lifetimeMs: 1000 })
    const waiting = new Locker(await ctx.client(), { lifetimeMs: 1000, retryIntervalMs: 200 })
    try {
      const lock = await holder.acquire('outage')
      const patient = waiting.acquire('outage', { retryTimeoutMs: 15_000 })
      await sleep(100) // parked on the held key
      await ctx.server.kill()
      const startedShort = performance.now()
      const impatient = waiting.acquire('outage-short', { retryTimeoutMs: 600 }).then(
        () => undefined,
        (err: unknown) => err,
      )
      const impatientErr = await impatient
      const shortMs = performance.now() - startedShort
      assert.ok(impatientErr instanceof LockError, String(impatientErr))
      assert.equal(impatientErr.code, 'ERR_LOCK_BACKEND')
      assert.ok(impatientErr.cause instanceof Error, 'the last error is the cause')
      // retryTimeoutMs plus one attempt bound (250 ms here) and scheduling slack.
      assert.ok(shortMs < 600 + 250 + 400, `rejected after ${shortMs.toFixed(0)} ms`)
      await sleep(900)
      await ctx.server.restart() // empty: the holder's key is gone
      const startedAfter = performance.now()
      const got = await patient
      t.diagnostic(
        `patient waiter got the lock ${(performance.now() - startedAfter).toFixed(0)} ms after the restart`,
      )
      assert.equal(got.isHeld(), true)
      assert.equal(lock.isHeld(), false, 'the old holder knows it lost the key')
      await got.release()
    } finally {
      await holder.close()
      await waiting.close()
    }
  })

  test('Redis killed and restarted empty: the holder learns at its next extension; fences keep rising', async () => {
    const l = new Locker(await ctx.client(), { lifetimeMs: 1000, fencing: true })
    const lock = await l.acquire('restart')
    await ctx.server.restart()
    const restartedAt = performance.now()
    await waitFor(() => lock.signal.aborted, { timeoutMs: 3000 })
    assert.ok(performance.now() - restartedAt < 1000, 'not told by the next extension')
    assert.ok(['deleted', 'unreachable'].includes(reasonOf(lock) ?? ''), reasonOf(lock))
    const again = await l.acquire('restart', { retryTimeoutMs: 3000 })
    assert.ok(again.fence > lock.fence)
    await again.release()
    await l.close()
  })

  test('shared holders and semaphore permits: Redis frozen past the lease aborts each by its deadline; restarted empty, each learns at its next extension', async () => {
    const l = new Locker(await ctx.client(), { lifetimeMs: LEASE })
    const holds = [
      await l.acquire('kinds-s', { shared: true }),
      await l.acquire('kinds-s', { shared: true }),
      await l.acquire('kinds-n', { limit: 3 }),
      await l.acquire('kinds-n', { limit: 3 }),
    ]
    const abortedAt = holds.map(() => 0)
    holds.forEach((h, i) => {
      h.signal.addEventListener('abort', () => {
        abortedAt[i] = performance.now()
      })
    })
    const deadlines = holds.map((h) => performance.now() + h.remainingMs())
    ctx.server.pause()
    await sleep(LEASE * 2)
    ctx.server.resume()
    holds.forEach((h, i) => {
      assert.equal(reasonOf(h), 'unreachable')
      assert.ok((abortedAt[i] ?? 0) <= (deadlines[i] ?? 0) + 30, `holder ${i} aborted late`)
    })
    // The lost holders' entries are cleaned up once Redis answers.
    await waitFor(async () => (await ctx.admin.exists('kinds-s', 'kinds-n')) === 0, { timeoutMs: 2000 })
    const again = [await l.acquire('kinds-s', { shared: true }), await l.acquire('kinds-n', { limit: 3 })]
    await ctx.server.restart()
    const restartedAt = performance.now()
    await waitFor(() => again.every((h) => h.signal.aborted), { timeoutMs: 3000 })
    assert.ok(performance.now() - restartedAt < LEASE + 300, 'not told by the next extension')
    for (const h of again)
      assert.ok(['deleted', 'expired', 'unreachable'].includes(reasonOf(h) ?? ''), reasonOf(h))
    await l.close()
  })

  test('writes paused (CLIENT PAUSE WRITE): holder told by its deadline, acquire fails as a backend error', async () => {
    const l = new Locker(await ctx.client(), { lifetimeMs: 400 })
    const lock = await l.acquire('paused')
    const pauser = new Redis(ctx.url)
    await pauser.client('PAUSE', 1200, 'WRITE')
    const started = performance.now()
    const attempt = await settle(l.tryAcquire('paused-2'))
    assert.equal(attempt.code, 'ERR_LOCK_BACKEND')
    assert.ok(attempt.at - started < 800)
    await waitFor(() => lock.signal.aborted, { timeoutMs: 1000 })
    assert.equal(reasonOf(lock), 'unreachable')
    await pauser.client('UNPAUSE')
    await waitFor(async () => (await ctx.admin.exists('paused', 'paused-2')) === 0, { timeoutMs: 1500 })
    pauser.disconnect()
    await l.close()
  })

  test('a long-running script (BUSY) is a backend error, promptly', async () => {
    await ctx.admin.config('SET', 'busy-reply-threshold', '50')
    const l = new Locker(await ctx.client(), { lifetimeMs: 2000 })
    const blocker = new Redis(ctx.url)
    blocker.on('error', () => {})
    const spin = blocker.eval('local t = 0 while true do t = t + 1 end', 0).catch(() => {})
    await sleep(120)
    const started = performance.now()
    const attempt = await settle(l.tryAcquire('busy'))
    assert.equal(attempt.code, 'ERR_LOCK_BACKEND')
    assert.match(attempt.cause ?? '', /BUSY/)
    assert.ok(performance.now() - started < 1000)
    await ctx.admin.script('KILL')
    await spin
    blocker.disconnect()
    await ctx.admin.config('SET', 'busy-reply-threshold', '5000')
    await l.close()
  })

  const glideSkip =
    ctx.kind === 'valkey-glide' && 'GLIDE does not connect to an address that is only a replica'
  test('a read-only replica answers READONLY: a backend error, never "acquired" or "busy"', {
    skip: glideSkip,
  }, async () => {
    const replica = await startRedis({ args: ['--replicaof', ctx.server.host, String(ctx.server.port)] })
    try {
      const l = new Locker(await ctx.client({ url: replica.url }))
      const attempt = await settle(l.acquire('replica', { retryTimeoutMs: 2000 }))
      assert.equal(attempt.code, 'ERR_LOCK_BACKEND')
      assert.match(attempt.cause ?? '', /READONLY/)
      await l.close()
    } finally {
      await replica.stop()
    }
  })
})
