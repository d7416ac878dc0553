import assert from 'node:assert/strict'
import { after, afterEach, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { Redis } from 'ioredis'
import {
  InvalidArgumentError,
  type KeyInspection,
  type Lock,
  type LockError,
  Locker,
  LockLostError,
} from '../../src/index.js'
import { fenceKey, holdersKey, queueKey, writerKey } from '../../src/internal/keys.js'
import { createLocker } from '../../src/internal/testing.js'
import { ACQUIRE_HOLDER, RELEASE_HOLDER, type ScriptOverrides } from '../../src/scripts/index.js'
import { rejectsWith } from '../helpers/assertions.js'
import { describeMatrix } from '../helpers/matrix.js'
import { spawnWorker, type Worker } from '../helpers/processes.js'
import { type RedisServer, startRedis } from '../helpers/redis-server.js'
import { track, waitFor } from '../helpers/wait.js'

// Shared locks (`shared: true`) and semaphores (`limit: N`) against a real redis-server,
// on each client library. Wake-up tests give waiters a 5 s retry interval and holders a
// 10 s lease: an acquisition well under a second after a release was woken by it.

function lostReason(lock: Lock): string | undefined {
  const reason = lock.signal.reason as unknown
  return reason instanceof LockLostError ? reason.reason : undefined
}

/** Waiting: a wake-up is the only thing that can end it in under a second. */
const SLOW = { retryIntervalMs: 5000, retryTimeoutMs: 20_000, lifetimeMs: 10_000 } as const
/** Holders whose lease outlasts the test: no expiry can free their place. */
const LONG = { lifetimeMs: 10_000 } as const
/** A woken waiter gets the lock within about a round trip; this is the loose bound (2 noisy cores). */
const WOKEN_MS = 400

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value
}

/** Everything Redis stores for a lock key: its value, holders set, writer and fence marks. */
async function snapshot(admin: Redis, key: string): Promise<unknown> {
  const [dumpKey, dumpHolders] = await Promise.all([admin.dumpBuffer(key), admin.dumpBuffer(holdersKey(key))])
  return {
    dump: [dumpKey?.toString('hex') ?? null, dumpHolders?.toString('hex') ?? null],
    value: await admin.get(key),
    holders: await admin.zrange(holdersKey(key), '0', '-1', 'WITHSCORES'),
    writer: await admin.exists(writerKey(key)),
    fence: await admin.exists(fenceKey(key)),
  }
}

/** Redis' clock in ms (holder scores are server time). */
async function serverNowMs(admin: Redis): Promise<number> {
  const [s, us] = await admin.time()
  return Number(s) * 1000 + Math.floor(Number(us) / 1000)
}

/**
 * `loops` concurrent acquire–hold–release loops per Locker on a `limit` semaphore for
 * `ms`; counts holders inside the critical section in this process (a holder leaves it
 * before releasing, so a correct semaphore never shows more than `limit`).
 */
async function maxConcurrent(
  lockers: readonly Locker[],
  key: string,
  limit: number,
  ms: number,
  loops = 3,
): Promise<{ max: number; cycles: number }> {
  let inside = 0
  let max = 0
  let cycles = 0
  const until = performance.now() + ms
  const loop = async (l: Locker) => {
    while (performance.now() < until) {
      const lock = await l.acquire(key, { limit, retryTimeoutMs: 10_000, retryIntervalMs: 200 })
      inside++
      max = Math.max(max, inside)
      cycles++
      await sleep(3)
      inside--
      await lock.release()
    }
  }
  await Promise.all(lockers.flatMap((l) => Array.from({ length: loops }, () => loop(l))))
  return { max, cycles }
}

