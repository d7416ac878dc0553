import assert from 'node:assert/strict'
import { afterEach, describe, test } from 'node:test'
import { driftFor, MAX_BATCH } from '../../src/leases.js'
import { EXTEND, EXTEND_UNIFORM } from '../../src/scripts/index.js'
import { extendEntries, extendReply } from '../helpers/fake-adapter.js'
import { flushMicrotasks } from '../helpers/fake-clock.js'
import {
  assertHeld,
  assertLost,
  DRIFT,
  LIFETIME,
  newLease,
  runCleanups,
  setup,
  type TestLease,
} from './renewer-harness.js'

afterEach(runCleanups)

describe('Renewer: scheduling and batching', () => {
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
    // The first call of a script sends its source; later ones use its SHA.
    assert.equal(call?.command, 'eval')
    // One key per lease, one lease length: the compact variant.
    assert.equal(call?.script, EXTEND_UNIFORM.source)
    assert.deepEqual(extendEntries(call!), [{ token: lease.token, lifetimeMs: LIFETIME, keys: lease.keys }])
    assert.equal(lease.deadline, 5000 + LIFETIME - DRIFT)
    assert.equal(lease.nextDueAt, 10_000)
    await clock.advanceToAsync(30_000)
    assert.equal(adapter.calls.length, 6)
    assert.equal(adapter.calls[1]?.command, 'evalsha')
    assert.equal(adapter.calls[1]?.script, EXTEND_UNIFORM.sha)
    assert.equal(renewer.batches, 6)
    assertHeld(renewer, lease)
  })

  test('a Lock is held strongly until its first extension, then only watched for collection', async () => {
    const { clock, renewer } = setup()
    const early = newLease(clock)
    const released = newLease(clock)
    assert.ok(early.unwatched && released.unwatched, 'held strongly at first')
    await clock.advanceAsync(1000)
    renewer.remove(released) // released before its first extension: never registered
    assert.equal(released.unwatched, undefined)
    await clock.advanceToAsync(4999)
    assert.ok(early.unwatched, 'not yet extended')
    await clock.advanceToAsync(5000)
    assert.equal(early.unwatched, undefined, 'handed to the FinalizationRegistry at its first extension')
  })

  test('a batch with a multi-key lease or mixed lease lengths takes the general EXTEND', async () => {
    const { clock, adapter, renewer } = setup()
    const single = newLease(clock)
    const multi = newLease(clock, LIFETIME, ['m1', 'm2'])
    renewer.add(single)
    renewer.add(multi)
    await clock.advanceAsync(5000)
    assert.equal(adapter.calls.length, 1)
    assert.equal(adapter.calls[0]?.script, EXTEND.source)
    assert.deepEqual(
      extendEntries(adapter.calls[0]!).map((e) => e.keys),
      [single.keys, ['m1', 'm2']],
    )
    assertHeld(renewer, multi)
    const other = setup()
    const a = newLease(other.clock, 10_000)
    const b = newLease(other.clock, 10_001)
    other.renewer.add(a)
    other.renewer.add(b)
    await other.clock.advanceAsync(5000)
    assert.equal(other.adapter.calls[0]?.script, EXTEND.source)
    assert.deepEqual(
      extendEntries(other.adapter.calls[0]!).map((e) => e.lifetimeMs),
      [10_000, 10_001],
    )
  })

  test('batches leases that fall due within the window into one call', async () => {
    const { clock, adapter, renewer } = setup()
    const leases: TestLease[] = []
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

  test('status 0 loses only that lease as deleted, -1 as stolen; the rest stay held', async () => {
    const { clock, adapter, renewer, lost, abortedBeforeOnLost, answer } = setup()
    const kept = newLease(clock)
    const expired = newLease(clock)
    const stolen = newLease(clock, LIFETIME, ['m1', 'm2'])
    for (const l of [kept, expired, stolen]) renewer.add(l)
    answer(extendReply((t) => (t === expired.token ? 0 : t === stolen.token ? -1 : 1)))
    await clock.advanceToAsync(5000)
    assert.equal(adapter.calls.length, 1)
    assertHeld(renewer, kept)
    assertLost(expired, 'deleted')
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
    renewer.remove(lease)
    assert.equal(renewer.size, 0)
    await clock.advanceToAsync(30_000)
    assert.equal(adapter.calls.length, 0)
    assert.equal(clock.pendingTimers, 0)
  })

  test('an extension in flight when a lease is released is ignored', async () => {
    const { clock, adapter, renewer, lost, answer } = setup()
    answer(adapter.hang())
    const lease = newLease(clock)
    renewer.add(lease)
    await clock.advanceToAsync(5000)
    renewer.remove(lease)
    adapter.hung[0]!.resolve([0])
    await clock.advanceToAsync(30_000)
    assert.equal(lease.state, 'released')
    assert.equal(lease.signal.aborted, false)
    assert.equal(lost.length, 0)
    assert.equal(adapter.calls.length, 1)
    assert.equal(clock.pendingTimers, 0)
  })

  test('no pending timers when no lease is tracked', async () => {
    const { clock, renewer, answer } = setup()
    assert.equal(clock.pendingTimers, 0)

    const a = newLease(clock)
    renewer.add(a)
    assert.equal(clock.pendingTimers, 1)
    renewer.remove(a)
    // Left to fire once (unref'd), then not re-armed.
    await clock.advanceAsync(5000)
    assert.equal(clock.pendingTimers, 0, 'after the last lease was removed')

    const b = newLease(clock)
    renewer.add(b)
    answer(extendReply(() => 0))
    await clock.advanceAsync(5000)
    assertLost(b, 'deleted')
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
