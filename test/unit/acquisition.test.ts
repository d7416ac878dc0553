import assert from 'node:assert/strict'
import { afterEach, describe, test } from 'node:test'
import { Acquisition } from '../../src/acquisition.js'
import { SingleNodeBackend } from '../../src/backends/single-node.js'
import { BackendError, QuorumError } from '../../src/errors.js'
import { backoffMs } from '../../src/internal/retry.js'
import { isTransient } from '../../src/internal/transient.js'
import { type AcquireOptions, resolveLockOptions } from '../../src/options.js'
import { ACQUIRE, ACQUIRE_HOLDER, RELEASE, RELEASE_HOLDER } from '../../src/scripts/index.js'
import { type CallHandler, deferred, FakeAdapter, type ScriptCall } from '../helpers/fake-adapter.js'
import { FakeClock, flushMicrotasks } from '../helpers/fake-clock.js'

const isAcquire = (script: string) => script === ACQUIRE.sha || script === ACQUIRE.source
const isRelease = (script: string) => script === RELEASE.sha || script === RELEASE.source

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0)) await fn()
})

function setup(handler: CallHandler) {
  const clock = new FakeClock(0)
  const adapter = new FakeAdapter()
  adapter.handler = handler
  const acquisition = new Acquisition({ backend: new SingleNodeBackend(adapter), clock })
  cleanups.push(async () => {
    adapter.settleHung()
    await acquisition.close()
  })
  const attempts = () => adapter.calls.filter((c) => isAcquire(c.script)).length
  return { clock, adapter, acquisition, attempts }
}

/** A key held by somebody else (no TTL: only releases or the retry interval wake us). */
const heldForever: CallHandler = (call) => (isAcquire(call.script) ? [0, -1, 1] : [1, 0])

describe('Acquisition: the caller signal bounds everything', () => {
  test('aborted while (re)subscribing: rejects with signal.reason, never attempts again', async () => {
    let free = false
    const { adapter, acquisition, attempts } = setup((call) =>
      isAcquire(call.script) ? (free ? [1] : [0, 5000, 1]) : [1, 0],
    )
    const subscribed = deferred<void>()
    adapter.subscribeHandler = () => subscribed.promise
    const controller = new AbortController()
    const opts = resolveLockOptions([{ retryTimeoutMs: 10_000 }])
    const pending = acquisition.run(['k'], opts, controller.signal, false, undefined)
    const outcome = pending.then(
      (lock) => ({ lock }),
      (error: unknown) => ({ error }),
    )
    await flushMicrotasks()
    assert.equal(attempts(), 1)
    free = true // the holder releases meanwhile
    const reason = new Error('caller gave up')
    controller.abort(reason)
    subscribed.resolve() // a slow subscriber link answers after the abort
    const result = await outcome
    assert.ok('error' in result, 'rejected')
    assert.equal(result.error, reason)
    assert.equal(attempts(), 1, 'no attempt after the abort')
  })

  test('aborted while the attempt is in flight: rejects at once, the late grant is released', async () => {
    const { adapter, acquisition } = setup(() => undefined)
    adapter.handler = adapter.hang()
    const controller = new AbortController()
    const pending = acquisition.run(['k'], resolveLockOptions([{}]), controller.signal, false, undefined)
    const outcome = pending.catch((e: unknown) => e)
    await flushMicrotasks()
    controller.abort(new Error('stop'))
    assert.equal(((await outcome) as Error).message, 'stop')
    adapter.handler = (call) => (isAcquire(call.script) ? [1] : [1, 0])
    adapter.hung[0]?.resolve([1])
    await flushMicrotasks()
    await new Promise((r) => setImmediate(r))
    assert.ok(
      adapter.calls.some((c) => isRelease(c.script) && c.args[0] === adapter.calls[0]?.args[0]),
      'released',
    )
  })

  test('one AbortSignal shared by many waiting acquires: one listener, no MaxListenersExceededWarning', async () => {
    const { clock, acquisition } = setup(heldForever)
    const warnings: Error[] = []
    const onWarning = (w: Error) => warnings.push(w)
    process.on('warning', onWarning)
    const controller = new AbortController()
    const opts = resolveLockOptions([{ retryTimeoutMs: null }])
    const all = Array.from({ length: 30 }, (_, i) =>
      acquisition.run([`k${i % 3}`], opts, controller.signal, false, undefined).catch((e: unknown) => e),
    )
    await clock.advanceAsync(1000)
    controller.abort(new Error('done'))
    const results = await Promise.all(all)
    await new Promise((r) => setImmediate(r))
    process.off('warning', onWarning)
    assert.ok(results.every((r) => (r as Error).message === 'done'))
    assert.deepEqual(
      warnings.map((w) => w.name),
      [],
    )
  })
})