describeMatrix('shared locks and semaphores', (ctx) => {
  const open = new Set<Locker>()
  const locker = async (options?: ConstructorParameters<typeof Locker>[1]) => {
    const l = new Locker(await ctx.client(), options)
    open.add(l)
    return l
  }
  /** A Locker whose scripts are replaced (negative controls); `{}` for the real ones. */
  const lockerWith = async (scripts: ScriptOverrides) => {
    const l = createLocker(await ctx.client(), undefined, { scripts })
    open.add(l)
    return l
  }
  afterEach(async () => {
    await Promise.all([...open].map((l) => l.close()))
    open.clear()
  })

  for (const where of ['another Locker (pub/sub)', 'the last releaser’s Locker (local hand-over)']) {
    test(`shared holders coexist; an exclusive acquisition waits for all of them and is woken by the last release, in ${where}`, async () => {
      const [a, b] = [await locker(), await locker()]
      const w = where.startsWith('another') ? await locker() : b
      const ra = await a.acquire('rw1', { shared: true, ...LONG })
      const rb = await b.acquire('rw1', { shared: true, ...LONG })
      assert.ok(ra.isHeld() && rb.isHeld())
      assert.notEqual(ra.token, rb.token)
      const state = await a.inspect('rw1')
      assert.equal(state.kind, 'shared')
      assert.equal(state.holders.length, 2)
      assert.equal(await w.tryAcquire('rw1'), null, 'an exclusive holder never joins shared ones')
      const writer = track(w.acquire('rw1', SLOW))
      await sleep(300)
      assert.equal(writer.settled, false, 'the writer got in beside two shared holders')
      await ra.release()
      await sleep(300)
      assert.equal(writer.settled, false, 'the writer got in beside the remaining shared holder')
      assert.equal((await a.inspect('rw1')).holders.length, 1)
      const releasedAt = performance.now()
      await rb.release()
      const lock = await writer.promise
      const took = performance.now() - releasedAt
      assert.ok(took < WOKEN_MS, `writer got it ${Math.round(took)} ms after the last release (retry 5000)`)
      const after = await a.inspect('rw1')
      assert.equal(after.kind, 'exclusive')
      assert.equal(after.token, lock.token)
      assert.equal(await a.tryAcquire('rw1', { shared: true }), null, 'no shared holder beside the writer')
      await lock.release()
    })
  }

  for (const mode of [{ shared: true }, { limit: 2 }] as const) {
    test(`a ${'shared' in mode ? 'shared holder' : 'permit'} whose lock key alone was deleted and taken by an exclusive holder with a longer lease is told (stolen) at its next extension`, async () => {
      const [a, b] = [await locker(), await locker()]
      const held = await a.acquire('gone1', { ...mode, lifetimeMs: 1000, extendIntervalMs: 250 })
      // The key alone (DEL by an operator, or evicted): its holders set stays as it was.
      await ctx.admin.del('gone1')
      const writer = await b.acquire('gone1', { lifetimeMs: 20_000 })
      await waitFor(() => held.signal.aborted, { timeoutMs: 3000, message: 'the holder told of its loss' })
      assert.equal((held.signal.reason as LockLostError).reason, 'stolen')
      assert.ok(writer.isHeld())
      await writer.release()
    })
  }

  test('writer preference: a waiting exclusive acquisition keeps new shared holders out; readers go after it', async () => {
    const [a, w, c] = [await locker(), await locker(), await locker()]
    const ra = await a.acquire('wp', { shared: true, ...LONG })
    const writer = track(w.acquire('wp', SLOW))
    await waitFor(async () => (await ctx.admin.exists(writerKey('wp'))) === 1, {
      message: 'the writer mark',
    })
    assert.equal(await c.tryAcquire('wp', { shared: true }), null, 'a new reader got in before the writer')
    assert.equal(await a.tryAcquire('wp', { shared: true }), null, 'a second hold of the reader’s Locker too')
    const reader = track(c.acquire('wp', { shared: true, ...SLOW }))
    await sleep(300)
    assert.equal(reader.settled, false, 'a reader got in while the writer waits')
    assert.equal(writer.settled, false)
    assert.equal((await c.inspect('wp')).holders.length, 1)
    let releasedAt = performance.now()
    await ra.release()
    const wl = await writer.promise
    let took = performance.now() - releasedAt
    assert.ok(took < WOKEN_MS, `writer got it ${Math.round(took)} ms after the reader left`)
    assert.equal(await ctx.admin.exists(writerKey('wp')), 0, 'the writer mark is gone once it holds')
    await sleep(200)
    assert.equal(reader.settled, false, 'a reader beside the writer')
    releasedAt = performance.now()
    await wl.release()
    const rl = await reader.promise
    took = performance.now() - releasedAt
    assert.ok(took < WOKEN_MS, `the waiting reader got in ${Math.round(took)} ms after the writer left`)
    assert.equal((await c.inspect('wp')).kind, 'shared')
    await rl.release()
  })

  test('an exclusive holder’s release admits every waiting shared holder (5 across 2 Lockers) in about one round trip', async () => {
    const x = await locker()
    const [l1, l2] = [await locker(), await locker()]
    const held = await x.acquire('adm', LONG)
    assert.equal(await l1.tryAcquire('adm', { shared: true }), null, 'shared beside an exclusive holder')
    const got: number[] = []
    const pending = [l1, l1, l1, l2, l2].map((l) =>
      l.acquire('adm', { shared: true, ...SLOW }).then((lock) => {
        got.push(performance.now())
        return lock
      }),
    )
    await waitFor(() => l1.stats().waiting + l2.stats().waiting === 5, { message: '5 waiters' })
    await sleep(100)
    const releasedAt = performance.now()
    await held.release()
    const locks = await Promise.all(pending)
    const last = Math.max(...got) - releasedAt
    assert.ok(last < WOKEN_MS, `the last of 5 readers got in ${Math.round(last)} ms after the release`)
    const state = await x.inspect('adm')
    assert.equal(state.kind, 'shared')
    assert.equal(state.holders.length, 5)
    await Promise.all(locks.map((l) => l.release()))
    assert.equal(await ctx.admin.exists('adm', holdersKey('adm')), 0, 'the last holder out deletes both')
  })

  test('semaphore limit 3: three permits, the 4th waits; a release wakes exactly one waiter promptly', async () => {
    const [a, b, c] = [await locker(), await locker(), await locker()]
    const permits = [
      await a.acquire('sem', { limit: 3, ...LONG }),
      await b.acquire('sem', { limit: 3, ...LONG }),
      await a.acquire('sem', { limit: 3, ...LONG }),
    ]
    assert.equal(await c.tryAcquire('sem', { limit: 3 }), null, 'a 4th permit')
    assert.equal(await a.tryAcquire('sem', { limit: 3 }), null, 'a 4th permit from a holder’s Locker')
    const state = await c.inspect('sem')
    assert.deepEqual([state.kind, state.limit, state.holders.length], ['semaphore', 3, 3])
    const fourth = track(c.acquire('sem', { limit: 3, ...SLOW }))
    const fifth = track(c.acquire('sem', { limit: 3, ...SLOW }))
    await sleep(300)
    assert.equal(fourth.settled || fifth.settled, false, 'a waiter got in at the limit')
    let releasedAt = performance.now()
    await permits[1]?.release()
    const p4 = await fourth.promise
    let took = performance.now() - releasedAt
    assert.ok(took < WOKEN_MS, `the 4th got a permit ${Math.round(took)} ms after a release (retry 5000)`)
    await sleep(300)
    assert.equal(fifth.settled, false, 'one release admitted two')
    assert.equal((await c.inspect('sem')).holders.length, 3)
    releasedAt = performance.now()
    await permits[0]?.release()
    const p5 = await fifth.promise
    took = performance.now() - releasedAt
    assert.ok(took < WOKEN_MS, `the 5th got a permit ${Math.round(took)} ms after the next release`)
    assert.equal(await ctx.admin.zcard(holdersKey('sem')), 3)
    for (const p of [permits[2], p4, p5]) await p?.release()
    assert.equal(await ctx.admin.exists('sem', holdersKey('sem')), 0)
  })

  test('semaphore limit 3 under 9 contenders in 3 Lockers: never more than 3 inside; negative control: a script ignoring the limit is caught', async () => {
    const lockers = [await locker(), await locker(), await locker()]
    const correct = await maxConcurrent(lockers, 'sem:load', 3, 1000)
    assert.ok(correct.cycles > 30, `only ${correct.cycles} critical sections`)
    assert.equal(correct.max, 3, `max ${correct.max} holders inside at once`)
    // Neither the limit nor the arrival queue (which admits no more than the free permits) holds anyone back.
    const noLimit = ACQUIRE_HOLDER.source.replace('local full = holders >= limit', 'local full = false')
    const broken = noLimit.replace('local behind = not full and', 'local behind = false and')
    assert.ok(noLimit !== ACQUIRE_HOLDER.source && broken !== noLimit)
    const bad = await Promise.all([0, 1, 2].map(() => lockerWith({ acquireHolder: broken })))
    const control = await maxConcurrent(bad, 'sem:load-broken', 3, 500)
    assert.ok(control.max > 3, `the checker missed a semaphore ignoring its limit (max ${control.max})`)
  })

  test('semaphore limit 2 under 8 loops in one Locker: permits pass by hand-over, never more than 2 inside (the checker’s negative control is the test above)', async () => {
    const one = await locker()
    const { max, cycles } = await maxConcurrent([one], 'sem:handover-load', 2, 1000, 8)
    assert.ok(cycles > 30, `only ${cycles} critical sections`)
    assert.equal(max, 2, `max ${max} holders inside at once`)
    const { handedOver } = one.stats()
    assert.ok(handedOver > cycles / 2, `only ${handedOver} of ${cycles} permits handed over`)
    assert.equal(await ctx.admin.exists('sem:handover-load', queueKey('sem:handover-load')), 0)
  })

  /** Four Lockers (each its own process, as far as Redis can tell) wait in turn; the order they get the permit in. */
  async function servedOrder(key: string, waiters: Locker[]): Promise<number[]> {
    const holder = await locker()
    const held = await holder.acquire(key, { limit: 1, ...LONG })
    const order: number[] = []
    const done: Promise<void>[] = []
    for (const [i, w] of waiters.entries()) {
      done.push(
        w.acquire(key, { limit: 1, ...SLOW }).then(async (l) => {
          order.push(i)
          await sleep(20)
          await l.release()
        }),
      )
      await sleep(150) // its first attempt has met the holder (and queued) before the next arrives
    }
    await held.release()
    await Promise.all(done)
    return order
  }

  test('semaphore waiters of several Lockers get freed permits in the order they arrived (arrival queue); negative control: without it the order is the race’s', async () => {
    const ordered = await Promise.all([0, 1, 2, 3].map(() => locker()))
    for (let round = 0; round < 2; round++) {
      assert.deepEqual(await servedOrder(`fifo:${round}`, ordered), [0, 1, 2, 3], `round ${round}`)
    }
    assert.equal(await ctx.admin.exists(queueKey('fifo:0'), queueKey('fifo:1')), 0, 'queues left behind')
    // The same script with the queue switched off (no Locker id): a release wakes every
    // Locker and the first attempt to arrive wins.
    const noQueue = ACQUIRE_HOLDER.source.replace(
      "local qid, qflags, qttl = ARGV[6] or ''",
      "local qid, qflags, qttl = ''",
    )
    assert.notEqual(noQueue, ACQUIRE_HOLDER.source)
    const racing = await Promise.all([0, 1, 2, 3].map(() => lockerWith({ acquireHolder: noQueue })))
    const orders: string[] = []
    for (let round = 0; round < 4; round++) orders.push((await servedOrder(`race:${round}`, racing)).join())
    assert.ok(
      orders.some((o) => o !== '0,1,2,3'),
      `every round in arrival order without the queue (${orders.join(' / ')}): the check cannot tell`,
    )
  })

  test('a released permit wakes only the Lockers queued first; the others stay asleep, the releasing one included (negative control: a release message naming nobody wakes them all)', async () => {
    const untargeted = RELEASE_HOLDER.source.replace('if #ids == free then', 'if false then')
    assert.notEqual(untargeted, RELEASE_HOLDER.source)
    for (const variant of ['named', 'everyone'] as const) {
      const scripts = variant === 'everyone' ? { releaseHolder: untargeted } : {}
      const make = () => lockerWith(scripts)
      const [h, first, second] = [await make(), await make(), await make()]
      const key = `fifo-named:${variant}`
      const held = await h.acquire(key, { limit: 1, ...LONG })
      const b = track(first.acquire(key, { limit: 1, ...SLOW }))
      await sleep(150)
      const c = track(second.acquire(key, { limit: 1, ...SLOW }))
      await sleep(150)
      const own = track(h.acquire(key, { limit: 1, ...SLOW })) // the holder's Locker waits too, last
      await sleep(150)
      const before = [h.stats().wakeups, second.stats().wakeups]
      await held.release()
      const lockB = await b.promise
      await sleep(200)
      const woken = [h.stats().wakeups - (before[0] ?? 0), second.stats().wakeups - (before[1] ?? 0)]
      assert.equal(c.settled || own.settled, false, `${variant}: a waiter queued behind got in`)
      if (variant === 'named') {
        assert.deepEqual(woken, [0, 0], 'a Locker queued behind was woken for a permit that was not its')
      } else {
        assert.ok(
          woken[0] === 1 && woken[1] === 1,
          `negative control: without names both are woken (${woken})`,
        )
      }
      await lockB.release()
      const lockC = await c.promise
      await lockC.release()
      await (await own.promise).release()
      assert.equal(await ctx.admin.exists(key, queueKey(key)), 0)
    }
  })

  test('a release naming the releasing Locker hands the permit to its own waiter at once, and wakes no other Locker', async () => {
    const [h, other] = [await locker(), await locker()]
    const key = 'fifo-named:self'
    const held = await h.acquire(key, { limit: 1, ...LONG })
    const own = track(h.acquire(key, { limit: 1, ...SLOW })) // queued first
    await sleep(150)
    const behind = track(other.acquire(key, { limit: 1, ...SLOW }))
    await sleep(150)
    const before = other.stats().wakeups
    const releasedAt = performance.now()
    await held.release()
    const lock = await own.promise
    const took = performance.now() - releasedAt
    assert.ok(
      took < WOKEN_MS,
      `its own waiter got the permit ${Math.round(took)} ms after the release (retry 5000)`,
    )
    await sleep(100)
    assert.equal(other.stats().wakeups - before, 0, 'the Locker queued behind was woken')
    assert.equal(behind.settled, false)
    await lock.release()
    await (await behind.promise).release()
  })

  test('a semaphore release hands its permit to the next local waiter in the same call: no attempt, no message (negative control: a release that never hands over)', async () => {
    const never = RELEASE_HOLDER.source.replace("local succ = ARGV[5] or ''", "local succ = ''")
    assert.notEqual(never, RELEASE_HOLDER.source)
    const calls = async () => {
      const stats = await ctx.admin.info('commandstats')
      const count = (cmd: string) => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
      return { scripts: count('evalsha') + count('eval'), publish: count('publish') }
    }
    for (const variant of ['hands over', 'never'] as const) {
      const h = await lockerWith(variant === 'never' ? { releaseHolder: never } : {})
      const key = `handover:${variant}`
      const held = await h.acquire(key, { limit: 1, ...LONG })
      const waiting = track(h.acquire(key, { limit: 1, ...SLOW }))
      await sleep(150)
      const before = await calls()
      const releasedAt = performance.now()
      await held.release()
      const lock = await waiting.promise
      const took = performance.now() - releasedAt
      const after = await calls()
      assert.ok(
        took < WOKEN_MS,
        `${variant}: the waiter got the permit ${Math.round(took)} ms after the release`,
      )
      assert.equal(
        after.publish - before.publish,
        0,
        `${variant}: a release nobody else waits for was announced`,
      )
      assert.equal(h.stats().handedOver, variant === 'hands over' ? 1 : 0)
      if (variant === 'hands over') {
        assert.equal(after.scripts - before.scripts, 1, 'one script call (the release), no attempt')
        const state = await h.inspect(key)
        assert.equal(state.holders.length, 1)
        assert.ok(lock.isHeld() && lock.remainingMs() <= LONG.lifetimeMs)
      } else {
        assert.ok(
          after.scripts - before.scripts >= 2,
          'negative control: the waiter got in without an attempt',
        )
      }
      await lock.release()
      assert.equal(await ctx.admin.exists(key, holdersKey(key), queueKey(key)), 0)
    }
  })

  test('a release hands its permit to a local waiter only when no other Locker is queued for the key (negative control: a hand-over blind to the queue lets its own waiter jump it)', async () => {
    const blind = RELEASE_HOLDER.source.replace('if id ~= ARGV[2] then return false end', '')
    assert.notEqual(blind, RELEASE_HOLDER.source)
    for (const variant of ['in order', 'blind'] as const) {
      const make = () => lockerWith(variant === 'blind' ? { releaseHolder: blind } : {})
      const [h, other] = [await make(), await make()]
      const key = `handover-order:${variant}`
      const held = await h.acquire(key, { limit: 1, ...LONG })
      const first = track(other.acquire(key, { limit: 1, ...SLOW })) // queued first
      await sleep(150)
      const own = track(h.acquire(key, { limit: 1, ...SLOW }))
      await sleep(150)
      await held.release()
      await sleep(300)
      if (variant === 'in order') {
        assert.equal(first.settled, true, 'the Locker queued first did not get the permit')
        assert.equal(own.settled, false, 'the releasing Locker’s own waiter jumped the queue')
      } else {
        assert.equal(own.settled, true, 'negative control: the blind hand-over did not hand over')
        assert.equal(first.settled, false)
      }
      const next = variant === 'in order' ? first : own
      await (await next.promise).release()
      await (await (variant === 'in order' ? own : first).promise).release()
    }
  })

  test('two permits handed over at once leave no queue entry behind: another Locker then gets a freed permit at once', async () => {
    const [a, b] = [await locker(), await locker()]
    const key = 'handover-two'
    const held = [await a.acquire(key, { limit: 2, ...LONG }), await a.acquire(key, { limit: 2, ...LONG })]
    const waiting = [
      track(a.acquire(key, { limit: 2, ...SLOW })),
      track(a.acquire(key, { limit: 2, ...SLOW })),
    ]
    await sleep(150)
    await Promise.all(held.map((l) => l.release()))
    const next = await Promise.all(waiting.map((w) => w.promise))
    assert.equal(a.stats().handedOver, 2)
    assert.equal(await ctx.admin.zcard(queueKey(key)), 0, 'a queue entry for nobody was left')
    const releasedAt = performance.now()
    await next[0]?.release()
    const other = await b.acquire(key, { limit: 2, ...SLOW })
    const took = performance.now() - releasedAt
    assert.ok(took < WOKEN_MS, `the other Locker got the freed permit ${Math.round(took)} ms later`)
    await Promise.all([other.release(), next[1]?.release()])
  })

  test('a release delivered twice (a resend) answers the hand-over again: the permit handed over is never left to nobody', async () => {
    const h = await locker()
    const key = 'handover-twice'
    const held = await h.acquire(key, { limit: 1, ...LONG })
    const request = {
      keys: [key],
      token: held.token,
      publisherId: 'arl1.someLocker0000000000',
      mode: { kind: 'semaphore', limit: 1 } as const,
      successor: { token: 'arl1.successor000000000000', lifetimeMs: 5000, more: false, queueTtlMs: 3000 },
    }
    const { keys, args } = RELEASE_HOLDER.encode(request)
    const run = async () =>
      RELEASE_HOLDER.decode(
        await ctx.admin.call('EVAL', RELEASE_HOLDER.source, String(keys.length), ...keys, ...args),
      )
    assert.deepEqual(await run(), { removed: 1, receivers: 0, handedOver: true })
    assert.deepEqual(
      await run(),
      { removed: 1, receivers: 0, handedOver: true },
      'the resend denied the hand-over',
    )
    assert.deepEqual(await ctx.admin.zrange(holdersKey(key), '0', '-1'), ['arl1.successor000000000000'])
    assert.equal(await held.release(), false)
    await ctx.admin.del(key, holdersKey(key))
  })

  test('a waiter that leaves with its Locker’s queue entry standing for it takes the entry along: aborted during its first attempt, or timed out queued behind a local waiter', async () => {
    const h = await locker()
    // Aborted while its first attempt (which joined the queue) is on its way.
    const a = await locker()
    const k1 = 'fifo-ghost:abort'
    const held1 = await h.acquire(k1, { limit: 1, ...LONG })
    const ac = new AbortController()
    const aborted = a.acquire(k1, { limit: 1, ...SLOW, signal: ac.signal }).catch((err: unknown) => err)
    setImmediate(() => ac.abort())
    assert.equal(((await aborted) as Error).name, 'AbortError')
    await waitFor(async () => (await ctx.admin.zcard(queueKey(k1))) === 0, {
      timeoutMs: 1000,
      intervalMs: 20,
      message: 'the aborted waiter’s entry left behind',
    })
    await held1.release()
    // Timed out without an attempt of its own, queued behind a local waiter: once that one
    // got a permit and queued its Locker again for it, the entry stood for it alone.
    const b = await locker()
    const k2 = 'fifo-ghost:behind'
    const held2 = await h.acquire(k2, { limit: 1, ...LONG })
    const first = track(b.acquire(k2, { limit: 1, ...SLOW }))
    await sleep(100)
    const second = b.acquire(k2, { limit: 1, ...SLOW, retryTimeoutMs: 1200 }).catch((err: unknown) => err)
    await sleep(100)
    await held2.release()
    const lock = await first.promise
    assert.equal(await ctx.admin.zcard(queueKey(k2)), 1, 'the Locker queued again for its next waiter')
    assert.equal(((await second) as LockError).code, 'ERR_LOCK_ACQUIRE_TIMEOUT')
    await waitFor(async () => (await ctx.admin.zcard(queueKey(k2))) === 0, {
      timeoutMs: 1000,
      intervalMs: 20,
      message: 'the timed-out waiter’s entry left behind',
    })
    await lock.release()
  })

  test('a waiter leaving a semaphore at its limit wakes nobody (negative control: a leave that always announces)', async () => {
    const loud = RELEASE_HOLDER.source.replace('if onlyIfFree and free <= 0 then return end', '')
    assert.notEqual(loud, RELEASE_HOLDER.source)
    for (const variant of ['quiet', 'loud'] as const) {
      const scripts = variant === 'loud' ? { releaseHolder: loud } : {}
      const make = () => lockerWith(scripts)
      const [h, stays, quits] = [await make(), await make(), await make()]
      const key = `fifo-quiet:${variant}`
      const held = await h.acquire(key, { limit: 1, ...LONG })
      const waiting = track(stays.acquire(key, { limit: 1, ...SLOW }))
      await sleep(100)
      const before = stays.stats().wakeups
      const err = await quits
        .acquire(key, { limit: 1, ...SLOW, retryTimeoutMs: 300 })
        .catch((e: unknown) => e)
      assert.equal((err as LockError).code, 'ERR_LOCK_ACQUIRE_TIMEOUT')
      await sleep(200)
      const woken = stays.stats().wakeups - before
      if (variant === 'quiet') assert.equal(woken, 0, 'a waiter was woken with no permit free')
      else assert.equal(woken, 1, 'negative control: the announcing leave woke nobody')
      await held.release()
      await (await waiting.promise).release()
    }
  })

  test('a semaphore waiter that gives up takes its Locker out of the queue: the next Locker is not held back (negative control: a release that ignores it)', async () => {
    for (const variant of ['leaves', 'stays'] as const) {
      const scripts =
        variant === 'stays'
          ? {
              releaseHolder: RELEASE_HOLDER.source.replace(
                "local qid = ARGV[4] ~= '' and ARGV[4] or nil",
                'local qid = nil',
              ),
            }
          : {}
      const make = () => lockerWith(scripts)
      const [h, quitter, next] = [await make(), await make(), await make()]
      const key = `fifo-leave:${variant}`
      const held = await h.acquire(key, { limit: 1, ...LONG })
      const gaveUp = quitter
        .acquire(key, { limit: 1, ...SLOW, retryTimeoutMs: 300 })
        .catch((err: unknown) => err)
      await sleep(100)
      const waiting = track(next.acquire(key, { limit: 1, ...SLOW }))
      const err = (await gaveUp) as LockError
      assert.equal(err.code, 'ERR_LOCK_ACQUIRE_TIMEOUT')
      await sleep(100) // its Locker's leaving has reached Redis
      const releasedAt = performance.now()
      await held.release()
      if (variant === 'leaves') {
        const lock = await waiting.promise
        const took = performance.now() - releasedAt
        assert.ok(took < WOKEN_MS, `the next Locker got the permit ${Math.round(took)} ms after the release`)
        await lock.release()
        assert.equal(await ctx.admin.exists(queueKey(key)), 0)
      } else {
        await sleep(1000)
        assert.equal(
          waiting.settled,
          false,
          'negative control: the next Locker got in past an entry nobody refreshes',
        )
      }
    }
  })

  test('the queue entry of a Locker that stops attempting (crashed) runs out: the Lockers behind it get in, the releasing one too', async () => {
    for (const who of ['another Locker', 'the releasing Locker'] as const) {
      const h = await locker()
      const next = who === 'another Locker' ? await locker() : h
      const key = `fifo-crashed:${who}`
      const held = await h.acquire(key, { limit: 1, ...LONG })
      // A Locker that queued first and died: its entry runs out in 600 ms (server time).
      const [sec, usec] = (await ctx.admin.time()) as unknown as [string, string]
      const nowMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000)
      await ctx.admin.zadd(queueKey(key), nowMs - 1000, `arl1.dead-locker-id-000000000|${nowMs + 600}`)
      const waiting = track(next.acquire(key, { limit: 1, ...SLOW }))
      await sleep(100)
      const releasedAt = performance.now()
      await held.release() // names the dead Locker: the waiter is not woken, its next attempt comes early
      await sleep(300)
      assert.equal(
        waiting.settled,
        false,
        `${who}: got past the first Locker in the queue while its entry was live`,
      )
      const lock = await waiting.promise
      const took = performance.now() - releasedAt
      assert.ok(
        took < 2500,
        `${who}: got the permit ${Math.round(took)} ms after the release (entry ran out at ~600 ms; retry 5000)`,
      )
      await lock.release()
    }
  })

  test('a deleted holder entry (ZREM) is lost by its local deadline; the other holders stay held', async () => {
    const [l, m] = [await locker({ lifetimeMs: 500 }), await locker({ lifetimeMs: 500 })]
    const permits = [
      await l.acquire('loss:p', { limit: 3 }),
      await m.acquire('loss:p', { limit: 3 }),
      await l.acquire('loss:p', { limit: 3 }),
    ]
    const victim = permits[1] as Lock
    let abortedAt = 0
    victim.signal.addEventListener('abort', () => {
      abortedAt = performance.now()
    })
    assert.equal(await ctx.admin.zrem(holdersKey('loss:p'), victim.token), 1)
    const removedAt = performance.now()
    await waitFor(() => abortedAt > 0, { timeoutMs: 2000, intervalMs: 5, message: 'the loss signal' })
    assert.ok(
      abortedAt - removedAt < 600,
      `aborted ${Math.round(abortedAt - removedAt)} ms after (lease 500)`,
    )
    assert.equal((victim.signal.reason as LockError).code, 'ERR_LOCK_LOST')
    assert.equal(lostReason(victim), 'deleted')
    assert.equal(victim.isHeld(), false)
    assert.equal(m.stats().lost, 1)
    await sleep(600) // more than a lease: the others are extended all along
    for (const p of [permits[0], permits[2]]) {
      assert.ok(p?.isHeld(), 'another permit was lost with it')
      assert.equal(p?.signal.aborted, false)
    }
    assert.equal(l.stats().lost, 0)
    assert.equal((await l.inspect('loss:p')).holders.length, 2)
    assert.equal(await ctx.admin.zscore(holdersKey('loss:p'), victim.token), null, 'never re-added')
    assert.equal(await victim.release(), false)
    // Shared holders: the same.
    const readers = [await l.acquire('loss:s', { shared: true }), await m.acquire('loss:s', { shared: true })]
    await ctx.admin.zrem(holdersKey('loss:s'), readers[0]?.token as string)
    await waitFor(() => readers[0]?.signal.aborted === true, { timeoutMs: 2000, intervalMs: 5 })
    assert.equal(lostReason(readers[0] as Lock), 'deleted')
    await sleep(600)
    assert.ok(readers[1]?.isHeld())
    assert.equal((await l.inspect('loss:s')).holders.length, 1)
  })

  test('DEL of a shared or semaphore key loses every holder of it by the local deadline; the key is not re-created', async () => {
    const [l, m] = [await locker({ lifetimeMs: 500 }), await locker({ lifetimeMs: 500 })]
    const permits = [await l.acquire('del:p', { limit: 2 }), await m.acquire('del:p', { limit: 2 })]
    const readers = [await l.acquire('del:s', { shared: true }), await m.acquire('del:s', { shared: true })]
    const bystander = await l.acquire('del:other', { limit: 2 })
    await ctx.admin.del('del:p', 'del:s')
    const deletedAt = performance.now()
    const all = [...permits, ...readers]
    await waitFor(() => all.every((lock) => lock.signal.aborted), { timeoutMs: 2000, intervalMs: 5 })
    assert.ok(performance.now() - deletedAt < 600, 'lost later than a lease after the DEL')
    for (const lock of all) assert.equal(lostReason(lock), 'deleted')
    await sleep(300)
    assert.equal(await ctx.admin.exists('del:p', 'del:s'), 0, 'an extension re-created a deleted key')
    assert.ok(bystander.isHeld(), 'a holder of another key was lost too')
    // The keys are free again, for any kind.
    const next = await m.acquire('del:p')
    await next.release()
  })

  test('auto-extension keeps permits and shared holds for several lifetimes', async () => {
    const [l, m] = [await locker({ lifetimeMs: 500 }), await locker({ lifetimeMs: 500 })]
    const held = [
      await l.acquire('ext:p', { limit: 2 }),
      await m.acquire('ext:p', { limit: 2 }),
      await l.acquire('ext:s', { shared: true }),
      await m.acquire('ext:s', { shared: true }),
    ]
    await sleep(2000)
    for (const lock of held) {
      assert.ok(lock.isHeld(), 'lost while auto-extended')
      assert.equal(lock.signal.aborted, false)
    }
    const now = await serverNowMs(ctx.admin)
    for (const key of ['ext:p', 'ext:s']) {
      const state = await l.inspect(key)
      assert.equal(state.holders.length, 2, key)
      for (const h of state.holders)
        assert.ok(h.remainingMs !== null && h.remainingMs > 0, `${key} ${h.remainingMs}`)
      assert.ok((await ctx.admin.pttl(key)) > 0)
      const scores = (await ctx.admin.zrange(holdersKey(key), '0', '-1', 'WITHSCORES')).filter(
        (_, i) => i % 2 === 1,
      )
      for (const s of scores) assert.ok(Number(s) > now, 'a holder’s lease end is in the past')
    }
    assert.equal(l.stats().lost + m.stats().lost, 0)
  })

  test('kind conflicts reject with ERR_LOCK_INVALID_ARGUMENT naming the kind and limit, and change nothing', async () => {
    const [h, o] = [await locker({ lifetimeMs: 30_000 }), await locker()]
    const cases: {
      key: string
      hold: (key: string) => Promise<Lock>
      attempt: { shared?: boolean; limit?: number }
      message: RegExp
    }[] = [
      {
        key: 'kc:sem-4',
        hold: (k) => h.acquire(k, { limit: 3 }),
        attempt: { limit: 4 },
        message: /held as a semaphore with limit 3; it cannot be acquired as a semaphore with limit 4/,
      },
      {
        key: 'kc:sem-x',
        hold: (k) => h.acquire(k, { limit: 3 }),
        attempt: {},
        message: /held as a semaphore with limit 3; it cannot be acquired as an exclusive lock/,
      },
      {
        key: 'kc:sem-s',
        hold: (k) => h.acquire(k, { limit: 3 }),
        attempt: { shared: true },
        message: /held as a semaphore with limit 3; it cannot be acquired as a shared lock/,
      },
      {
        key: 'kc:x-2',
        hold: (k) => h.acquire(k),
        attempt: { limit: 2 },
        message: /held as an exclusive lock; it cannot be acquired as a semaphore with limit 2/,
      },
      {
        key: 'kc:s-2',
        hold: (k) => h.acquire(k, { shared: true }),
        attempt: { limit: 2 },
        message: /held as a shared lock; it cannot be acquired as a semaphore with limit 2/,
      },
    ]
    for (const c of cases) {
      const held = await c.hold(c.key)
      const before = await snapshot(ctx.admin, c.key)
      for (const call of ['tryAcquire', 'acquire', 'acquire fenced'] as const) {
        const started = performance.now()
        const attempt =
          call === 'tryAcquire'
            ? o.tryAcquire(c.key, c.attempt)
            : o.acquire(c.key, { ...c.attempt, ...SLOW, fencing: call === 'acquire fenced' })
        const err = await rejectsWith(attempt, 'ERR_LOCK_INVALID_ARGUMENT')
        assert.ok(err instanceof InvalidArgumentError)
        assert.equal(err.argument, 'limit')
        assert.match(err.message, c.message, `${c.key} ${call}`)
        assert.ok(err.message.includes(`"${c.key}"`), err.message)
        assert.ok(performance.now() - started < 1000, `${call} waited instead of rejecting`)
      }
      assert.deepEqual(await snapshot(ctx.admin, c.key), before, `${c.key}: the rejected attempts changed it`)
      assert.ok(held.isHeld())
      assert.equal(await held.release(), true)
    }
    // Exclusive and shared are one family: an exclusive holder makes a reader wait, not fail.
    const x = await h.acquire('kc:family')
    assert.equal(await o.tryAcquire('kc:family', { shared: true }), null)
    await x.release()
  })

  test('a kind conflict rejects at once also when the same Locker already waits on the key (it does not queue behind waiters of another kind)', async () => {
    const [h, o] = [await locker({ lifetimeMs: 30_000 }), await locker()]
    const cases: {
      key: string
      held: { limit?: number; shared?: boolean }
      wanted: { limit?: number; shared?: boolean }
    }[] = [
      { key: 'kcw:x', held: {}, wanted: { limit: 2 } },
      { key: 'kcw:sem-1', held: { limit: 1 }, wanted: { limit: 2 } },
      { key: 'kcw:sem-2', held: { limit: 2 }, wanted: { shared: true } },
    ]
    for (const c of cases) {
      const holds = [await h.acquire(c.key, c.held)]
      if (c.held.limit === 2) holds.push(await h.acquire(c.key, c.held))
      // A waiter of the held kind, in the Locker that then asks for another kind.
      const waiting = o.acquire(c.key, { ...c.held, ...SLOW }).catch((err: unknown) => err)
      await waitFor(() => o.stats().waiting === 1)
      const started = performance.now()
      const err = await rejectsWith(
        o.acquire(c.key, { ...c.wanted, retryTimeoutMs: 3000 }),
        'ERR_LOCK_INVALID_ARGUMENT',
      )
      assert.ok(
        performance.now() - started < 1000,
        `${c.key}: waited ${(performance.now() - started).toFixed(0)} ms instead of rejecting`,
      )
      assert.match(err.message, /held as/)
      // The waiter of the held kind still gets its turn.
      for (const l of holds) await l.release()
      const got = await waiting
      assert.ok(!(got instanceof Error), String(got))
      await (got as Lock).release()
    }
  })

  test('a key whose holders are all gone (released or expired) takes a new kind', async () => {
    const l = await locker()
    const kinds: { shared?: boolean; limit?: number }[] = [
      { limit: 3 },
      {},
      { shared: true },
      { limit: 4 },
      { limit: 1 },
      {},
    ]
    for (const kind of kinds) {
      const lock = await l.acquire('nk', { ...kind, retryTimeoutMs: 0 })
      assert.equal(await lock.release(), true, JSON.stringify(kind))
    }
    assert.equal(await ctx.admin.exists('nk', holdersKey('nk')), 0)
    // Holders whose leases ran out (a crashed process; the key itself still lives).
    const now = await serverNowMs(ctx.admin)
    const dead = `arl1.${'d'.repeat(22)}`
    const plant = async (marker: string) => {
      await ctx.admin.set('nk:dead', marker, 'PX', 10_000)
      await ctx.admin.zadd(holdersKey('nk:dead'), now - 1000, dead)
      await ctx.admin.pexpire(holdersKey('nk:dead'), 10_000)
    }
    const after: [string, { shared?: boolean; limit?: number }, string][] = [
      ['arl1.sem.3', {}, 'exclusive'],
      ['arl1.sem.3', { shared: true }, 'shared'],
      ['arl1.sem.3', { limit: 5 }, 'semaphore'],
      ['arl1.shared', { limit: 2 }, 'semaphore'],
      ['arl1.shared!', {}, 'exclusive'],
    ]
    for (const [marker, kind, expected] of after) {
      await plant(marker)
      const lock = await l.tryAcquire('nk:dead', kind)
      assert.ok(lock, `${marker} with expired holders did not take ${JSON.stringify(kind)}`)
      const state = await l.inspect('nk:dead')
      assert.equal(state.kind, expected)
      assert.equal(state.holders.length, 1)
      assert.equal(await ctx.admin.zscore(holdersKey('nk:dead'), dead), null, 'the dead holder is gone')
      await lock.release()
    }
  })

  test('limit: 1 is an exclusive lock of the semaphore kind', async () => {
    const [a, b] = [await locker(), await locker()]
    const p = await a.acquire('one', { limit: 1, ...LONG })
    assert.equal(await b.tryAcquire('one', { limit: 1 }), null)
    assert.equal(await a.tryAcquire('one', { limit: 1 }), null)
    const state = await b.inspect('one')
    assert.deepEqual([state.kind, state.limit, state.holders.length, state.token], ['semaphore', 1, 1, null])
    const err = await rejectsWith(b.acquire('one', SLOW), 'ERR_LOCK_INVALID_ARGUMENT')
    assert.match(err.message, /held as a semaphore with limit 1; it cannot be acquired as an exclusive lock/)
    await rejectsWith(b.tryAcquire('one', { shared: true }), 'ERR_LOCK_INVALID_ARGUMENT')
    await rejectsWith(b.tryAcquire('one', { limit: 2 }), 'ERR_LOCK_INVALID_ARGUMENT')
    const waiter = track(b.acquire('one', { limit: 1, ...SLOW }))
    await sleep(300)
    assert.equal(waiter.settled, false)
    const releasedAt = performance.now()
    await p.release()
    const next = await waiter.promise
    const took = performance.now() - releasedAt
    assert.ok(took < WOKEN_MS, `woken ${Math.round(took)} ms after the release`)
    assert.equal(await a.tryAcquire('one', { limit: 1 }), null)
    await next.release()
  })

  test('a shared multi-key acquisition is all or nothing; limit takes one key', async () => {
    const [a, b] = [await locker(), await locker()]
    const keys = ['mk:a', 'mk:b', 'mk:c']
    const exclusive = await a.acquire('mk:b', LONG)
    const reader = await a.acquire('mk:c', { shared: true, ...LONG })
    assert.equal(await b.tryAcquire(keys, { shared: true }), null)
    assert.equal(await b.tryAcquire([...keys].reverse(), { shared: true }), null)
    assert.equal(await ctx.admin.exists('mk:a', holdersKey('mk:a')), 0, 'mk:a was taken while mk:b is held')
    assert.equal(await ctx.admin.zcard(holdersKey('mk:c')), 1, 'a holder was added to mk:c')
    const all = track(b.acquire(keys, { shared: true, ...SLOW }))
    await sleep(300)
    assert.equal(all.settled, false)
    assert.equal(await ctx.admin.exists('mk:a'), 0, 'a waiting multi-key acquisition holds a subset')
    await exclusive.release()
    const lock = await all.promise
    for (const k of keys) {
      const state = await b.inspect(k)
      assert.equal(state.kind, 'shared', k)
      assert.equal(state.holders.length, k === 'mk:c' ? 2 : 1, k)
      assert.ok(await ctx.admin.zscore(holdersKey(k), lock.token), k)
    }
    assert.equal(await lock.release(), true)
    assert.equal(await ctx.admin.exists('mk:a', 'mk:b'), 0)
    assert.equal((await b.inspect('mk:c')).holders.length, 1)
    await reader.release()
    const err = await rejectsWith(b.acquire(['mk2:a', 'mk2:b'], { limit: 2 }), 'ERR_LOCK_INVALID_ARGUMENT')
    assert.equal((err as InvalidArgumentError).argument, 'limit')
    await rejectsWith(b.tryAcquire(['mk2:a', 'mk2:b'], { limit: 1 }), 'ERR_LOCK_INVALID_ARGUMENT')
    assert.equal(await ctx.admin.exists('mk2:a', 'mk2:b'), 0)
  })

  test('fences strictly increase across exclusive, shared and semaphore holders of one key', async () => {
    const [l, m] = [await locker({ fencing: true }), await locker({ fencing: true })]
    const fences: [string, bigint][] = []
    const hold = async (what: string, p: Promise<Lock>) => {
      const lock = await p
      fences.push([what, lock.fence])
      return lock
    }
    const e1 = await hold('exclusive', l.acquire('fk'))
    await e1.release()
    const s1 = await hold('shared 1', l.acquire('fk', { shared: true }))
    const s2 = await hold('shared 2', m.acquire('fk', { shared: true }))
    const s3 = await hold('shared 3', l.acquire('fk', { shared: true }))
    for (const s of [s1, s2, s3]) await s.release()
    const e2 = await hold('exclusive', m.acquire('fk'))
    await e2.release()
    const p1 = await hold('permit 1', l.acquire('fk', { limit: 2 }))
    const p2 = await hold('permit 2', m.acquire('fk', { limit: 2 }))
    await p1.release()
    const p3 = await hold('permit 3', l.acquire('fk', { limit: 2 }))
    await p2.release()
    await p3.release()
    const e3 = await hold('exclusive', l.acquire('fk'))
    await e3.release()
    for (let i = 1; i < fences.length; i++) {
      const [prevWhat, prev] = fences[i - 1] as [string, bigint]
      const [what, fence] = fences[i] as [string, bigint]
      assert.ok(fence > prev, `${what} got fence ${fence} after ${prevWhat}'s ${prev}`)
    }
    assert.equal((await l.inspect('fk')).fence, fences.at(-1)?.[1])
    // Without fencing a shared hold has no fence to read.
    const plain = await (await locker()).acquire('fk', { shared: true })
    assert.throws(() => plain.fence, { code: 'ERR_LOCK_INVALID_ARGUMENT', argument: 'fencing' })
    await plain.release()
  })

  test('inspect reports kind, limit and each holder’s remaining lease, never a shared or semaphore token', async () => {
    const [l, m] = [await locker(), await locker()]
    const s1 = await l.acquire('in:s', { shared: true, lifetimeMs: 3000 })
    const s2 = await m.acquire('in:s', { shared: true, lifetimeMs: 6000 })
    const shared = await l.inspect('in:s')
    assert.equal(shared.key, 'in:s')
    assert.equal(shared.isHeld, true)
    assert.equal(shared.kind, 'shared')
    assert.equal(shared.limit, null)
    assert.equal(shared.token, null)
    assert.equal(shared.holders.length, 2)
    const [short, long] = shared.holders.map((h) => h.remainingMs as number)
    assert.ok(short !== undefined && short > 2000 && short <= 3000, `shorter lease ${short}`)
    assert.ok(long !== undefined && long > 5000 && long <= 6000, `longer lease ${long}`)
    assert.ok(shared.remainingMs !== null && shared.remainingMs >= long - 50, `key ${shared.remainingMs}`)
    const p1 = await l.acquire('in:p', { limit: 3, lifetimeMs: 4000 })
    const p2 = await m.acquire('in:p', { limit: 3, lifetimeMs: 4000 })
    const sem = await m.inspect('in:p')
    assert.deepEqual([sem.kind, sem.limit, sem.token, sem.isHeld], ['semaphore', 3, null, true])
    assert.equal(sem.holders.length, 2)
    for (const h of sem.holders)
      assert.ok(h.remainingMs !== null && h.remainingMs > 3000 && h.remainingMs <= 4000)
    const json = JSON.stringify([shared, sem], bigintSafe)
    for (const lock of [s1, s2, p1, p2]) {
      assert.ok(!json.includes(lock.token.slice(5)), 'a holder token in the inspection')
    }
    assert.ok(!json.includes('arl1.'), `a stored value in the inspection: ${json}`)
    // An expired holder still in the set is not reported.
    await ctx.admin.zadd(holdersKey('in:p'), (await serverNowMs(ctx.admin)) - 10, `arl1.${'e'.repeat(22)}`)
    assert.equal((await m.inspect('in:p')).holders.length, 2)
    const x = await l.acquire('in:x')
    const ex = await l.inspect('in:x')
    assert.deepEqual([ex.kind, ex.limit, ex.token, ex.holders.length], ['exclusive', null, x.token, 1])
    const free: KeyInspection = await l.inspect('in:free')
    assert.deepEqual(
      [free.isHeld, free.kind, free.limit, free.holders, free.token],
      [false, null, null, [], null],
    )
    for (const lock of [s1, s2, p1, p2, x]) await lock.release()
    const gone = await l.inspect('in:s')
    assert.deepEqual([gone.isHeld, gone.kind, gone.holders.length], [false, null, 0])
  })

  test('stats() counts held and acquired locks by kind', async () => {
    const l = await locker()
    const zero = { exclusive: 0, shared: 0, semaphore: 0 }
    assert.deepEqual(l.stats().heldByKind, zero)
    const locks = [
      await l.acquire('st:x'),
      await l.acquire('st:s', { shared: true }),
      await l.acquire('st:s', { shared: true }),
      await l.acquire('st:p', { limit: 5 }),
      await l.acquire('st:p', { limit: 5 }),
      await l.acquire('st:p', { limit: 5 }),
    ]
    const held = { exclusive: 1, shared: 2, semaphore: 3 }
    assert.deepEqual(l.stats().heldByKind, held)
    assert.deepEqual(l.stats().acquiredByKind, held)
    assert.equal(l.stats().held, 6)
    await locks[1]?.release()
    await locks[3]?.release()
    assert.deepEqual(l.stats().heldByKind, { exclusive: 1, shared: 1, semaphore: 2 })
    assert.deepEqual(l.stats().acquiredByKind, held, 'acquired counts do not go down')
    await Promise.all(locks.map((lock) => lock.release()))
    assert.deepEqual(l.stats().heldByKind, zero)
    const again = await l.tryAcquire('st:p', { limit: 5 })
    assert.equal(await again?.release(), true)
    assert.equal(l.stats().acquiredByKind.semaphore, 4)
  })

  test('await using and withLock release shared holds and permits', async () => {
    const l = await locker()
    {
      await using r = await l.acquire('u:s', { shared: true })
      assert.equal((await l.inspect('u:s')).holders.length, 1)
      assert.ok(r.isHeld())
    }
    {
      await using p = await l.acquire('u:p', { limit: 2 })
      assert.equal((await l.inspect('u:p')).kind, 'semaphore')
      assert.ok(p.isHeld())
    }
    assert.equal(await ctx.admin.exists('u:s', 'u:p', holdersKey('u:s'), holdersKey('u:p')), 0)
    const value = await l.withLock(
      'u:w',
      async (signal, lock) => {
        assert.equal(signal, lock.signal)
        assert.equal(signal.aborted, false)
        const state = await l.inspect('u:w')
        assert.deepEqual([state.kind, state.limit, state.holders.length], ['semaphore', 2, 1])
        return 42
      },
      { limit: 2 },
    )
    assert.equal(value, 42)
    const boom = new Error('boom')
    await assert.rejects(
      l.withLock(
        'u:r',
        async () => {
          assert.equal((await l.inspect('u:r')).kind, 'shared')
          throw boom
        },
        { shared: true },
      ),
      (e) => e === boom,
    )
    assert.equal(await ctx.admin.exists('u:w', 'u:r', holdersKey('u:w'), holdersKey('u:r')), 0)
  })

  test('an AbortSignal ends a waiting shared or semaphore acquisition, which leaves nothing behind', async () => {
    const [h, l] = [await locker(), await locker()]
    const x = await h.acquire('ab:s', LONG)
    const full = [
      await h.acquire('ab:p', { limit: 2, ...LONG }),
      await h.acquire('ab:p', { limit: 2, ...LONG }),
    ]
    const reasons = [new Error('reader gave up'), new Error('permit gave up')]
    const controllers = [new AbortController(), new AbortController()]
    // Settled into values at once: neither rejection may go unhandled while the other is awaited.
    const outcomes = [
      l.acquire('ab:s', { shared: true, ...SLOW, signal: controllers[0]?.signal as AbortSignal }),
      l.acquire('ab:p', { limit: 2, ...SLOW, signal: controllers[1]?.signal as AbortSignal }),
    ].map((p) =>
      p.then(
        () => 'acquired',
        (e: unknown) => e,
      ),
    )
    await sleep(300)
    const abortedAt = performance.now()
    controllers.forEach((c, i) => {
      c.abort(reasons[i])
    })
    assert.deepEqual(await Promise.all(outcomes), reasons, 'not rejected with the signal’s reason')
    assert.ok(performance.now() - abortedAt < 200, 'the abort was not prompt')
    assert.equal(l.stats().waiting, 0)
    await assert.rejects(l.acquire('ab:p', { limit: 2, ...SLOW, signal: AbortSignal.timeout(150) }), {
      name: 'TimeoutError',
    })
    await assert.rejects(
      l.acquire('ab:s', { shared: true, signal: AbortSignal.abort('already') }),
      (e) => e === 'already',
    )
    await x.release()
    await full[0]?.release()
    await sleep(100)
    assert.equal(await ctx.admin.exists('ab:s', holdersKey('ab:s')), 0, 'the aborted reader got in')
    assert.equal((await l.inspect('ab:p')).holders.length, 1, 'the aborted permit got in')
    await full[1]?.release()
  })

  test('only the owner releases its entry: a second release is false, the other holders stay', async () => {
    const [a, b] = [await locker(), await locker()]
    for (const kind of [{ shared: true }, { limit: 2 }]) {
      const key = kind.shared ? 'own:s' : 'own:p'
      const ra = await a.acquire(key, { ...kind, ...LONG })
      const rb = await b.acquire(key, { ...kind, ...LONG })
      assert.equal(await ra.release(), true)
      assert.equal(await ra.release(), false)
      assert.ok(rb.isHeld())
      assert.equal((await a.inspect(key)).holders.length, 1, key)
      assert.ok(await ctx.admin.zscore(holdersKey(key), rb.token), `${key}: the other holder’s entry is gone`)
      // A lost holder's late release leaves the holder that took its place alone.
      const rc = await a.acquire(key, { ...kind, lifetimeMs: 400 })
      await ctx.admin.zrem(holdersKey(key), rc.token)
      await waitFor(() => rc.signal.aborted, { timeoutMs: 2000, intervalMs: 5 })
      const rd = await a.acquire(key, { ...kind, ...LONG })
      assert.equal(await rc.release(), false)
      assert.ok(rb.isHeld() && rd.isHeld())
      assert.equal((await a.inspect(key)).holders.length, 2, key)
      assert.equal(await rb.release(), true)
      assert.equal(await rd.release(), true)
      assert.equal(await ctx.admin.exists(key, holdersKey(key)), 0)
    }
  })

  test('negative control: a holder release that deletes the whole key is caught by the only-owner check', async () => {
    // Same contract as RELEASE_HOLDER (KEYS: lock keys, then their holders sets), no owner check.
    const broken = `
local n = #KEYS / 2
for i = 1, n do redis.call('DEL', KEYS[i], KEYS[n + i]) end
return {n, 0}
`
    const bad = createLocker(await ctx.client(), undefined, { scripts: { releaseHolder: broken } })
    open.add(bad)
    const b = await locker()
    const ra = await bad.acquire('own:bad', { shared: true, ...LONG })
    const rb = await b.acquire('own:bad', { shared: true, ...LONG })
    await ra.release()
    assert.equal(await ctx.admin.zscore(holdersKey('own:bad'), rb.token), null, 'the broken release kept B')
    await rb.release()
  })
})

