import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { RedisAdapter } from '../../src/adapters/adapter.js'
import { adapterFor } from '../../src/adapters/detect.js'
import { SingleNodeBackend } from '../../src/backends/single-node.js'
import { Locker } from '../../src/index.js'
import { fenceKey, holdersKey, releaseChannel, writerKey } from '../../src/internal/keys.js'
import {
  ACQUIRE,
  ACQUIRE_HOLDER,
  EXTEND,
  EXTEND_HOLDERS_UNIFORM,
  EXTEND_UNIFORM,
  INSPECT,
  MEMORY_POLICY,
  RELEASE,
  RELEASE_HOLDER,
  SHARED,
  uniformKind,
} from '../../src/scripts/index.js'
import { describeMatrix } from '../helpers/matrix.js'
import { waitFor } from '../helpers/wait.js'

/**
 * An adapter whose SET NX PX is applied by Redis but answers "not set": what a client
 * sees when it resends a SET after a reconnect and the first copy had already landed.
 */
function replayingSetNx(inner: RedisAdapter): RedisAdapter {
  return {
    library: inner.library,
    topology: inner.topology,
    evalsha: (sha, keys, args) => inner.evalsha(sha, keys, args),
    eval: (source, keys, args) => inner.eval(source, keys, args),
    setNx: async (key, value, ms) => {
      await inner.setNx?.(key, value, ms)
      return false
    },
    createSubscriber: () => inner.createSubscriber(),
    isReplyError: (err) => inner.isReplyError(err),
    close: () => inner.close(),
  }
}

/** A token of our stored format made of one repeated character (`arl1.` and 22 characters). */
const tok = (c: string) => `arl1.${c.repeat(22)}`

const SEM3 = { kind: 'semaphore', limit: 3 } as const

/** ACQUIRE's KEYS and ARGV for a raw EVAL, as the backend encodes them. */
function acquireArgs(keys: string[], token: string, lifetimeMs: number, fencing: boolean): string[] {
  const { keys: k, args } = ACQUIRE.encode({ keys, token, lifetimeMs, fencing })
  return [String(k.length), ...k, ...args]
}

/** One script run by EVAL of its source, with what its encoder makes of `request`. */
function evalScript<Q>(
  admin: { eval: unknown },
  script: {
    readonly source: string
    encode(request: Q): { keys: readonly string[]; args: readonly string[] }
  },
  request: Q,
): Promise<unknown> {
  const { keys, args } = script.encode(request)
  const run = admin.eval as (...a: string[]) => Promise<unknown>
  return run.call(admin, script.source, String(keys.length), ...keys, ...args)
}

/** EVAL of ACQUIRE with {@link acquireArgs}. */
function evalAcquire(admin: { eval: unknown }, ...args: string[]): Promise<unknown> {
  return (admin.eval as (...a: string[]) => Promise<unknown>).call(admin, ACQUIRE.source, ...args)
}