describe('Acquisition: one attempt per wake-up and key, however many local waiters', () => {
  test('50 waiters on a held key attempt about once per retry interval, not 50 times', async () => {
    const { clock, acquisition, attempts } = setup(heldForever)
    const opts = resolveLockOptions([{ retryIntervalMs: 100, retryTimeoutMs: 3000 }])
    const all = Array.from({ length: 50 }, () =>
      acquisition.run(['k'], opts, undefined, false, undefined).catch((e: unknown) => e),
    )
    await clock.advanceAsync(2900)
    // The first attempts, its retry after subscribing, then one per (jittered) interval.
    const n = attempts()
    assert.ok(n >= 20 && n <= 45, `${n} attempts in 2.9 s`)
    await clock.advanceAsync(200)
    const results = await Promise.all(all)
    assert.ok(results.every((r) => (r as { code?: string }).code === 'ERR_LOCK_ACQUIRE_TIMEOUT'))
    assert.ok(attempts() - n <= 5, 'no burst of final attempts at the timeout')
  })

  test('retry intervals are jittered (80–120 %)', async () => {
    const { clock, acquisition, adapter } = setup(heldForever)
    const times: number[] = []
    adapter.handler = (call) => {
      if (isAcquire(call.script)) times.push(clock.now())
      return heldForever(call)
    }
    const opts = resolveLockOptions([{ retryIntervalMs: 100, retryTimeoutMs: 5000 }])
    const done = acquisition.run(['k'], opts, undefined, false, undefined).catch(() => {})
    await clock.advanceAsync(5100)
    await done
    const gaps = times.slice(3).map((t, i) => t - (times[i + 2] as number))
    assert.ok(gaps.length > 20)
    assert.ok(
      Math.min(...gaps) >= 79 && Math.max(...gaps) <= 121,
      `gaps ${Math.min(...gaps)}..${Math.max(...gaps)}`,
    )
    assert.ok(new Set(gaps.map(Math.round)).size > 3, 'not all the same')
  })
})

describe('Acquisition: retryTimeoutMs 0 is one attempt', () => {
  test('behind a local waiter (which would queue it), retryTimeoutMs 0 still sends one attempt', async () => {
    const { clock, acquisition, attempts } = setup(heldForever)
    const first = acquisition
      .run(['k'], resolveLockOptions([{ retryTimeoutMs: 5000 }]), undefined, false, undefined)
      .catch((e: unknown) => e)
    await clock.advanceAsync(10)
    const before = attempts()
    const pending = acquisition
      .run(['k'], resolveLockOptions([{ retryTimeoutMs: 0 }]), undefined, false, undefined)
      .catch((e: unknown) => e)
    await clock.advanceAsync(1)
    const err = await pending
    assert.equal((err as { code?: string }).code, 'ERR_LOCK_ACQUIRE_TIMEOUT')
    assert.equal((err as { attempts?: number }).attempts, 1)
    assert.equal(attempts() - before, 1)
    await clock.advanceAsync(6000)
    await first
  })
})