const holderScript = fileURLToPath(new URL('../helpers/kind-holder.ts', import.meta.url))

describe('a SIGKILLed holder of a permit or shared hold [ioredis, child process]', () => {
  let server: RedisServer
  const open = new Set<Locker>()
  const children = new Set<Worker>()
  before(async () => {
    server = await startRedis()
  })
  afterEach(async () => {
    // A failed assertion before the kill must not leave the holder running (it would keep this file alive).
    for (const child of children) child.kill('SIGKILL')
    await Promise.all([...children].map((child) => child.exited))
    children.clear()
    await Promise.all([...open].map((l) => l.close()))
    open.clear()
  })
  after(() => server?.stop())

  const lifetimeMs = 1000
  const retryIntervalMs = 200
  const locker = async () => {
    const l = await Locker.fromUrl(server.url, { lifetimeMs })
    open.add(l)
    return l
  }

  async function crashedHolder(key: string, mode: string) {
    const child = spawnWorker(holderScript, [server.url, key, String(lifetimeMs), mode])
    children.add(child)
    const line = await child.waitForLine((l) => l.startsWith('held '), 15_000)
    return { child, token: line.slice('held '.length) }
  }

  test('a permit (limit 2) is free within lifetimeMs + retryIntervalMs while the other holder stays', async () => {
    const { child, token } = await crashedHolder('crash:p', 'limit=2')
    const [mine, other] = [await locker(), await locker()]
    const kept = await mine.acquire('crash:p', { limit: 2 })
    assert.equal(await other.tryAcquire('crash:p', { limit: 2 }), null, 'a third permit')
    await sleep(600) // the child extends its lease meanwhile
    assert.ok(await server.command('ZSCORE', holdersKey('crash:p'), token), 'the child’s entry')
    child.kill('SIGKILL')
    const killedAt = performance.now()
    await child.exited
    const got = await other.acquire('crash:p', { limit: 2, retryIntervalMs, retryTimeoutMs: 5000 })
    const took = performance.now() - killedAt
    assert.ok(
      took <= lifetimeMs + retryIntervalMs + 300,
      `the dead holder’s permit took ${Math.round(took)} ms`,
    )
    assert.ok(kept.isHeld(), 'the other holder was not kept')
    assert.equal(kept.signal.aborted, false)
    const state = await mine.inspect('crash:p')
    assert.equal(state.holders.length, 2)
    assert.equal(await server.command('ZSCORE', holdersKey('crash:p'), token), null, 'the dead entry stays')
    await got.release()
    await kept.release()
  })

  test('a shared hold is gone within lifetimeMs + retryIntervalMs; a writer then needs only the live reader to leave', async () => {
    const { child } = await crashedHolder('crash:s', 'shared')
    const [reader, writer] = [await locker(), await locker()]
    const kept = await reader.acquire('crash:s', { shared: true })
    const waiting = track(writer.acquire('crash:s', { retryIntervalMs, retryTimeoutMs: 10_000 }))
    await sleep(600)
    child.kill('SIGKILL')
    const killedAt = performance.now()
    await child.exited
    await waitFor(async () => (await reader.inspect('crash:s')).holders.length === 1, {
      timeoutMs: 5000,
      intervalMs: 20,
      message: 'the dead reader to go',
    })
    const took = performance.now() - killedAt
    assert.ok(took <= lifetimeMs + retryIntervalMs + 300, `the dead reader stayed ${Math.round(took)} ms`)
    assert.equal(waiting.settled, false, 'the writer got in beside a live reader')
    assert.ok(kept.isHeld())
    await sleep(retryIntervalMs * 2) // the writer has retried since: only the live reader keeps it out
    assert.equal(waiting.settled, false)
    const releasedAt = performance.now()
    await kept.release()
    const lock = await waiting.promise
    assert.ok(
      performance.now() - releasedAt < WOKEN_MS,
      'the writer was not admitted after the live reader left',
    )
    await lock.release()
  })
})
