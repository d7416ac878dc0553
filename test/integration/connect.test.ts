import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Redis } from 'ioredis'
import { BackendError, LockError, Locker } from '../../src/index.js'
import { getFreePort, type RedisServer, startRedis } from '../helpers/redis-server.js'

async function rejection(p: Promise<unknown>): Promise<LockError> {
  try {
    await p
  } catch (err) {
    assert.ok(err instanceof LockError, `expected a LockError, got ${String(err)}`)
    return err
  }
  assert.fail('expected a rejection')
}

describe('fromUrl says why it cannot connect', () => {
  let server: RedisServer
  before(async () => {
    server = await startRedis({ args: ['--databases', '16'] })
    // Set after start: the helper's readiness PING has no password.
    const admin = new Redis({ port: server.port, host: '127.0.0.1' })
    await admin.config('SET', 'requirepass', 'sesame')
    admin.disconnect()
  })
  after(() => server.stop())

  test('a refused port: ECONNREFUSED in the message and the cause', async () => {
    const port = await getFreePort()
    const err = await rejection(Locker.fromUrl(`redis://127.0.0.1:${port}`, { connectTimeoutMs: 1000 }))
    assert.ok(err instanceof BackendError && err.operation === 'connect')
    assert.match(err.message, /ECONNREFUSED/)
    assert.equal((err.cause as { code?: string }).code, 'ECONNREFUSED')
    assert.doesNotMatch(err.message, /Connection is closed/)
  })

  test('a wrong or missing password: WRONGPASS / NOAUTH', async () => {
    const wrong = await rejection(
      Locker.fromUrl(`redis://:nope@127.0.0.1:${server.port}`, { connectTimeoutMs: 2000 }),
    )
    assert.equal(wrong.code, 'ERR_LOCK_BACKEND')
    assert.match(wrong.message, /WRONGPASS/)
    assert.match(String((wrong.cause as Error).message), /WRONGPASS/)
    const missing = await rejection(
      Locker.fromUrl(`redis://127.0.0.1:${server.port}`, { connectTimeoutMs: 2000 }),
    )
    assert.match(missing.message, /NOAUTH/)
  })

  test('an unknown host: ENOTFOUND (or the resolver failure) in the message', async () => {
    const err = await rejection(
      Locker.fromUrl('redis://no-such-host.invalid:6390', { connectTimeoutMs: 3000 }),
    )
    assert.equal(err.code, 'ERR_LOCK_BACKEND')
    assert.match(err.message, /ENOTFOUND|EAI_AGAIN|getaddrinfo/)
  })

  test('a database the server does not have fails, never falls back to database 0', async () => {
    const err = await rejection(
      Locker.fromUrl(`redis://:sesame@127.0.0.1:${server.port}/99`, { connectTimeoutMs: 2000 }),
    )
    assert.equal(err.code, 'ERR_LOCK_BACKEND')
    assert.match(err.message, /DB index is out of range/)
    // A database it has is used.
    const locker = await Locker.fromUrl(`redis://:sesame@127.0.0.1:${server.port}/7`)
    const admin = new Redis({ port: server.port, host: '127.0.0.1', password: 'sesame', db: 7 })
    try {
      const lock = await locker.acquire('db7-key')
      assert.equal(await admin.get('db7-key'), lock.token)
      await lock.release()
    } finally {
      await locker.close()
      admin.disconnect()
    }
  })

  test('a database that is not a whole number is refused before connecting (ioredis would read /abc as NaN and crash on its SELECT, /3.7 as 3)', async () => {
    const admin = new Redis({ port: server.port, host: '127.0.0.1', password: 'sesame' })
    const received = async () =>
      Number((await admin.info('stats')).match(/total_connections_received:(\d+)/)?.[1] ?? Number.NaN)
    const before = await received()
    for (const path of ['/abc', '/3.7', '/1e3', '/-1', '/%39%39', '/3/x', '/?db=x', '/?db=2.5']) {
      const err = await rejection(Locker.fromUrl(`redis://:sesame@127.0.0.1:${server.port}${path}`))
      assert.equal(err.code, 'ERR_LOCK_INVALID_ARGUMENT', path)
      assert.match(err.message, /whole number/, path)
    }
    // Nothing connected: the check comes before the client is created.
    assert.equal(await received(), before)
    admin.disconnect()
    // The forms that name a database (or none) still connect.
    for (const path of ['', '/', '/0', '/7', '/?db=7']) {
      const locker = await Locker.fromUrl(`redis://:sesame@127.0.0.1:${server.port}${path}`)
      await locker.close()
    }
  })

  test('a server at its maxclients: its own refusal in the message, not the write that failed', async () => {
    const full = await startRedis({ args: ['--maxclients', '1'] })
    const hog = new Redis({ port: full.port, host: '127.0.0.1' })
    try {
      await hog.ping()
      const err = await rejection(
        Locker.fromUrl(`redis://127.0.0.1:${full.port}`, { connectTimeoutMs: 2000 }),
      )
      assert.equal(err.code, 'ERR_LOCK_BACKEND')
      assert.match(err.message, /max number of clients reached/)
    } finally {
      hog.disconnect()
      await full.stop()
    }
  })

  test('rediss:// against a plain server hints at TLS', async () => {
    const err = await rejection(
      Locker.fromUrl(`rediss://:sesame@127.0.0.1:${server.port}`, { connectTimeoutMs: 1000 }),
    )
    assert.equal(err.code, 'ERR_LOCK_BACKEND')
    assert.match(err.message, /TLS/)
  })
})

describe('a client configured to return integers as strings', () => {
  let server: RedisServer
  before(async () => {
    server = await startRedis()
  })
  after(() => server.stop())

  test('ioredis with stringNumbers: acquire, fenced acquire, extend, release, semaphore permits and inspect work', async () => {
    const client = new Redis({ port: server.port, host: '127.0.0.1', stringNumbers: true })
    const l = new Locker(client, { lifetimeMs: 2000 })
    try {
      const lock = await l.acquire('sn', { fencing: true })
      await lock.extend()
      assert.equal((await l.inspect('sn')).isHeld, true)
      assert.equal(await lock.release(), true)
      const permits = [await l.acquire('sn-sem', { limit: 2 }), await l.acquire('sn-sem', { limit: 2 })]
      assert.equal(await l.tryAcquire('sn-sem', { limit: 2 }), null)
      for (const p of permits) assert.equal(await p.release(), true)
      assert.equal(Number(await client.exists('sn', 'sn-sem')), 0)
    } finally {
      await l.close()
      client.disconnect()
    }
  })
})