describe('Acquisition: transient failures are ridden out, permanent ones are not', () => {
  test('LOADING three times, then free: acquired, 4 attempts', async () => {
    let failures = 3
    const { clock, acquisition, attempts } = setup((call) => {
      if (!isAcquire(call.script)) return [1, 0]
      if (failures-- > 0) throw new Error('LOADING Redis is loading the dataset in memory')
      return [1]
    })
    const pending = acquisition.run(
      ['k'],
      resolveLockOptions([{ retryTimeoutMs: 10_000 }]),
      undefined,
      false,
      undefined,
    )
    await clock.advanceAsync(2000)
    const lock = await pending
    assert.ok(lock)
    assert.equal(attempts(), 4)
  })

  test('giving up at retryTimeoutMs: ERR_LOCK_BACKEND with the last error as cause and the attempt count', async () => {
    const { clock, acquisition, attempts } = setup((call) => {
      if (isAcquire(call.script)) throw new Error('READONLY You cannot write against a read only replica.')
      return [1, 0]
    })
    const pending = acquisition
      .run(['k'], resolveLockOptions([{ retryTimeoutMs: 500 }]), undefined, false, undefined)
      .catch((e: unknown) => e)
    await clock.advanceAsync(600)
    const err = await pending
    assert.ok(err instanceof BackendError, String(err))
    assert.equal(err.code, 'ERR_LOCK_BACKEND')
    assert.ok((err.attempts ?? 0) >= 2, `attempts ${err.attempts}`)
    assert.equal(err.attempts, attempts())
    assert.match(String(err.cause), /READONLY/)
  })

  test('a permanent error (WRONGTYPE, NOPERM) fails at once; tryAcquire never retries', async () => {
    for (const message of ['WRONGTYPE lock key k holds a non-string value', 'NOPERM no permissions']) {
      const { acquisition, attempts } = setup(() => {
        throw new Error(message)
      })
      const err = await acquisition
        .run(['k'], resolveLockOptions([{ retryTimeoutMs: 10_000 }]), undefined, false, undefined)
        .catch((e: unknown) => e)
      assert.ok(err instanceof BackendError)
      assert.equal(attempts(), 1, message)
    }
    const { acquisition, attempts } = setup(() => {
      throw new Error('LOADING Redis is loading')
    })
    const err = await acquisition
      .run(['k'], resolveLockOptions([{ retryTimeoutMs: 10_000 }]), undefined, true, undefined)
      .catch((e: unknown) => e)
    assert.ok(err instanceof BackendError)
    assert.equal(attempts(), 1)
  })

  test('classification table', () => {
    const wrap = (message: string) =>
      new BackendError('acquire', `acquire failed: ${message}`, { cause: new Error(message) })
    for (const m of [
      'LOADING x',
      'READONLY x',
      'MASTERDOWN x',
      'CLUSTERDOWN x',
      'TRYAGAIN x',
      'BUSY x',
      'OOM x',
    ]) {
      assert.equal(isTransient(wrap(m)), true, m)
    }
    for (const m of ['Connection is closed.', 'connect ECONNREFUSED 127.0.0.1:1', 'The client is closed']) {
      assert.equal(isTransient(wrap(m)), true, m)
    }
    assert.equal(
      isTransient(new BackendError('acquire', 'acquire got no reply from Redis within 500 ms')),
      true,
    )
    for (const m of [
      'WRONGTYPE x',
      'NOPERM x',
      'NOAUTH x',
      'WRONGPASS x',
      "ERR unknown command 'x'",
      'NOTALOCK x',
    ]) {
      assert.equal(isTransient(wrap(m)), false, m)
    }
    assert.equal(isTransient(new Error('LOADING but not ours')), false)
    // Valkey GLIDE's wording of the codes it knows.
    const glide = (kind: string) => wrap(`An error was signalled by the server: - ${kind}: text`)
    assert.equal(isTransient(glide('PermissionDenied')), false)
    assert.equal(isTransient(glide('ResponseError')), false)
    assert.equal(isTransient(glide('BusyLoadingError')), true)
    assert.equal(isTransient(glide('TryAgain')), true)
    assert.equal(
      isTransient(wrap('WRONGTYPE: Operation against a key holding the wrong kind of value')),
      false,
    )
  })

  test('a quorum error is transient only when some node timed out or failed transiently', () => {
    const nodeErr = (m: string) =>
      new BackendError('acquire', `acquire failed: ${m}`, { cause: new Error(m) })
    const permanent = new QuorumError('acquire', 'no majority', [
      { node: 0, outcome: 'error', error: nodeErr('NOPERM no permissions') },
      { node: 1, outcome: 'error', error: nodeErr('NOPERM no permissions') },
      { node: 2, outcome: 'acquired' },
    ])
    assert.equal(isTransient(permanent), false)
    const timedOut = new QuorumError('acquire', 'no majority', [
      { node: 0, outcome: 'timeout', error: new BackendError('acquire', 'no reply') },
      { node: 1, outcome: 'error', error: nodeErr('NOPERM no permissions') },
      { node: 2, outcome: 'acquired' },
    ])
    assert.equal(isTransient(timedOut), true)
  })

  test('backoff: exponential from 50 ms, capped at the retry interval (at most 1 s), fully jittered', () => {
    for (let i = 0; i < 200; i++) {
      assert.ok(backoffMs(1, 500) <= 50)
      assert.ok(backoffMs(3, 500) <= 200)
      assert.ok(backoffMs(20, 500) <= 500)
      assert.ok(backoffMs(20, 60_000) <= 1000)
    }
  })
})