describeMatrix('acquire paths', (ctx) => {
  test('without fencing one key is a plain SET NX PX; the script runs only when it finds the key taken', async () => {
    const l = new Locker(await ctx.client(), { prefix: 'ap1:' })
    // The Locker's one-time eviction check (a script, on its first acquisition) first.
    await (await l.acquire('warm-up')).release()
    await waitFor(
      async () => ((await ctx.admin.call('SCRIPT', 'EXISTS', MEMORY_POLICY.sha)) as number[])[0] === 1,
    )
    const before = await ctx.admin.info('commandstats')
    const count = (info: string, cmd: string) =>
      Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
    const lock = await l.acquire('k', { lifetimeMs: 3000 })
    const after = await ctx.admin.info('commandstats')
    assert.equal(count(after, 'set') - count(before, 'set'), 1)
    assert.equal(
      count(after, 'evalsha') + count(after, 'eval'),
      count(before, 'evalsha') + count(before, 'eval'),
    )
    const pttl = await ctx.admin.pttl('ap1:k')
    assert.ok(pttl > 2500 && pttl <= 3000, `pttl ${pttl}`)
    // Taken: the fallback script reports the holder's TTL, which bounds the waiter's sleep.
    const started = performance.now()
    assert.equal(await l.tryAcquire('k'), null)
    await lock.release()
    const fenced = await l.acquire('k', { fencing: true })
    assert.equal(typeof fenced.fence, 'bigint')
    assert.equal(await ctx.admin.exists(fenceKey('ap1:k')), 1)
    await fenced.release()
    assert.ok(performance.now() - started < 2000)
    await l.close()
  })

  test('a waiter woken by a release takes the key with a plain SET NX PX: the release is the only script in the handoff', async () => {
    const holderLocker = new Locker(await ctx.client(), { prefix: 'ap13:' })
    const waiterLocker = new Locker(await ctx.client(), { prefix: 'ap13:', retryIntervalMs: 5000 })
    // The one-time eviction checks (a script each) first.
    await (await holderLocker.acquire('warm-up')).release()
    await (await waiterLocker.acquire('warm-up')).release()
    await waitFor(
      async () => ((await ctx.admin.call('SCRIPT', 'EXISTS', MEMORY_POLICY.sha)) as number[])[0] === 1,
    )
    const held = await holderLocker.acquire('k', { lifetimeMs: 10_000 })
    const pending = waiterLocker.acquire('k', { lifetimeMs: 10_000 })
    // Blocked: its failed attempt (a script) marked the holder's value for the release to publish.
    await waitFor(async () => String(await ctx.admin.get('ap13:k')).endsWith('!'))
    await waitFor(
      async () =>
        Number(((await ctx.admin.call('PUBSUB', 'NUMSUB', releaseChannel('ap13:k'))) as unknown[])[1]) === 1,
    )
    await new Promise((r) => setTimeout(r, 50)) // the waiter's subscribe-then-retry is over
    const count = (info: string, cmd: string) =>
      Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
    const scripts = (info: string) => count(info, 'evalsha') + count(info, 'eval')
    const before = await ctx.admin.info('commandstats')
    const started = performance.now()
    await held.release()
    const lock = await pending
    const after = await ctx.admin.info('commandstats')
    assert.ok(performance.now() - started < 2500, 'woken by the release, not by its 5 s retry interval')
    assert.equal(scripts(after) - scripts(before), 1, 'only the holder’s release ran a script')
    assert.equal(count(after, 'set') - count(before, 'set'), 1)
    await lock.release()
    await holderLocker.close()
    await waiterLocker.close()
  })

  test('a resent SET of our own that answers "not set" still counts as acquired (no orphaned lock)', async () => {
    const adapter = replayingSetNx(adapterFor(await ctx.client(), false))
    const backend = new SingleNodeBackend(adapter)
    const attempt = { lifetimeMs: 2000, timeoutMs: 1900, fencing: false }
    const result = await backend.acquire({ keys: ['ap2:k'], token: tok('1'), ...attempt })
    assert.deepEqual(result, { acquired: true, fence: undefined })
    assert.equal(await ctx.admin.get('ap2:k'), tok('1'))
    // Somebody else's token is contention, with the holder's TTL.
    const other = await backend.acquire({ keys: ['ap2:k'], token: tok('2'), ...attempt })
    assert.equal(other.acquired, false)
    assert.ok(!other.acquired && other.pttl > 1500 && other.pttl <= 2000, JSON.stringify(other))
    assert.equal(await ctx.admin.get('ap2:k'), `${tok('1')}!`, 'marked by the blocked attempt')
  })

  test('ACQUIRE_HOLDER: a replayed shared request counts as added even behind a writer mark (no orphan holder)', async () => {
    const run = (token: string) =>
      evalScript(ctx.admin, ACQUIRE_HOLDER, {
        keys: ['ap7:k'],
        token,
        lifetimeMs: 9000,
        fencing: false,
        mode: SHARED,
      })
    assert.equal(((await run(tok('r'))) as unknown[])[0], 1)
    // A writer now waits for the holders: new readers are kept out...
    await ctx.admin.set(writerKey('ap7:k'), tok('w'), 'PX', 5000)
    const blocked = (await run(tok('s'))) as unknown[]
    assert.equal(blocked[0], 0)
    // ...but the first reader's request delivered again is the same holder, not a newcomer.
    assert.equal(((await run(tok('r'))) as unknown[])[0], 1)
    assert.deepEqual(await ctx.admin.zrange(holdersKey('ap7:k'), '0', '-1'), [tok('r')])
  })

  test('RELEASE_HOLDER of an entry an extension already dropped: removes nothing, but deletes a key left empty and announces it when marked', async () => {
    // The last holder's entry is gone (dropped as expired); the key is marked: a writer waits.
    await ctx.admin.set('ap9:s', 'arl1.sem.3!', 'PX', 1000)
    const sub = ctx.admin.duplicate()
    const heard: string[] = []
    sub.on('message', (_channel: string, message: string) => heard.push(message))
    await sub.subscribe(releaseChannel('ap9:s'))
    try {
      const reply = await evalScript(ctx.admin, RELEASE_HOLDER, {
        keys: ['ap9:s'],
        token: 'tlate',
        publisherId: 'me',
        mode: SEM3,
      })
      assert.deepEqual(RELEASE_HOLDER.decode(reply), { removed: 0, receivers: 1 })
      assert.equal(await ctx.admin.exists('ap9:s', holdersKey('ap9:s')), 0, 'the empty key is deleted')
      await waitFor(() => heard.length === 1)
      assert.deepEqual(heard, ['me'])
      // Another holder still listed: nothing deleted, nothing announced.
      await ctx.admin.set('ap9:t', 'arl1.sem.3!', 'PX', 1000)
      await ctx.admin.zadd(holdersKey('ap9:t'), String(Date.now() + 900), 'tother')
      const again = await evalScript(ctx.admin, RELEASE_HOLDER, {
        keys: ['ap9:t'],
        token: 'tlate',
        publisherId: 'me',
        mode: SEM3,
      })
      assert.deepEqual(RELEASE_HOLDER.decode(again), { removed: 0, receivers: 0 })
      assert.equal(await ctx.admin.get('ap9:t'), 'arl1.sem.3!')
    } finally {
      sub.disconnect()
    }
  })

  test('EXTEND_HOLDERS_UNIFORM: holders re-armed (the key once; an entry past its end that no acquisition dropped too), a gone entry 0, another kind -1, nothing re-created', async () => {
    const now = Date.now()
    await ctx.admin.set('ap8:s', 'arl1.sem.3', 'PX', 1000)
    await ctx.admin.zadd(
      holdersKey('ap8:s'),
      String(now + 900),
      'ta',
      String(now + 900),
      'tb',
      String(now - 10),
      'told',
    )
    await ctx.admin.pexpire(holdersKey('ap8:s'), 1000)
    await ctx.admin.set('ap8:x', tok('x'), 'PX', 1000)
    const batch = [
      { keys: ['ap8:s'], token: 'ta', lifetimeMs: 5000, mode: SEM3 },
      { keys: ['ap8:s'], token: 'tb', lifetimeMs: 5000, mode: SEM3 },
      { keys: ['ap8:s'], token: 'told', lifetimeMs: 5000, mode: SEM3 },
      { keys: ['ap8:s'], token: 'tgone', lifetimeMs: 5000, mode: SEM3 },
      { keys: ['ap8:x'], token: 'tc', lifetimeMs: 5000, mode: SEM3 },
      { keys: ['ap8:none'], token: 'td', lifetimeMs: 5000, mode: SEM3 },
    ]
    assert.equal(uniformKind(batch), 'holders')
    const reply = await evalScript(ctx.admin, EXTEND_HOLDERS_UNIFORM, batch)
    assert.deepEqual(EXTEND_HOLDERS_UNIFORM.decode(reply), [1, 1, 1, 0, -1, 0])
    assert.ok((await ctx.admin.pttl('ap8:s')) > 4000, 'the key re-armed')
    assert.ok((await ctx.admin.pttl(holdersKey('ap8:s'))) > 4000, 'its set re-armed with it')
    assert.ok(Number(await ctx.admin.zscore(holdersKey('ap8:s'), 'ta')) > now + 4000)
    assert.ok(
      Number(await ctx.admin.zscore(holdersKey('ap8:s'), 'told')) > now + 4000,
      'an entry past its end that nobody dropped lost its place to nobody: re-armed',
    )
    assert.equal(await ctx.admin.zscore(holdersKey('ap8:s'), 'tgone'), null, 'a gone entry is not re-created')
    assert.equal(await ctx.admin.exists('ap8:none', holdersKey('ap8:none')), 0)
  })

  test('EXTEND_HOLDERS_UNIFORM: a lock key deleted or overwritten beside its intact holders set is told (0 / -1), never re-armed', async () => {
    const now = Date.now()
    for (const k of ['ap16:del', 'ap16:foreign', 'ap16:mutex']) {
      await ctx.admin.zadd(holdersKey(k), String(now + 900), 'ta')
      await ctx.admin.pexpire(holdersKey(k), 1000)
    }
    // The lock key gone (DEL, eviction) or written by someone else, its set left as it was.
    await ctx.admin.set('ap16:foreign', 'not ours')
    await ctx.admin.set('ap16:mutex', tok('m'), 'PX', 500)
    // Deleted alone and taken at once by an exclusive SET NX PX with a longer lease than
    // the holders' (its TTL says nothing: only the key's value tells).
    await ctx.admin.zadd(holdersKey('ap16:long'), String(now + 900), 'ta')
    await ctx.admin.pexpire(holdersKey('ap16:long'), 1000)
    await ctx.admin.set('ap16:long', tok('m'), 'PX', 20_000, 'NX')
    const batch = ['ap16:del', 'ap16:foreign', 'ap16:mutex', 'ap16:long'].map((k) => ({
      keys: [k],
      token: 'ta',
      lifetimeMs: 5000,
      mode: SEM3,
    }))
    assert.deepEqual(
      EXTEND_HOLDERS_UNIFORM.decode(await evalScript(ctx.admin, EXTEND_HOLDERS_UNIFORM, batch)),
      [0, -1, -1, -1],
    )
    assert.equal(await ctx.admin.exists('ap16:del'), 0, 'not re-created')
    assert.equal(await ctx.admin.pttl('ap16:foreign'), -1, 'a foreign key left as it was')
    assert.ok((await ctx.admin.pttl('ap16:mutex')) <= 500, "another owner's key not re-armed")
    assert.equal(
      Number(await ctx.admin.zscore(holdersKey('ap16:long'), 'ta')),
      now + 900,
      'nor the set beside it',
    )
    for (const k of ['ap16:del', 'ap16:foreign', 'ap16:mutex'])
      assert.ok((await ctx.admin.pttl(holdersKey(k))) <= 1000, `${k}: its set not re-armed`)
  })

  test('EXTEND (general) for holders: an entry past its end that no acquisition dropped is re-armed, a gone one makes the whole lease 0', async () => {
    const now = Date.now()
    for (const k of ['ap15:a', 'ap15:b']) {
      await ctx.admin.set(k, 'arl1.sem.2', 'PX', 1000)
      await ctx.admin.pexpire(holdersKey(k), 1000)
    }
    await ctx.admin.zadd(holdersKey('ap15:a'), String(now + 900), 'ta', String(now - 10), 'told')
    await ctx.admin.zadd(holdersKey('ap15:b'), String(now - 10), 'told')
    await ctx.admin.pexpire(holdersKey('ap15:a'), 1000)
    await ctx.admin.pexpire(holdersKey('ap15:b'), 1000)
    const SEM2 = { kind: 'semaphore', limit: 2 } as const
    const batch = [
      { keys: ['ap15:a', 'ap15:b'], token: 'told', lifetimeMs: 5000, mode: SEM2 },
      { keys: ['ap15:a', 'ap15:b'], token: 'ta', lifetimeMs: 5000, mode: SEM2 },
    ]
    assert.equal(uniformKind(batch), null, 'two keys per lease: the general script')
    assert.deepEqual(EXTEND.decode(await evalScript(ctx.admin, EXTEND, batch)), [1, 0])
    for (const k of ['ap15:a', 'ap15:b']) {
      assert.ok(Number(await ctx.admin.zscore(holdersKey(k), 'told')) > now + 4000, `${k}: re-armed`)
      assert.ok((await ctx.admin.pttl(k)) > 4000, `${k}: the key covers it`)
    }
    assert.equal(
      Number(await ctx.admin.zscore(holdersKey('ap15:a'), 'ta')),
      now + 900,
      'a lease not on every key is left alone',
    )
  })

  test('EXTEND_HOLDERS_UNIFORM: the holders of a key cost one GET, one ZADD and one PTTL; a key due for re-arming gets four leases, then is left alone while it has more than one', async () => {
    const count = async (cmd: string) =>
      Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(await ctx.admin.info('commandstats'))?.[1] ?? 0)
    const now = Date.now()
    await ctx.admin.set('ap14:s', 'arl1.sem.3', 'PX', 1000)
    // Entries far enough ahead that a slow runner cannot see them expire before the script runs.
    await ctx.admin.zadd(
      holdersKey('ap14:s'),
      String(now + 4000),
      'ta',
      String(now + 4000),
      'tb',
      String(now + 4000),
      'tc',
    )
    await ctx.admin.pexpire(holdersKey('ap14:s'), 1000)
    const batch = ['ta', 'tb', 'tc'].map((token) => ({
      keys: ['ap14:s'],
      token,
      lifetimeMs: 5000,
      mode: SEM3,
    }))
    const [get0, zadd0, pexpire0, pttl0] = [
      await count('get'),
      await count('zadd'),
      await count('pexpire'),
      await count('pttl'),
    ]
    assert.deepEqual(
      EXTEND_HOLDERS_UNIFORM.decode(await evalScript(ctx.admin, EXTEND_HOLDERS_UNIFORM, batch)),
      [1, 1, 1],
    )
    assert.equal((await count('get')) - get0, 1, 'the key read once')
    assert.equal((await count('zadd')) - zadd0, 1, 'its three holders in one ZADD')
    assert.equal((await count('pttl')) - pttl0, 1, 'its TTL read once')
    assert.equal((await count('pexpire')) - pexpire0, 2, 'the key and its set re-armed')
    for (const k of ['ap14:s', holdersKey('ap14:s')]) {
      const pttl = await ctx.admin.pttl(k)
      assert.ok(pttl > 19_000 && pttl <= 20_000, `${k}: four leases (${pttl} ms)`)
    }
    // The next extension finds more than one lease left on the key: no re-arm.
    const [get1, pexpire1] = [await count('get'), await count('pexpire')]
    assert.deepEqual(
      EXTEND_HOLDERS_UNIFORM.decode(await evalScript(ctx.admin, EXTEND_HOLDERS_UNIFORM, batch)),
      [1, 1, 1],
    )
    assert.equal((await count('pexpire')) - pexpire1, 0)
    assert.equal((await count('get')) - get1, 1, 'the key read at every extension')
    for (const t of ['ta', 'tb', 'tc'])
      assert.ok(Number(await ctx.admin.zscore(holdersKey('ap14:s'), t)) > Date.now() + 4000, `${t} extended`)
    // An exclusive attempt blocked by shared holders waits for their last lease, not for
    // the key's TTL (which may be up to four leases longer).
    await ctx.admin.set('ap14:r', 'arl1.shared', 'PX', 30_000)
    await ctx.admin.zadd(holdersKey('ap14:r'), String(Date.now() + 3000), 'ra')
    await ctx.admin.pexpire(holdersKey('ap14:r'), 30_000)
    const blocked = ACQUIRE.decode(
      await evalScript(ctx.admin, ACQUIRE, {
        keys: ['ap14:r'],
        token: tok('w'),
        lifetimeMs: 5000,
        fencing: false,
        companions: true,
        writerMarkMs: 0,
      }),
    )
    assert.ok(!blocked.acquired && blocked.companions === true, 'blocked by shared holders')
    assert.ok(
      !blocked.acquired && blocked.pttl > 2000 && blocked.pttl <= 3000,
      `waits ${JSON.stringify(blocked)}`,
    )
  })

  test('EXTEND_HOLDERS_UNIFORM: 1,200 holders of one key, interleaved with another key, one of them gone', async () => {
    const now = Date.now()
    const many = Array.from({ length: 1200 }, (_, i) => `h${i}`)
    const mode = { kind: 'semaphore', limit: 2000 } as const
    await ctx.admin.set('ap12:s', 'arl1.sem.2000', 'PX', 1000)
    await ctx.admin.zadd(
      holdersKey('ap12:s'),
      ...many.filter((t) => t !== 'h700').flatMap((t) => [String(now + 900), t]),
    )
    await ctx.admin.pexpire(holdersKey('ap12:s'), 1000)
    await ctx.admin.set('ap12:t', 'arl1.sem.2000', 'PX', 1000)
    await ctx.admin.zadd(holdersKey('ap12:t'), String(now + 900), 'other')
    await ctx.admin.pexpire(holdersKey('ap12:t'), 1000)
    const batch = many.map((token) => ({ keys: ['ap12:s'], token, lifetimeMs: 5000, mode }))
    batch.splice(600, 0, { keys: ['ap12:t'], token: 'other', lifetimeMs: 5000, mode })
    const reply = await evalScript(ctx.admin, EXTEND_HOLDERS_UNIFORM, batch)
    const statuses = EXTEND_HOLDERS_UNIFORM.decode(reply)
    assert.equal(statuses.length, 1201)
    const wrong = batch.filter((l, i) => statuses[i] !== (l.token === 'h700' ? 0 : 1)).map((l) => l.token)
    assert.deepEqual(wrong, [], 'every present holder 1, the gone one 0')
    const ends = await ctx.admin.zrange(holdersKey('ap12:s'), '0', '-1', 'WITHSCORES')
    for (let i = 1; i < ends.length; i += 2)
      assert.ok(Number(ends[i]) > now + 4000, `${ends[i - 1]} extended`)
    assert.equal(await ctx.admin.zscore(holdersKey('ap12:s'), 'h700'), null, 'the gone one not re-created')
    for (const k of ['ap12:s', 'ap12:t']) {
      assert.ok((await ctx.admin.pttl(k)) > 4000, `${k} re-armed`)
      assert.ok((await ctx.admin.pttl(holdersKey(k))) > 4000, `${k}'s set re-armed`)
    }
  })

  test('ACQUIRE_HOLDER: a holders set re-created under a key with a longer TTL gets that TTL (never left without one)', async () => {
    // A long-lease holder left; the short-lease ones expired: the key lives on, its set is gone.
    await ctx.admin.set('ap9:s', 'arl1.sem.3', 'PX', 60_000)
    const reply = await evalScript(ctx.admin, ACQUIRE_HOLDER, {
      keys: ['ap9:s'],
      token: tok('c'),
      lifetimeMs: 300,
      fencing: false,
      mode: SEM3,
    })
    assert.equal((reply as unknown[])[0], 1)
    const setTtl = await ctx.admin.pttl(holdersKey('ap9:s'))
    assert.ok(setTtl > 50_000, `holders set TTL ${setTtl}`)
  })

  test("ACQUIRE_HOLDER: a new key and its set last four leases (no re-arm at the first extensions), the holder's entry one; a key armed again gets four", async () => {
    const t0 = Date.now()
    const first = await evalScript(ctx.admin, ACQUIRE_HOLDER, {
      keys: ['ap17:s'],
      token: tok('a'),
      lifetimeMs: 5000,
      fencing: false,
      mode: SEM3,
    })
    assert.equal((first as unknown[])[0], 1)
    for (const k of ['ap17:s', holdersKey('ap17:s')]) {
      const pttl = await ctx.admin.pttl(k)
      assert.ok(pttl > 19_000 && pttl <= 20_000, `${k}: four leases (${pttl} ms)`)
    }
    const end = Number(await ctx.admin.zscore(holdersKey('ap17:s'), tok('a')))
    assert.ok(end >= t0 + 4000 && end <= Date.now() + 5000, `the entry ends one lease on (${end - t0} ms)`)
    // A key with less than a lease left (here: set by hand) is armed for four of the newcomer's.
    await ctx.admin.pexpire('ap17:s', 1000)
    const second = await evalScript(ctx.admin, ACQUIRE_HOLDER, {
      keys: ['ap17:s'],
      token: tok('b'),
      lifetimeMs: 3000,
      fencing: false,
      mode: SEM3,
    })
    assert.equal((second as unknown[])[0], 1)
    const pttl = await ctx.admin.pttl('ap17:s')
    assert.ok(pttl > 11_000 && pttl <= 12_000, `re-armed for four leases (${pttl} ms)`)
    assert.ok((await ctx.admin.pttl(holdersKey('ap17:s'))) >= pttl - 50, 'its set no shorter')
  })

  test('ACQUIRE: a multi-key attempt that fails on a later key leaves the writer mark of an earlier one', async () => {
    await ctx.admin.set(writerKey('ap10:a'), tok('x'), 'PX', 5000)
    await ctx.admin.set('ap10:b', tok('h'), 'PX', 5000)
    const { keys, args } = ACQUIRE.encode({
      keys: ['ap10:a', 'ap10:b'],
      token: tok('y'),
      lifetimeMs: 5000,
      fencing: false,
      companions: true,
    })
    const reply = (await evalAcquire(ctx.admin, String(keys.length), ...keys, ...args)) as unknown[]
    assert.equal(reply[0], 0)
    assert.equal(reply[2], 2)
    assert.equal(await ctx.admin.get(writerKey('ap10:a')), tok('x'), 'the waiting writer keeps its mark')
    assert.equal(await ctx.admin.exists('ap10:a'), 0, 'rolled back')
  })

  test('a writer’s tryAcquire on a shared lock sets no writer mark: readers keep getting in', async () => {
    const l = new Locker(await ctx.client(), { prefix: 'ap11:' })
    const r1 = await l.acquire('k', { shared: true })
    assert.equal(await l.tryAcquire('k'), null)
    assert.equal(await ctx.admin.exists(writerKey('ap11:k')), 0)
    const r2 = await l.tryAcquire('k', { shared: true })
    assert.ok(r2, 'a reader right after the writer gave up')
    await r2.release()
    await r1.release()
    await l.close()
  })

  test('the acquire script with and without fence marks', async () => {
    await ctx.admin.set('ap3:k', tok('m'), 'PX', 5000)
    // A key holding our token counts as taken (replay) and gets the new lease.
    assert.deepEqual(await evalAcquire(ctx.admin, ...acquireArgs(['ap3:k'], tok('m'), 9000, false)), [1])
    assert.ok((await ctx.admin.pttl('ap3:k')) > 8000)
    const held = (await evalAcquire(ctx.admin, ...acquireArgs(['ap3:k'], tok('t'), 9000, false))) as unknown[]
    assert.equal(held[0], 0)
    assert.equal(held[2], 1)
    // Fenced: lock keys then their mark keys; the mark is written and the fence returned.
    const fenced = (await evalAcquire(ctx.admin, ...acquireArgs(['ap3:f'], tok('t'), 9000, true))) as [
      number,
      string,
    ]
    assert.equal(fenced[0], 1)
    assert.equal(await ctx.admin.get(fenceKey('ap3:f')), fenced[1])
    // Several keys without fencing: all or none, no mark keys.
    assert.deepEqual(
      await evalAcquire(ctx.admin, ...acquireArgs(['ap3:a', 'ap3:b'], tok('t'), 9000, false)),
      [1],
    )
    assert.equal(await ctx.admin.exists(fenceKey('ap3:a'), fenceKey('ap3:b')), 0)
    const partial = (await evalAcquire(
      ctx.admin,
      ...acquireArgs(['ap3:c', 'ap3:a'], tok('u'), 9000, false),
    )) as unknown[]
    assert.equal(partial[0], 0)
    assert.equal(await ctx.admin.exists('ap3:c'), 0, 'rolled back')
  })

  test('the compact extension script: ours re-armed, another owner -1, a gone key 0 and not re-created', async () => {
    await ctx.admin.set('ap4:a', 'ta', 'PX', 1000)
    await ctx.admin.set('ap4:b', 'someone', 'PX', 1000)
    const reply = await ctx.admin.eval(
      EXTEND_UNIFORM.source,
      3,
      'ap4:a',
      'ap4:b',
      'ap4:c',
      '9000',
      'ta',
      'tb',
      'tc',
    )
    assert.deepEqual(reply, [1, -1, 0])
    assert.ok((await ctx.admin.pttl('ap4:a')) > 8000)
    assert.ok((await ctx.admin.pttl('ap4:b')) <= 1000)
    assert.equal(await ctx.admin.exists('ap4:c'), 0)
  })

  test('waiting mark: a blocked attempt marks the holder once; extend, release and inspect accept it; only a marked release publishes', async () => {
    const count = async (cmd: string) =>
      Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(await ctx.admin.info('commandstats'))?.[1] ?? 0)
    const holder = new Locker(await ctx.client(), { prefix: 'ap5:' })
    const other = new Locker(await ctx.client(), { prefix: 'ap5:' })
    // Nobody waits: the release deletes without a message.
    const publishes0 = await count('publish')
    const quiet = await holder.acquire('k')
    assert.equal(await ctx.admin.get('ap5:k'), quiet.token)
    await quiet.release()
    assert.equal(await count('publish'), publishes0, 'an unwaited release publishes nothing')

    const lock = await holder.acquire('k', { lifetimeMs: 3000 })
    assert.equal(await other.tryAcquire('k'), null)
    assert.equal(await other.tryAcquire('k'), null)
    assert.equal(await ctx.admin.get('ap5:k'), `${lock.token}!`, 'marked once, however many attempts')
    assert.ok((await ctx.admin.pttl('ap5:k')) > 2000, 'APPEND keeps the lease')
    assert.equal((await holder.inspect('k')).token, lock.token, 'inspect strips the mark')
    await lock.extend()
    assert.equal(lock.signal.aborted, false, 'a marked lease is still ours to extend')
    const waiter = other.acquire('k', { retryIntervalMs: 10_000, retryTimeoutMs: 10_000 })
    await new Promise((r) => setTimeout(r, 100))
    const started = performance.now()
    assert.equal(await lock.release(), true)
    const next = await waiter
    assert.ok(performance.now() - started < 1000, 'the marked release woke the waiter')
    assert.equal(await count('publish'), publishes0 + 1)
    await next.release()
    await holder.close()
    await other.close()
  })

  test('waiting mark in the scripts: replay and both extension scripts accept it; foreign values are never marked', async () => {
    const a = tok('A')
    await ctx.admin.set('ap6:k', a, 'PX', 5000)
    const blocked = (await evalAcquire(
      ctx.admin,
      ...acquireArgs(['ap6:k'], tok('B'), 9000, false),
    )) as unknown[]
    assert.equal(blocked[0], 0)
    assert.equal(await ctx.admin.get('ap6:k'), `${a}!`)
    // A replayed request of the marked holder itself still counts as taken.
    assert.deepEqual(await evalAcquire(ctx.admin, ...acquireArgs(['ap6:k'], a, 9000, false)), [1])
    assert.deepEqual(await ctx.admin.eval(EXTEND_UNIFORM.source, 1, 'ap6:k', '9000', a), [1])
    assert.deepEqual(await ctx.admin.eval(EXTEND.source, 1, 'ap6:k', '1', a, '9000', '1', 'x'), [1])
    const [stored] = (await ctx.admin.eval(
      INSPECT.source,
      3,
      'ap6:k',
      fenceKey('ap6:k'),
      holdersKey('ap6:k'),
    )) as [string]
    assert.equal(stored, `${a}!`)
    // Marked, so announced; nobody subscribed: the integer reply.
    assert.equal(await ctx.admin.eval(RELEASE.source, 1, 'ap6:k', a, 'me'), 1)
    // Ours without a TTL: blocked (pttl -1), but not marked.
    await ctx.admin.set('ap6:forever', tok('C'))
    const r = (await evalAcquire(
      ctx.admin,
      ...acquireArgs(['ap6:forever'], tok('B'), 9000, false),
    )) as unknown[]
    assert.deepEqual(r, [0, -1, 1])
    assert.equal(await ctx.admin.get('ap6:forever'), tok('C'))
    // Not ours (another application's value, 0.1.0's 22-character token): an error, and left as they are.
    const foreign: [string, string][] = [
      ['ap6:short', 'someone'],
      ['ap6:old', 'C'.repeat(22)],
      ['ap6:old-marked', `${'C'.repeat(22)}!`],
      ['ap6:unprefixed', 'C'.repeat(27)],
    ]
    for (const [key, value] of foreign) {
      await ctx.admin.set(key, value, 'PX', 5000)
      await assert.rejects(
        evalAcquire(ctx.admin, ...acquireArgs([key], tok('B'), 9000, false)),
        /^ReplyError: NOTALOCK .*not a lock/,
      )
      await assert.rejects(
        ctx.admin.eval(INSPECT.source, 3, key, fenceKey(key), holdersKey(key)),
        /NOTALOCK .*not a lock/,
      )
      assert.equal(await ctx.admin.get(key), value)
    }
  })
})
