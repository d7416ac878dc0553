import assert from 'node:assert/strict'
import { afterEach, describe, test } from 'node:test'
import { BackendError, LockLostError } from '../../src/errors.js'
import { driftFor } from '../../src/leases.js'
import { extendReply } from '../helpers/fake-adapter.js'
import { assertHeld, assertLost, DRIFT, LIFETIME, newLease, runCleanups, setup } from './renewer-harness.js'

afterEach(runCleanups)

describe('Renewer: deadlines and loss', () => {
  test('a hung extension loses the lease as unreachable exactly at its deadline', async () => {
    const { clock, adapter, renewer, lost, answer } = setup()
    const lease = newLease(clock)
    renewer.add(lease)
    await clock.advanceToAsync(5000) // confirmed: deadline = 5000 + lifetime - drift
    answer(adapter.hang())
    let abortedAt: number | undefined
    lease.signal.addEventListener('abort', () => {
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
    // Reading the signal's state compares the deadline too: no timer needed.
    assert.equal(lease.signal.aborted, true)
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
    lease.signal.addEventListener('abort', () => {
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
      assert.equal(err.reason, 'deleted')
      return true
    })
  })
})