describe('Acquisition: a semaphore release hands its permit to the next local waiter', () => {
  const isAcquireHolder = (script: string) =>
    script === ACQUIRE_HOLDER.sha || script === ACQUIRE_HOLDER.source
  const isReleaseHolder = (script: string) =>
    script === RELEASE_HOLDER.sha || script === RELEASE_HOLDER.source
  /** At its limit (one permit, ours): attempts are turned away until a release hands the permit on. */
  const permit: AcquireOptions = { limit: 1, lifetimeMs: 3000, retryIntervalMs: 5000, retryTimeoutMs: 60_000 }
  const permitOpts = resolveLockOptions([permit])
  const HANDED_OVER = [1, 0, 0, 0, 1]

  /** A Locker holding the key's one permit, with one more acquisition waiting behind it. */
  async function holderAndWaiter(release: (call: ScriptCall) => unknown) {
    let held = false
    const s = setup((call) => {
      if (isAcquireHolder(call.script)) {
        if (held) return [0, 3000, 1] // at the limit: its holder's lease ends in 3 s
        held = true
        return [1, false, 0]
      }
      return isReleaseHolder(call.script) ? release(call) : [1, 0]
    })
    const lock = await s.acquisition.run(['sem'], permitOpts, undefined, false, undefined)
    assert.ok(lock)
    const controller = new AbortController()
    const waiting = s.acquisition.run(['sem'], permitOpts, controller.signal, false, undefined)
    const outcome = waiting.then(
      (l) => ({ lock: l }),
      (error: unknown) => ({ error }),
    )
    await flushMicrotasks()
    await new Promise((r) => setImmediate(r))
    // The waiter was turned away (then attempted once more, right after subscribing).
    const attemptsSoFar = s.adapter.calls.filter((c) => isAcquireHolder(c.script)).length
    assert.ok(attemptsSoFar >= 2)
    return { ...s, lock, controller, outcome, attemptsSoFar }
  }

  test('the release names the first local waiter as successor; handed over, that waiter holds the permit with its token, with no attempt of its own', async () => {
    const { adapter, lock, outcome, attemptsSoFar } = await holderAndWaiter(() => HANDED_OVER)
    assert.equal(await lock.release(), true)
    const result = await outcome
    assert.ok('lock' in result && result.lock, 'the waiter got the permit')
    const release = adapter.calls.find((c) => isReleaseHolder(c.script))
    assert.ok(release)
    // ARGV: token, Locker id, limit, leave-queue id, successor token, lease, more, queue TTL
    assert.equal(release.args.length, 8)
    assert.equal(release.args[3], '')
    assert.equal(release.args[4], result.lock.token)
    assert.equal(release.args[5], '3000')
    assert.equal(release.args[6], '', 'nobody else waits behind it')
    assert.equal(
      adapter.calls.filter((c) => isAcquireHolder(c.script)).length,
      attemptsSoFar,
      'no attempt after the release',
    )
    assert.ok(result.lock.isHeld())
    await result.lock.release()
  })

  test('the handed-over lease counts from when the release was sent, not from its answer', async () => {
    const answer = deferred<unknown>()
    const { clock, lock, outcome } = await holderAndWaiter(() => answer.promise)
    const sentAt = clock.now()
    const releasing = lock.release()
    await flushMicrotasks()
    clock.advance(1000) // the answer takes a second
    answer.resolve(HANDED_OVER)
    await releasing
    const result = await outcome
    assert.ok('lock' in result && result.lock)
    const fromSend = 3000 - (clock.now() - sentAt)
    assert.ok(
      result.lock.remainingMs() <= fromSend,
      `remaining ${result.lock.remainingMs()} ms, at most ${fromSend} ms counted from the send`,
    )
    await result.lock.release()
  })

  test('a hand-over answered after the waiter’s own lease would have run out: undone, and the waiter goes on waiting', async () => {
    const answer = deferred<unknown>()
    const short = resolveLockOptions([{ ...permit, lifetimeMs: 1000 }])
    let held = false
    const s = setup((call) => {
      if (isAcquireHolder(call.script)) {
        if (held) return [0, 3000, 1]
        held = true
        return [1, false, 0]
      }
      return call.args.length === 8 ? answer.promise : [1, 0]
    })
    const lock = await s.acquisition.run(
      ['sem'],
      resolveLockOptions([{ ...permit, lifetimeMs: 30_000 }]),
      undefined,
      false,
      undefined,
    )
    assert.ok(lock)
    const waiting = s.acquisition.run(['sem'], short, undefined, false, undefined)
    let settled = false
    void waiting.then(
      () => (settled = true),
      () => (settled = true),
    )
    await flushMicrotasks()
    await new Promise((r) => setImmediate(r))
    const before = s.adapter.calls.filter((c) => isAcquireHolder(c.script)).length
    const releasing = lock.release()
    await flushMicrotasks()
    const offered = s.adapter.calls.find((c) => isReleaseHolder(c.script))?.args[4]
    s.clock.advance(1200) // the answer comes after the waiter's 1 s lease
    answer.resolve(HANDED_OVER)
    await releasing
    await flushMicrotasks()
    await new Promise((r) => setImmediate(r))
    assert.equal(settled, false, 'the waiter gave up although its timeout is far')
    assert.ok(
      s.adapter.calls.some((c) => isReleaseHolder(c.script) && c.args[0] === offered),
      'the late permit was released',
    )
    assert.ok(s.adapter.calls.filter((c) => isAcquireHolder(c.script)).length > before, 'it attempts again')
    s.adapter.settleHung()
  })

  test('a waiter that gives up while the release is in flight: the permit handed to it is released again', async () => {
    const answer = deferred<unknown>()
    const { adapter, lock, controller, outcome } = await holderAndWaiter((call) =>
      call.args.length === 8 ? answer.promise : [1, 0],
    )
    const releasing = lock.release()
    await flushMicrotasks()
    const offered = adapter.calls.find((c) => isReleaseHolder(c.script))?.args[4]
    assert.ok(offered, 'the release offered the permit')
    controller.abort(new Error('caller gave up'))
    const result = await outcome
    assert.ok('error' in result && (result.error as Error).message === 'caller gave up')
    answer.resolve(HANDED_OVER)
    await releasing
    await flushMicrotasks()
    await new Promise((r) => setImmediate(r))
    assert.ok(
      adapter.calls.some((c) => isReleaseHolder(c.script) && c.args[0] === offered),
      'the permit nobody waits for any more was released',
    )
  })

  test('not handed over (another Locker comes first): the waiter goes on waiting, and a wake-up it got meanwhile is kept', async () => {
    const answer = deferred<unknown>()
    const { acquisition, adapter, lock, outcome, attemptsSoFar } = await holderAndWaiter(() => answer.promise)
    const releasing = lock.release()
    await flushMicrotasks()
    acquisition.waiters.notify('sem') // a release message arrives while the offer is in flight
    await flushMicrotasks()
    const before = adapter.calls.filter((c) => isAcquireHolder(c.script)).length
    assert.equal(before, attemptsSoFar, 'the offered waiter does not attempt while the offer is open')
    answer.resolve(1) // released, not handed over, nobody heard
    await releasing
    await flushMicrotasks()
    await new Promise((r) => setImmediate(r))
    assert.ok(
      adapter.calls.filter((c) => isAcquireHolder(c.script)).length > before,
      'the kept wake-up led to an attempt',
    )
    adapter.settleHung()
    void outcome
  })
})
