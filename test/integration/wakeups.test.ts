import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Lock, Locker } from '../../src/index.js'
import { releaseChannel } from '../../src/internal/keys.js'
import { describeMatrix } from '../helpers/matrix.js'
import { waitFor } from '../helpers/wait.js'

async function evalshaCalls(admin: { info(section: string): Promise<string> }): Promise<number> {
  const info = await admin.info('commandstats')
  return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0)
}

describeMatrix('wake-ups and batching', (ctx) => {
  const locker = async (options?: ConstructorParameters<typeof Locker>[1]) =>
    new Locker(await ctx.client(), options)

  for (const where of ['another Locker (pub/sub)', 'the same Locker (local hand-over)']) {
    test(`a waiter in ${where} is woken by release long before its retry interval`, async () => {
      const holderLocker = await locker()
      const waiterLocker = where.startsWith('another') ? await locker() : holderLocker
      try {
        const held = await holderLocker.acquire('w1', { lifetimeMs: 10_000 })
        const pending = waiterLocker.acquire('w1', { retryIntervalMs: 5000, retryTimeoutMs: 10_000 })
        // Released once the waiter listens (a SUBSCRIBE can take a while on a loaded
        // runner, and a release before it is caught by the re-check, not the message).
        if (waiterLocker !== holderLocker)
          await waitFor(
            async () =>
              Number(((await ctx.admin.call('PUBSUB', 'NUMSUB', releaseChannel('w1'))) as unknown[])[1]) >= 1,
            { message: 'the waiter subscribed' },
          )
        await sleep(200)
        const releasedAt = performance.now()
        await held.release()
        const lock = await pending
        const took = performance.now() - releasedAt
        assert.ok(took < 100, `woken ${Math.round(took)} ms after the release (retry interval 5000)`)
        await lock.release()
      } finally {
        // Closed even on failure: a lock left held would time out the tests after this one.
        await holderLocker.close()
        if (waiterLocker !== holderLocker) await waiterLocker.close()
      }
    })
  }

  test('a woken waiter that finds another of its keys taken passes the wake-up on to the next waiter of the key', async () => {
    // One release message wakes one waiter per Locker. Here it is a multi-key waiter
    // that is then blocked on its other key; the next waiter of the released key never
    // attempted (it queued behind the first), so no later holder carries its waiting
    // mark: without the hand-on it would sleep its whole retry interval.
    const [h, x, r] = [await locker(), await locker(), await locker()]
    const slow = { retryIntervalMs: 30_000, retryTimeoutMs: 30_000 }
    const held = await h.acquire('w6:b', { lifetimeMs: 20_000 })
    const both = r.acquire(['w6:a', 'w6:b'], slow)
    await sleep(100)
    const justB = r.acquire('w6:b', slow)
    await sleep(100)
    const a = await x.acquire('w6:a', { lifetimeMs: 20_000 })
    const releasedAt = performance.now()
    await held.release()
    const lock = await justB
    const took = performance.now() - releasedAt
    assert.ok(took < 1000, `the second waiter got w6:b ${Math.round(took)} ms after its release`)
    await lock.release()
    await a.release()
    await (await both).release()
    for (const l of [h, x, r]) await l.close()
  })

  test('a lock freed by expiry (no release message) is picked up within the holder’s TTL', async () => {
    const l = await locker()
    // A holder that vanished without releasing: only the TTL frees the key.
    await ctx.admin.set('w2', `arl1.${'c'.repeat(22)}`, 'PX', 400)
    const started = performance.now()
    const lock = await l.acquire('w2', { retryIntervalMs: 5000, retryTimeoutMs: 5000 })
    const took = performance.now() - started
    assert.ok(took < 600, `took ${Math.round(took)} ms for a 400 ms TTL`)
    await lock.release()
    await l.close()
  })

  test('killing the subscriber connection loses no waiter', async () => {
    const holder = await locker()
    const waiter = await locker()
    const held = await holder.acquire('w3', { lifetimeMs: 10_000 })
    const pending = waiter.acquire('w3', { retryIntervalMs: 5000, retryTimeoutMs: 10_000 })
    await sleep(200)
    const killed = await ctx.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    assert.ok(Number(killed) >= 1, 'a subscriber connection existed')
    await held.release()
    const releasedAt = performance.now()
    const lock = await pending
    const took = performance.now() - releasedAt
    // The release may be published while the subscriber reconnects. The bound the design
    // promises is the retry interval (5 s, ~4.8 s from here); noticing the reconnect makes
    // the waiter look again at once. GLIDE re-subscribes within milliseconds and tells
    // nobody: only its changed connection id shows it (it took ~2.8 s here before).
    assert.ok(took < 2500, `took ${Math.round(took)} ms: the reconnect was not noticed`)
    await lock.release()
    await holder.close()
    await waiter.close()
  })

  test('one release wakes one waiter, not all of them', async () => {
    const holder = await locker()
    const waiters = await locker()
    const held = await holder.acquire('w4', { lifetimeMs: 10_000 })
    const results: Lock[] = []
    const pending = Array.from({ length: 6 }, () =>
      waiters.acquire('w4', { retryIntervalMs: 20_000, retryTimeoutMs: 20_000 }).then((l) => results.push(l)),
    )
    await sleep(300)
    assert.equal(waiters.stats().waiting, 6)
    const before = await evalshaCalls(ctx.admin)
    await held.release()
    await waitFor(() => results.length === 1, { timeoutMs: 2000 })
    await sleep(100)
    const calls = (await evalshaCalls(ctx.admin)) - before - 1 // minus the holder's own release call
    assert.ok(calls <= 2, `${calls} acquisition attempts for one release with 6 waiters`)
    assert.equal(results.length, 1)
    // Each release hands over to the next waiter, in order.
    while (results.length < 6) {
      const n = results.length
      await results[n - 1]?.release()
      await waitFor(() => results.length === n + 1, { timeoutMs: 2000 })
    }
    await results[5]?.release()
    await Promise.all(pending)
    await holder.close()
    await waiters.close()
  })

  test('two Lockers looping on one key share it: the releaser does not simply re-take it', async () => {
    const a = await locker()
    const b = await locker()
    const counts = [0, 0]
    const until = performance.now() + 1500
    const loop = async (l: Locker, i: number) => {
      while (performance.now() < until) {
        const lock = await l.acquire('fair', { retryTimeoutMs: 5000 })
        counts[i] = (counts[i] ?? 0) + 1
        await sleep(1)
        await lock.release()
      }
    }
    await Promise.all([loop(a, 0), loop(b, 1)])
    const [x, y] = counts as [number, number]
    assert.ok(Math.min(x, y) / Math.max(x, y) > 0.3, `unfair split ${x} / ${y}`)
    await a.close()
    await b.close()
  })

  test('1,000 locks held across several lifetimes with batched extension: none lost', async () => {
    const l = await locker({ lifetimeMs: 600 })
    const locks: Lock[] = []
    for (let i = 0; i < 1000; i++) locks.push(await l.acquire(`many:${i}`))
    const callsBefore = l.stats().extendCalls
    await sleep(2000)
    const stats = l.stats()
    assert.equal(stats.lost, 0)
    assert.equal(stats.held, 1000)
    for (const lock of locks) assert.ok(lock.isHeld())
    const present = await ctx.admin.exists(...locks.map((k) => k.keys[0] as string))
    assert.equal(present, 1000)
    // One call per lease per interval would be ~6,000 calls; batches make it a few dozen.
    const calls = stats.extendCalls - callsBefore
    assert.ok(calls < 100, `${calls} extension calls for 1,000 leases over 2 s`)
    await Promise.all(locks.map((lock) => lock.release()))
    await l.close()
  })

  test('a lease deleted behind our back is lost; the others in its batch stay held', async () => {
    const l = await locker({ lifetimeMs: 400 })
    const locks: Lock[] = []
    for (let i = 0; i < 50; i++) locks.push(await l.acquire(`batch:${i}`))
    await ctx.admin.del('batch:17')
    await sleep(500)
    for (const [i, lock] of locks.entries()) {
      assert.equal(lock.isHeld(), i !== 17, `lock ${i}`)
      assert.equal(lock.signal.aborted, i === 17, `signal ${i}`)
    }
    assert.equal(l.stats().lost, 1)
    await l.close()
  })

  test('fences strictly increase across release, expiry and a restart without persistence', async () => {
    const fences: bigint[] = []
    const l1 = await locker({ fencing: true })
    const a = await l1.acquire('fence')
    fences.push(a.fence)
    await a.release()
    const b = await l1.acquire('fence')
    fences.push(b.fence)
    // Expiry: the key disappears without a release.
    await ctx.admin.pexpire('fence', 1)
    await sleep(50)
    const c = await l1.acquire('fence')
    fences.push(c.fence)
    await c.release()
    // Several acquisitions within the same microsecond range stay ordered too.
    for (let i = 0; i < 20; i++) {
      const x = await l1.acquire('fence')
      fences.push(x.fence)
      await x.release()
    }
    await l1.close()
    await ctx.server.restart()
    const l2 = await locker({ fencing: true })
    const d = await l2.acquire('fence', { retryTimeoutMs: 3000 })
    fences.push(d.fence)
    await d.release()
    await l2.close()
    for (let i = 1; i < fences.length; i++) {
      assert.ok(
        (fences[i] as bigint) > (fences[i - 1] as bigint),
        `fence ${i}: ${fences[i]} <= ${fences[i - 1]}`,
      )
    }
  })
})
