import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { test } from 'node:test'
import { LockError, Locker } from '../../src/index.js'
import { describeMatrix } from '../helpers/matrix.js'

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<LockError> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (err) {
    assert.ok(err instanceof LockError, `expected a LockError, got ${String(err)}`)
    return err
  }
  assert.fail('expected a rejection')
}

async function commandsProcessed(ctx: {
  admin: { info(section: string): Promise<string> }
}): Promise<number> {
  const info = await ctx.admin.info('stats')
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1])
}

describeMatrix('bad input and backend failures', (ctx) => {
  test('bad input rejects with ERR_LOCK_INVALID_ARGUMENT naming the problem, before any command is sent', async () => {
    const l = new Locker(await ctx.client())
    const cases: [() => unknown, RegExp][] = [
      [() => l.acquire(''), /keys\[0\].*non-empty string.*""/],
      [() => l.acquire(42 as never), /keys must be.*received 42/],
      [() => l.acquire([]), /empty array/],
      [() => l.acquire(['a', 7] as never), /keys\[1\].*received 7/],
      [() => l.acquire(['a', 'a']), /distinct.*"a"/],
      [
        () => l.acquire('a', { lifetimeMs: 1000, extendIntervalMs: 1000 }),
        /extendIntervalMs.*less than lifetimeMs \(1000\).*1000/,
      ],
      [() => l.acquire('a', { lifetimeMs: 0 }), /lifetimeMs.*received 0/],
      [() => l.acquire('a', { lifetimeMs: -5 }), /lifetimeMs.*received -5/],
      [() => l.acquire('a', { lifetimeMs: 1.5 }), /lifetimeMs.*received 1.5/],
      [() => l.acquire('a', { lifetimeMs: Number.NaN }), /lifetimeMs.*received NaN/],
      [
        () => l.acquire('a', { retryIntervalMs: Number.POSITIVE_INFINITY }),
        /retryIntervalMs.*received Infinity/,
      ],
      [() => l.acquire('a', { retryTimeoutMs: -1 }), /retryTimeoutMs.*received -1/],
      [() => l.acquire('a', { retryTimeoutMs: '5' as never }), /retryTimeoutMs.*received "5"/],
      [() => l.acquire('a', { lifetime: 5 } as never), /unknown acquire option "lifetime"/],
      [() => l.acquire('a', { signal: {} as never }), /signal must be an AbortSignal/],
      [() => l.tryAcquire('a', { extendIntervalMs: 0 }), /extendIntervalMs.*received 0/],
      [() => l.withLock('a', 'nope' as never), /function/],
      [() => new Locker({} as never), /client must be an ioredis.*received an object/],
      [() => new Locker(null as never), /client must be.*received null/],
      [() => new Locker(ctx.admin, { prefix: 5 } as never), /prefix must be a string/],
      [() => new Locker(ctx.admin, { lifetimeMs: 100, extendIntervalMs: 200 }), /extendIntervalMs/],
      [() => Locker.fromUrl('http://x'), /redis:\/\/.*"http:\/\/x"/],
      [() => Locker.fromUrl('redis://127.0.0.1:1', { connectTimeoutMs: 0 }), /connectTimeoutMs/],
    ]
    const before = await commandsProcessed(ctx)
    for (const [call, message] of cases) {
      const err = await codeOf(call)
      assert.equal(err.code, 'ERR_LOCK_INVALID_ARGUMENT', `${call}: ${err.message}`)
      assert.match(err.message, message)
    }
    const after = await commandsProcessed(ctx)
    assert.equal(after - before, 1, 'only our own INFO may have reached Redis')
    // The edges that are valid: a single attempt, waiting forever, lifetime alone.
    const once = await l.acquire('valid', { retryTimeoutMs: 0, lifetimeMs: 500 })
    await once.release()
    const forever = await l.acquire('valid', { retryTimeoutMs: null })
    await forever.release()
    await l.close()
  })

  test('WRONGTYPE is a backend failure, reported at once, not contention', async () => {
    const l = new Locker(await ctx.client())
    await ctx.admin.hset('wrong', 'f', 'v')
    const started = performance.now()
    const err = await codeOf(l.acquire('wrong', { retryTimeoutMs: 5000 }))
    assert.equal(err.code, 'ERR_LOCK_BACKEND')
    assert.match(String((err.cause as Error)?.message), /WRONGTYPE/)
    assert.ok(performance.now() - started < 1000, 'must not retry until the timeout')
    assert.equal(await codeOf(l.tryAcquire('wrong')).then((e) => e.code), 'ERR_LOCK_BACKEND')
    // inspect says what acquire says, not a raw script error.
    const inspected = await codeOf(l.inspect('wrong'))
    assert.equal(inspected.code, 'ERR_LOCK_BACKEND')
    assert.match(inspected.message, /wrong holds a non-string value, not a lock/)
    assert.match(err.message, /wrong holds a non-string value, not a lock/)
    await ctx.admin.del('wrong')
    await l.close()
  })

  test('NOPERM from an ACL user is a backend failure', async () => {
    // No scripts: a fenced acquisition (a script) and a release (a script) fail.
    await ctx.admin.call('ACL', 'SETUSER', 'noscripts', 'on', '>secret', '~*', '+@all', '-evalsha', '-eval')
    const l = new Locker(await ctx.client({ url: ctx.url.replace('redis://', 'redis://noscripts:secret@') }))
    const err = await codeOf(l.acquire('perm', { retryTimeoutMs: 5000, fencing: true }))
    assert.equal(err.code, 'ERR_LOCK_BACKEND')
    assert.match(String((err.cause as Error)?.message), /NOPERM|permission/i)
    const lock = await l.acquire('perm', { lifetimeMs: 500 }) // a plain SET NX PX is allowed
    const released = await codeOf(lock.release())
    assert.equal(released.code, 'ERR_LOCK_BACKEND')
    assert.match(String((released.cause as Error)?.message), /NOPERM|permission/i)
    await l.close()
    // No SET: an unfenced single-key acquisition fails at once, not as contention.
    await ctx.admin.call('ACL', 'SETUSER', 'noset', 'on', '>secret', '~*', '+@all', '-set')
    const m = new Locker(await ctx.client({ url: ctx.url.replace('redis://', 'redis://noset:secret@') }))
    const started = performance.now()
    const denied = await codeOf(m.acquire('perm2', { retryTimeoutMs: 5000 }))
    assert.equal(denied.code, 'ERR_LOCK_BACKEND')
    assert.match(String((denied.cause as Error)?.message), /NOPERM|permission/i)
    assert.ok(performance.now() - started < 1000, 'must not retry until the timeout')
    await m.close()
  })

  test('OOM: acquire fails as a backend error, release still works', async () => {
    const l = new Locker(await ctx.client())
    const lock = await l.acquire('oom', { lifetimeMs: 5000 })
    await ctx.admin.config('SET', 'maxmemory-policy', 'noeviction')
    await ctx.admin.config('SET', 'maxmemory', '1')
    try {
      const err = await codeOf(l.acquire('oom2', { retryTimeoutMs: 2000 }))
      assert.equal(err.code, 'ERR_LOCK_BACKEND')
      assert.match(String((err.cause as Error)?.message), /OOM/)
      assert.equal(await lock.release(), true)
    } finally {
      await ctx.admin.config('SET', 'maxmemory', '0')
    }
    assert.equal(await ctx.admin.exists('oom'), 0)
    await l.close()
  })

  test('NOSCRIPT after SCRIPT FLUSH is handled transparently', async () => {
    const l = new Locker(await ctx.client())
    const a = await l.acquire('noscript')
    await ctx.admin.script('FLUSH')
    await a.extend()
    assert.equal(await a.release(), true)
    await ctx.admin.script('FLUSH')
    const b = await l.acquire('noscript')
    await b.release()
    await l.close()
  })
})

test('fromUrl rejects promptly with ERR_LOCK_BACKEND when nothing listens', async () => {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer()
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port
      srv.close(() => resolve(p))
    })
  })
  const started = performance.now()
  const err = await codeOf(Locker.fromUrl(`redis://127.0.0.1:${port}`, { connectTimeoutMs: 1000 }))
  assert.equal(err.code, 'ERR_LOCK_BACKEND')
  assert.ok(err.cause, 'the connection error is kept as cause')
  assert.ok(performance.now() - started < 2500)
})
