import assert from 'node:assert/strict'
import { afterEach, describe, test } from 'node:test'
import { Backend } from '../../src/backends/backend.js'
import { BackendError, LockLostError, type LockLostReason } from '../../src/errors.js'
import { driftFor, Lease } from '../../src/internal/lease.js'
import { resolveLockOptions } from '../../src/options.js'
import { MAX_BATCH, Renewer } from '../../src/renewer.js'
import { EXTEND } from '../../src/scripts.js'
import { type CallHandler, extendEntries, extendReply, FakeAdapter } from '../helpers/fake-adapter.js'
import { FakeClock, flushMicrotasks } from '../helpers/fake-clock.js'

/** Lifetime used unless a test says otherwise: interval 5000, drift 102, batch window 1000. */
const LIFETIME = 10_000
const DRIFT = 102

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const fn of cleanups.splice(0)) fn()
})

function setup() {
  const clock = new FakeClock(0)
  const adapter = new FakeAdapter()
  const lost: Lease[] = []
  /** Whether the lease's signal had already aborted when onLost ran for it. */
  const abortedBeforeOnLost: boolean[] = []
  const renewer = new Renewer(new Backend(adapter), clock, (lease) => {
    lost.push(lease)
    abortedBeforeOnLost.push(lease.controller.signal.aborted)
  })
  /** Clock time of each script call. */
  const callTimes: number[] = []
  let answer: CallHandler = extendReply()
  adapter.handler = (call) => {
    callTimes.push(clock.now())
    return answer(call)
  }
  cleanups.push(() => {
    renewer.stop()
    adapter.settleHung()
  })
  return {
    clock,
    adapter,
    renewer,
    lost,
    abortedBeforeOnLost,
    callTimes,
    answer(handler: CallHandler) {
      answer = handler
    },
  }
}

let tokens = 0
function newLease(clock: FakeClock, lifetimeMs = LIFETIME, keys?: string[]): Lease {
  const n = ++tokens
  return new Lease(
    keys ?? [`key${n}`],
    `token${n}`,
    BigInt(n),
    resolveLockOptions([{ lifetimeMs }]),
    clock.now(),
  )
}

function assertLost(lease: Lease, reason: LockLostReason): LockLostError {
  assert.equal(lease.state, 'lost')
  assert.equal(lease.controller.signal.aborted, true)
  const err = lease.controller.signal.reason
  assert.ok(err instanceof LockLostError, `signal reason is a LockLostError: ${String(err)}`)
  assert.equal(err.code, 'ERR_LOCK_LOST')
  assert.equal(err.reason, reason)
  assert.deepEqual(err.keys, lease.keys)
  assert.equal(lease.lostError, err)
  return err
}

function assertHeld(renewer: Renewer, lease: Lease): void {
  assert.equal(lease.state, 'held')
  assert.equal(lease.controller.signal.aborted, false)
  assert.equal(renewer.check(lease), true)
}

