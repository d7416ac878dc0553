// Issue 14: what the lock sends in one event-loop turn leaves the process as one write,
// on every client library, and each request in it keeps its own reply and error.
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import { TickCork } from '../../src/adapters/tick-cork.js'
import { type Lock, Locker } from '../../src/index.js'
import { describeMatrix } from '../helpers/matrix.js'
import { countWrites } from '../helpers/writes.js'

/** Nothing else may write meanwhile: connect, load the scripts and warm up first. */
async function warmLocker(locker: Locker): Promise<void> {
  const lock = await locker.acquire('coalesce:warm', { fencing: true })
  await lock.release()
  await (await locker.acquire('coalesce:warm')).release()
}

describeMatrix('one write per turn (issue 14)', (ctx) => {
  test('32 acquisitions started in one turn leave in a few writes, and so do their 32 releases', async () => {
    const locker = new Locker(await ctx.client(), { lifetimeMs: 30_000 })
    await warmLocker(locker)
    const keys = Array.from({ length: 32 }, (_, i) => `coalesce:a:${i}`)
    const acquired = await countWrites(() => Promise.all(keys.map((k) => locker.acquire(k))))
    // ioredis (our TickCork): batches of 1, 4, 16 and the last 11. node-redis writes a
    // turn at once; GLIDE the first request at once and the rest when that write is done.
    assert.ok(acquired.writes <= 4, `${acquired.writes} writes for 32 acquisitions`)
    for (const [i, lock] of acquired.result.entries()) assert.equal(await ctx.admin.get(keys[i]!), lock.token)
    const released = await countWrites(() => Promise.all(acquired.result.map((l) => l.release())))
    assert.ok(released.writes <= 4, `${released.writes} writes for 32 releases`)
    assert.equal(await ctx.admin.exists(...keys), 0)
    await locker.close()
  })

  if (ctx.kind === 'ioredis')
    test('negative control: without TickCork, ioredis writes each of the 32 commands on its own', async (t) => {
      t.mock.method(TickCork.prototype, 'enter', () => false)
      const locker = new Locker(await ctx.client(), { lifetimeMs: 30_000 })
      await warmLocker(locker)
      const keys = Array.from({ length: 32 }, (_, i) => `coalesce:n:${i}`)
      const acquired = await countWrites(() => Promise.all(keys.map((k) => locker.acquire(k))))
      assert.ok(acquired.writes >= 32, `${acquired.writes} writes`)
      await Promise.all(acquired.result.map((l) => l.release()))
      await locker.close()
    })

  test('fenced and multi-key acquisitions of one turn are one write too, each with its own reply', async () => {
    const locker = new Locker(await ctx.client(), { lifetimeMs: 30_000 })
    await warmLocker(locker)
    const other = new Locker(await ctx.client(), { lifetimeMs: 30_000 })
    const taken = await other.acquire('coalesce:f:taken')
    const { writes, result } = await countWrites(() =>
      Promise.all([
        ...Array.from({ length: 8 }, (_, i) => locker.tryAcquire(`coalesce:f:${i}`, { fencing: true })),
        locker.tryAcquire(['coalesce:m:1', 'coalesce:m:2']),
        locker.tryAcquire('coalesce:f:taken'),
      ]),
    )
    assert.ok(writes <= 4, `${writes} writes for 10 acquisitions`)
    const fences = result.slice(0, 8).map((l) => (l as Lock).fence)
    assert.ok(fences.every((f) => typeof f === 'bigint'))
    assert.ok(result[8], 'the multi-key acquisition')
    assert.equal(result[9], null, 'the taken key stays taken; the others are unaffected')
    await Promise.all(result.map((l) => l?.release()))
    await taken.release()
    await other.close()
    await locker.close()
  })

  test("an error reply to one command of the turn fails only that command, and a turn's order is kept", async () => {
    const client = await ctx.client()
    const locker = new Locker(client, { lifetimeMs: 30_000 })
    await warmLocker(locker)
    // The lock key of a wrong type: its acquisition is refused by Redis (WRONGTYPE from
    // the script's GET), in the same write as acquisitions that succeed.
    await ctx.admin.rpush('coalesce:e:list', 'x')
    const outcomes = await Promise.all([
      locker.tryAcquire('coalesce:e:1', { fencing: true }),
      locker.tryAcquire('coalesce:e:list', { fencing: true }).then(
        () => 'acquired',
        (err: unknown) => (err as { code?: string }).code,
      ),
      locker.tryAcquire('coalesce:e:2', { fencing: true }),
    ])
    assert.ok(outcomes[0] && typeof outcomes[0] === 'object')
    assert.equal(outcomes[1], 'ERR_LOCK_BACKEND')
    assert.ok(outcomes[2] && typeof outcomes[2] === 'object')
    await (outcomes[0] as Lock).release()
    await (outcomes[2] as Lock).release()
    // Release then acquire of one key in one turn: the acquisition is sent after the
    // release, and finds the key free.
    const a = await locker.acquire('coalesce:order')
    const [, b] = await Promise.all([a.release(), locker.tryAcquire('coalesce:order')])
    assert.ok(b, 'an acquisition sent after a release in the same turn overtook it')
    await b.release()
    await locker.close()
  })
})

test('countWrites counts one write per socket write call (negative control: corking off)', async () => {
  const server = net.createServer((s) => s.resume())
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  const socket = net.connect(port, '127.0.0.1')
  await new Promise((r) => socket.once('connect', r))
  const flushed = () => new Promise<void>((r) => socket.write('', () => r()))
  const separate = await countWrites(async () => {
    for (let i = 0; i < 5; i++) socket.write('x')
    await flushed()
  })
  assert.ok(separate.writes >= 5, `${separate.writes}: five uncorked writes must count as five`)
  const corked = await countWrites(async () => {
    socket.cork()
    for (let i = 0; i < 5; i++) socket.write('x')
    process.nextTick(() => socket.uncork())
    await flushed()
  })
  assert.ok(corked.writes <= 2, `${corked.writes}: five corked writes are one writev`)
  socket.destroy()
  await new Promise((r) => server.close(r))
})