describe('Renewer', () => {
  test('drift is ceil(1% of the lifetime) + 2 ms', () => {
    assert.equal(driftFor(10_000), DRIFT)
    assert.equal(driftFor(1000), 12)
    assert.equal(driftFor(1234), 15)
    assert.equal(driftFor(10), 3)
  })

  test('extends a lease once per extendIntervalMs', async () => {
    const { clock, adapter, renewer } = setup()
    const lease = newLease(clock)
    renewer.add(lease)
    assert.equal(lease.deadline, LIFETIME - DRIFT)
    await clock.advanceAsync(4999)
    assert.equal(adapter.calls.length, 0)
    await clock.advanceAsync(1)
    assert.equal(adapter.calls.length, 1)
    const [call] = adapter.calls
    assert.equal(call?.command, 'evalsha')
    assert.equal(call?.script, EXTEND.sha)
    assert.deepEqual(extendEntries(call!), [{ token: lease.token, lifetimeMs: LIFETIME, keys: lease.keys }])
    assert.equal(lease.deadline, 5000 + LIFETIME - DRIFT)
    assert.equal(lease.nextDueAt, 10_000)
    await clock.advanceToAsync(30_000)
    assert.equal(adapter.calls.length, 6)
    assert.equal(renewer.batches, 6)
    assertHeld(renewer, lease)
  })

  test('batches leases that fall due within the window into one call', async () => {
    const { clock, adapter, renewer } = setup()
    const leases: Lease[] = []
    for (let i = 0; i < 10; i++) {
      const lease = newLease(clock)
      leases.push(lease)
      renewer.add(lease)
      await clock.advanceAsync(100)
    }
    await clock.advanceToAsync(20_000)
    assert.ok(adapter.calls.length < leases.length)
    assert.equal(adapter.calls.length, 4) // at 5000, 10000, 15000, 20000
    for (const call of adapter.calls) assert.equal(extendEntries(call).length, 10)
    for (const lease of leases) assertHeld(renewer, lease)
  })

  test('leases due further apart than the window get their own calls', async () => {
    const { clock, renewer, callTimes } = setup()
    renewer.add(newLease(clock))
    await clock.advanceAsync(2000)
    renewer.add(newLease(clock))
    await clock.advanceToAsync(7000)
    assert.deepEqual(callTimes, [5000, 7000])
  })

  test('a lease due sooner than the armed timer re-arms it earlier', async () => {
    const { clock, adapter, renewer, callTimes } = setup()
    renewer.add(newLease(clock)) // due at 5000
    await clock.advanceAsync(100)
    const short = newLease(clock, 1000) // due at 600
    renewer.add(short)
    await clock.advanceToAsync(600)
    assert.deepEqual(callTimes, [600])
    assert.deepEqual(
      extendEntries(adapter.calls[0]!).map((e) => e.token),
      [short.token],
    )
  })

  test('splits a batch into chunks of MAX_BATCH', async () => {
    const { clock, adapter, renewer } = setup()
    for (let i = 0; i < MAX_BATCH + 1; i++) renewer.add(newLease(clock))
    await clock.advanceToAsync(5000)
    assert.deepEqual(
      adapter.calls.map((c) => extendEntries(c).length),
      [MAX_BATCH, 1],
    )
  })

  test('status 0 loses only that lease as expired, -1 as stolen; the rest stay held', async () => {
    const { clock, adapter, renewer, lost, abortedBeforeOnLost, answer } = setup()
    const kept = newLease(clock)
    const expired = newLease(clock)
    const stolen = newLease(clock, LIFETIME, ['m1', 'm2'])
    for (const l of [kept, expired, stolen]) renewer.add(l)
    answer(extendReply((t) => (t === expired.token ? 0 : t === stolen.token ? -1 : 1)))
    await clock.advanceToAsync(5000)
    assert.equal(adapter.calls.length, 1)
    assertHeld(renewer, kept)
    assertLost(expired, 'expired')
    assertLost(stolen, 'stolen')
    assert.deepEqual(lost, [expired, stolen])
    assert.deepEqual(abortedBeforeOnLost, [false, false])
    assert.equal(renewer.size, 1)
    await clock.advanceToAsync(10_000)
    assert.deepEqual(
      extendEntries(adapter.calls[1]!).map((e) => e.token),
      [kept.token],
    )
  })

  test('a hung extension loses the lease as unreachable exactly at its deadline', async () => {
    const { clock, adapter, renewer, lost, answer } = setup()
    const lease = newLease(clock)
    renewer.add(lease)
    await clock.advanceToAsync(5000) // confirmed: deadline = 5000 + lifetime - drift
    answer(adapter.hang())
    let abortedAt: number | undefined
    lease.controller.signal.addEventListener('abort', () => {
      abortedAt = clock.now()
    })
    const deadline = 5000 + LIFETIME - driftFor(LIFETIME)
    await clock.advanceToAsync(deadline - 1)
    assert.equal(adapter.calls.length, 2) // the one at 10000 never answers
    assertHeld(renewer, lease)
    assert.equal(lost.length, 0)
    await clock.advanceAsync(1)
    assert.equal(abortedAt, deadline)
    assertLost(lease, 'unreachable')
    assert.deepEqual(lost, [lease])
    assert.equal(renewer.check(lease), false)
  })

  test('a first extension that hangs loses the lease at the acquisition deadline', async () => {
    const { clock, adapter, renewer, answer } = setup()
    answer(adapter.hang())
    const lease = newLease(clock, 1234) // interval 617, drift 15
    renewer.add(lease)
    await clock.advanceToAsync(1234 - 15 - 1)
    assert.equal(adapter.calls.length, 1)
    assertHeld(renewer, lease)
    await clock.advanceAsync(1)
    assertLost(lease, 'unreachable')
  })

  test('check() loses a lease synchronously once the clock is past the deadline', () => {
    const { clock, renewer, lost } = setup()
    const lease = newLease(clock)
    renewer.add(lease)
    clock.jump(LIFETIME - DRIFT - 1) // no timer fires: a blocked event loop
    assert.equal(renewer.check(lease), true)
    clock.jump(1)
    assert.equal(lease.controller.signal.aborted, false)
    assert.equal(renewer.check(lease), false)
    assertLost(lease, 'expired') // nothing was ever sent: nobody failed to answer
    assert.deepEqual(lost, [lease])
    assert.equal(renewer.check(lease), false)
    assert.equal(lost.length, 1)
  })

  test('check() past the deadline with an extension in flight says unreachable', async () => {
    const { clock, adapter, renewer, answer } = setup()
    answer(adapter.hang())
    const lease = newLease(clock)
    renewer.add(lease)
    await clock.advanceToAsync(5000)
    assert.ok(lease.inFlight)
    clock.jump(LIFETIME)
    assert.equal(renewer.check(lease), false)
    assertLost(lease, 'unreachable')
  })

  test('a failed extension is retried before the deadline and a later success keeps the lease', async () => {
    const { clock, renewer, callTimes, answer } = setup()
    const lease = newLease(clock)
    renewer.add(lease)
    answer(() => {
      throw new Error('LOADING Redis is loading the dataset in memory')
    })
    await clock.advanceToAsync(5000)
    assert.ok(lease.lastError instanceof BackendError)
    assert.equal(lease.lastError.operation, 'extend')
    assert.match(lease.lastError.message, /LOADING/)
    assertHeld(renewer, lease)
    answer(extendReply())
    // Retry after min(interval / 4, time left / 3) = 1250 ms.
    await clock.advanceToAsync(6249)
    assert.deepEqual(callTimes, [5000])
    await clock.advanceAsync(1)
    assert.deepEqual(callTimes, [5000, 6250])
    assert.ok(6250 < LIFETIME - DRIFT)
    assert.equal(lease.lastError, undefined)
    assert.equal(lease.deadline, 6250 + LIFETIME - DRIFT)
    await clock.advanceToAsync(20_000)
    assertHeld(renewer, lease)
  })

  test('extensions failing until the deadline lose the lease as unreachable, with the cause', async () => {
    const { clock, renewer, callTimes, answer } = setup()
    const lease = newLease(clock)
    renewer.add(lease)
    answer(() => Promise.reject(new Error('ECONNREFUSED')))
    let abortedAt: number | undefined
    lease.controller.signal.addEventListener('abort', () => {
      abortedAt = clock.now()
    })
    await clock.advanceToAsync(20_000)
    assert.equal(abortedAt, LIFETIME - DRIFT)
    const err = assertLost(lease, 'unreachable')
    assert.ok(err.cause instanceof BackendError)
    assert.match(err.cause.message, /ECONNREFUSED/)
    assert.ok(callTimes.length >= 4, `retried: ${callTimes.join(', ')}`)
    assert.ok(callTimes.every((t) => t < LIFETIME - DRIFT))
    for (let i = 1; i < callTimes.length; i++) assert.ok(callTimes[i]! - callTimes[i - 1]! >= 5)
  })

  test('at most one extension in flight per lease', async () => {
    const { clock, adapter, renewer, callTimes, answer } = setup()
    answer(adapter.hang())
    const slow = newLease(clock)
    renewer.add(slow)
    await clock.advanceAsync(2000)
    const other = newLease(clock)
    renewer.add(other)
    await clock.advanceToAsync(5000)
    answer(extendReply())
    await clock.advanceToAsync(9000)
    assert.deepEqual(callTimes, [5000, 7000]) // the second call is for `other` only
    assert.deepEqual(
      extendEntries(adapter.calls[1]!).map((e) => e.token),
      [other.token],
    )
    let joined = false
    const now = renewer.extendNow(slow).then(() => {
      joined = true
    })
    await flushMicrotasks()
    assert.equal(adapter.calls.length, 2, 'extendNow joins the call in flight')
    assert.equal(joined, false)
    adapter.hung[0]!.resolve([1])
    await now
    assertHeld(renewer, slow)
    assert.equal(slow.deadline, 5000 + LIFETIME - DRIFT)
    assert.equal(slow.nextDueAt, 10_000)
    await clock.advanceToAsync(10_000)
    assert.equal(callTimes.length, 3)
    assert.ok(callTimes[2]! > 9000 && callTimes[2]! <= 10_000, `extended again at ${callTimes[2]}`)
    assert.deepEqual(
      extendEntries(adapter.calls[2]!).map((e) => e.token),
      [slow.token],
    )
  })

  test('remove() stops extending', async () => {
    const { clock, adapter, renewer } = setup()
    const lease = newLease(clock)
    renewer.add(lease)
    await clock.advanceAsync(1000)
    lease.state = 'released' // what Locker does before remove()
    renewer.remove(lease)
    assert.equal(renewer.size, 0)
    assert.equal(clock.pendingTimers, 0)
    await clock.advanceToAsync(30_000)
    assert.equal(adapter.calls.length, 0)
  })

  test('an extension in flight when a lease is released is ignored', async () => {
    const { clock, adapter, renewer, lost, answer } = setup()
    answer(adapter.hang())
    const lease = newLease(clock)
    renewer.add(lease)
    await clock.advanceToAsync(5000)
    lease.state = 'released'
    renewer.remove(lease)
    adapter.hung[0]!.resolve([0])
    await clock.advanceToAsync(30_000)
    assert.equal(lease.state, 'released')
    assert.equal(lease.controller.signal.aborted, false)
    assert.equal(lost.length, 0)
    assert.equal(adapter.calls.length, 1)
    assert.equal(clock.pendingTimers, 0)
  })

  test('a late success after the deadline does not resurrect the lease', async () => {
    const { clock, adapter, renewer, lost, answer } = setup()
    answer(adapter.hang())
    const lease = newLease(clock)
    renewer.add(lease)
    await clock.advanceToAsync(LIFETIME - DRIFT)
    assertLost(lease, 'unreachable')
    adapter.hung[0]!.resolve([1])
    await clock.advanceToAsync(30_000)
    assertLost(lease, 'unreachable')
    assert.equal(renewer.check(lease), false)
    assert.equal(renewer.size, 0)
    assert.deepEqual(lost, [lease])
    assert.equal(adapter.calls.length, 1)
  })

  test('extendNow extends at once and resolves when confirmed', async () => {
    const { clock, renewer, callTimes } = setup()
    const lease = newLease(clock)
    renewer.add(lease)
    await clock.advanceAsync(1000)
    await renewer.extendNow(lease)
    assert.deepEqual(callTimes, [1000])
    assert.equal(lease.deadline, 1000 + LIFETIME - DRIFT)
    assert.equal(lease.nextDueAt, 6000)
  })

  test('extendNow rejects with the BackendError of a failed extension; the lease stays held', async () => {
    const { clock, renewer, answer } = setup()
    const lease = newLease(clock)
    renewer.add(lease)
    answer(() => Promise.reject(new Error('READONLY You can not write against a read only replica')))
    await assert.rejects(renewer.extendNow(lease), (err: unknown) => {
      assert.ok(err instanceof BackendError)
      assert.equal(err.code, 'ERR_LOCK_BACKEND')
      assert.match(err.message, /READONLY/)
      return true
    })
    assertHeld(renewer, lease)
  })

  test('extendNow rejects with the LockLostError once the lease is lost', async () => {
    const { clock, adapter, renewer, answer } = setup()
    const lease = newLease(clock)
    renewer.add(lease)
    answer(extendReply(() => -1))
    await clock.advanceToAsync(5000)
    const lostError = assertLost(lease, 'stolen')
    answer(extendReply())
    await assert.rejects(renewer.extendNow(lease), (err: unknown) => err === lostError)
    assert.equal(adapter.calls.length, 1, 'nothing sent for a lost lease')

    const other = newLease(clock)
    renewer.add(other)
    answer(extendReply(() => 0))
    await assert.rejects(renewer.extendNow(other), (err: unknown) => {
      assert.ok(err instanceof LockLostError)
      assert.equal(err.code, 'ERR_LOCK_LOST')
      assert.equal(err.reason, 'expired')
      return true
    })
  })

  test('no pending timers when no lease is tracked', async () => {
    const { clock, renewer, answer } = setup()
    assert.equal(clock.pendingTimers, 0)

    const a = newLease(clock)
    renewer.add(a)
    assert.equal(clock.pendingTimers, 1)
    a.state = 'released'
    renewer.remove(a)
    assert.equal(clock.pendingTimers, 0, 'after the last lease was removed')

    const b = newLease(clock)
    renewer.add(b)
    answer(extendReply(() => 0))
    await clock.advanceAsync(5000)
    assertLost(b, 'expired')
    assert.equal(clock.pendingTimers, 0, 'after the last lease was lost by its status')

    const c = newLease(clock)
    renewer.add(c)
    clock.jump(LIFETIME)
    assert.equal(renewer.check(c), false)
    assert.equal(clock.pendingTimers, 0, 'after the last lease was lost by check()')

    renewer.stop()
    renewer.add(newLease(clock))
    assert.equal(clock.pendingTimers, 0, 'after stop()')
  })
})
