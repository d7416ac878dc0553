import assert from 'node:assert/strict'
import { afterEach, describe, test } from 'node:test'
import { SingleNodeBackend as Backend } from '../../src/backends/single-node.js'
import { releaseChannel } from '../../src/internal/keys.js'
import { EXCLUSIVE, SHARED } from '../../src/scripts/index.js'
import { LINGER_MS, Waiters, type WaitOutcome } from '../../src/waiters.js'
import { deferred, FakeAdapter, type FakeSubscriber } from '../helpers/fake-adapter.js'
import { FakeClock, flushMicrotasks } from '../helpers/fake-clock.js'

const SELF = 'self-locker-id'
const OTHER = 'other-locker-id'
/** Not exported by waiters.ts; the behaviour it names is what is tested. */
const SUBSCRIBE_BACKOFF_MS = 5000

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0)) await fn()
})

function setup() {
  const clock = new FakeClock(0)
  const adapter = new FakeAdapter()
  const waiters = new Waiters(new Backend(adapter), clock, SELF)
  cleanups.push(() => waiters.close())
  return { clock, adapter, waiters }
}

/** A wait whose outcome the test can read synchronously once microtasks ran. */
interface Tracked {
  readonly seq: number
  outcome: WaitOutcome | undefined
}

function track(
  waiters: Waiters,
  key: string,
  ms: number,
  seq: number,
  signals: readonly (AbortSignal | undefined)[] = [],
  shared = false,
): Tracked {
  const t: Tracked = { seq, outcome: undefined }
  const mode = shared ? SHARED : EXCLUSIVE
  void waiters.wait(key, ms, seq, signals, Number.POSITIVE_INFINITY, mode).then((o) => {
    t.outcome = o
  })
  return t
}

function outcomes(list: readonly Tracked[]): (WaitOutcome | undefined)[] {
  return list.map((t) => t.outcome)
}

async function subscribed(waiters: Waiters, adapter: FakeAdapter, key: string): Promise<FakeSubscriber> {
  assert.equal(await waiters.subscribe(key, 1000), true)
  const sub = adapter.lastSubscriber
  assert.ok(sub)
  return sub
}

describe('Waiters', () => {
  test('a wait resolves timeout after ms', async () => {
    const { clock, waiters } = setup()
    const w = track(waiters, 'k', 100, waiters.nextSeq())
    assert.equal(waiters.waiting, 1)
    assert.equal(waiters.hasWaiters('k'), true)
    await clock.advanceAsync(99)
    assert.equal(w.outcome, undefined)
    await clock.advanceAsync(1)
    assert.equal(w.outcome, 'timeout')
    assert.equal(waiters.waiting, 0)
    assert.equal(waiters.hasWaiters('k'), false)
  })

  test('notify wakes exactly one waiter, the earliest seq', async () => {
    const { clock, waiters } = setup()
    const seqs = [waiters.nextSeq(), waiters.nextSeq(), waiters.nextSeq()] as const
    // Arrive out of order: the queue is by seq, not by call order.
    const third = track(waiters, 'k', 1000, seqs[2])
    const first = track(waiters, 'k', 1000, seqs[0])
    const second = track(waiters, 'k', 1000, seqs[1])
    waiters.notify('k')
    await flushMicrotasks()
    assert.deepEqual(outcomes([first, second, third]), ['woken', undefined, undefined])
    assert.equal(waiters.waiting, 2)
    assert.equal(waiters.wakeups, 1)
    waiters.notify('k')
    await flushMicrotasks()
    assert.deepEqual(outcomes([first, second, third]), ['woken', 'woken', undefined])
    await clock.advanceAsync(1000)
    assert.equal(third.outcome, 'timeout')
  })

  test('a release wakes the run of shared waiters at the head together, up to the first exclusive one', async () => {
    const { waiters } = setup()
    const seq = () => waiters.nextSeq()
    const r1 = track(waiters, 'k', 1000, seq(), [], true)
    const r2 = track(waiters, 'k', 1000, seq(), [], true)
    const w = track(waiters, 'k', 1000, seq())
    const r3 = track(waiters, 'k', 1000, seq(), [], true)
    waiters.notify('k')
    await flushMicrotasks()
    assert.deepEqual(outcomes([r1, r2, w, r3]), ['woken', 'woken', undefined, undefined])
    assert.equal(waiters.wakeups, 2)
    // The exclusive waiter heads the queue now: the next release wakes it alone.
    waiters.notify('k')
    await flushMicrotasks()
    assert.deepEqual(outcomes([w, r3]), ['woken', undefined])
    // wakeOne (passing on a wake-up) stays one waiter, shared or not.
    const r4 = track(waiters, 'k', 1000, seq(), [], true)
    waiters.wakeOne('k')
    await flushMicrotasks()
    assert.deepEqual(outcomes([r3, r4]), ['woken', undefined])
  })

  test('notify on a key nobody waits for does nothing', () => {
    const { waiters } = setup()
    waiters.notify('nobody')
    waiters.wakeOne('nobody')
    assert.equal(waiters.wakeups, 0)
    assert.equal(waiters.generation('nobody'), 0)
  })

  test('each notify bumps the generation of the key', () => {
    const { waiters } = setup()
    track(waiters, 'k', 1000, waiters.nextSeq())
    assert.equal(waiters.generation('k'), 0)
    waiters.notify('k')
    assert.equal(waiters.generation('k'), 1)
    waiters.notify('k') // nobody left to wake: still a release seen
    assert.equal(waiters.generation('k'), 2)
    waiters.wakeOne('k') // passing a wake-up on is not a release
    assert.equal(waiters.generation('k'), 2)
    assert.equal(waiters.generation('other'), 0)
  })

  test('a release message from another Locker wakes one waiter', async () => {
    const { clock, adapter, waiters } = setup()
    const sub = await subscribed(waiters, adapter, 'k')
    assert.deepEqual([...sub.channels], [releaseChannel('k')])
    const a = track(waiters, 'k', 1000, waiters.nextSeq())
    const b = track(waiters, 'k', 1000, waiters.nextSeq())
    const other = track(waiters, 'j', 1000, waiters.nextSeq())
    sub.emit(releaseChannel('k'), OTHER)
    await flushMicrotasks()
    assert.deepEqual(outcomes([a, b, other]), ['woken', undefined, undefined])
    assert.equal(waiters.generation('k'), 1)
    sub.emit('unrelated:channel', OTHER)
    await clock.advanceAsync(999)
    assert.deepEqual(outcomes([a, b, other]), ['woken', undefined, undefined])
  })

  test('a release message carrying our own id is ignored', async () => {
    const { adapter, waiters } = setup()
    const sub = await subscribed(waiters, adapter, 'k')
    const a = track(waiters, 'k', 1000, waiters.nextSeq())
    sub.emit(releaseChannel('k'), SELF)
    await flushMicrotasks()
    assert.equal(a.outcome, undefined)
    assert.equal(waiters.generation('k'), 0)
    assert.equal(waiters.wakeups, 0)
  })

  test('a semaphore release naming other Lockers wakes nobody here; one naming us wakes one waiter, or none while an attempt of ours is in flight', async () => {
    const { adapter, waiters } = setup()
    const sub = await subscribed(waiters, adapter, 'k')
    const a = track(waiters, 'k', 1000, waiters.nextSeq())
    const b = track(waiters, 'k', 1000, waiters.nextSeq())
    sub.emit(releaseChannel('k'), `${OTHER} 2000 third-locker-id`)
    await flushMicrotasks()
    assert.deepEqual(outcomes([a, b]), [undefined, undefined])
    assert.equal(waiters.generation('k'), 0, 'a release for others is not one our attempts raced')
    // Named while an attempt is in flight: that attempt is this Locker's one turn.
    waiters.beginAttempt('k')
    sub.emit(releaseChannel('k'), `${OTHER} 2000 ${SELF}`)
    await flushMicrotasks()
    assert.deepEqual(outcomes([a, b]), [undefined, undefined])
    assert.equal(waiters.generation('k'), 1, 'the attempt in flight learns it raced a release')
    waiters.endAttempt('k')
    sub.emit(releaseChannel('k'), `${OTHER} 2000 third-locker-id ${SELF}`)
    await flushMicrotasks()
    assert.deepEqual(outcomes([a, b]), ['woken', undefined])
    assert.equal(waiters.wakeups, 1)
  })

  test('named while an attempt is in flight: if that attempt took no turn for it (admitted earlier, gave up), the acquisition hands the turn to the next waiter', async () => {
    const { adapter, waiters } = setup()
    const sub = await subscribed(waiters, adapter, 'k')
    const a = track(waiters, 'k', 5000, waiters.nextSeq())
    waiters.beginAttempt('k')
    sub.emit(releaseChannel('k'), `${OTHER} 2000 ${SELF}`)
    await flushMicrotasks()
    assert.equal(a.outcome, undefined)
    waiters.endAttempt('k')
    waiters.handOnNamed('k')
    await flushMicrotasks()
    assert.equal(a.outcome, 'woken', 'the turn was dropped')
    // A later attempt (sent after that release) takes the turn itself: nothing to hand on.
    const b = track(waiters, 'k', 5000, waiters.nextSeq())
    waiters.beginAttempt('k')
    sub.emit(releaseChannel('k'), `${OTHER} 2000 ${SELF}`)
    await flushMicrotasks()
    waiters.endAttempt('k')
    waiters.beginAttempt('k')
    waiters.endAttempt('k')
    waiters.handOnNamed('k')
    await flushMicrotasks()
    assert.equal(b.outcome, undefined, 'a turn handed on twice')
  })

  test('a release naming other Lockers brings the head waiter’s attempt forward to when their entries run out, never back', async () => {
    const { clock, adapter, waiters } = setup()
    const sub = await subscribed(waiters, adapter, 'k')
    const a = track(waiters, 'k', 5000, waiters.nextSeq())
    const b = track(waiters, 'k', 5000, waiters.nextSeq())
    sub.emit(releaseChannel('k'), `${OTHER} 600 third-locker-id`)
    await flushMicrotasks()
    await clock.advanceAsync(590)
    assert.deepEqual(outcomes([a, b]), [undefined, undefined], 'attempted before the named entry ran out')
    await clock.advanceAsync(30)
    assert.deepEqual(
      outcomes([a, b]),
      ['timeout', undefined],
      'waited past the named entry for its own bound',
    )
    // A later end does not push the new head's bound back.
    sub.emit(releaseChannel('k'), `${OTHER} 60000 third-locker-id`)
    await clock.advanceAsync(5000)
    assert.equal(b.outcome, 'timeout')
  })

  test('a semaphore waiter offered a permit (reserved): wake-ups pass it over, its bound waits for the answer; handed over it resolves granted, given up it cannot be', async () => {
    const { clock, waiters } = setup()
    const sem = { kind: 'semaphore', limit: 2 } as const
    const slot = () => ({ lifetimeMs: 1000, queueTtlMs: 2000, grant: undefined, held: false })
    const results: (WaitOutcome | undefined)[] = [undefined, undefined, undefined]
    const controller = new AbortController()
    const slots = [slot(), slot(), slot()]
    for (const i of [0, 1, 2]) {
      void waiters
        .wait('k', 100, waiters.nextSeq(), [], Number.POSITIVE_INFINITY, sem, slots[i])
        .then((o) => {
          results[i] = o
        })
    }
    assert.equal(waiters.reserveSuccessor('k', 'lock'), undefined, 'another family is never offered a permit')
    const first = waiters.reserveSuccessor('k', 'semaphore:2')
    assert.ok(first)
    assert.equal(first.more, true)
    const second = waiters.reserveSuccessor('k', 'semaphore:2')
    assert.ok(second && second.waiter !== first.waiter, 'a second release offers the next waiter')
    waiters.wakeOne('k') // a release message: the third waiter, the first not offered a permit
    await flushMicrotasks()
    assert.deepEqual(results, [undefined, undefined, 'woken'])
    await clock.advanceAsync(150) // the head's bound runs out while its offer is open
    assert.deepEqual(results, [undefined, undefined, 'woken'])
    assert.equal(waiters.handOver('k', first.waiter, 'arl1.t', 5), true)
    await flushMicrotasks()
    assert.equal(results[0], 'granted')
    assert.deepEqual(slots[0]?.grant, { token: 'arl1.t', sentAt: 5 })
    await clock.advanceAsync(150) // now the head, still offered a permit: its bound waits
    assert.equal(results[1], undefined)
    waiters.unreserve('k', second.waiter) // not handed over: the bound kept meanwhile takes effect
    await flushMicrotasks()
    assert.equal(results[1], 'timeout')
    // A waiter that gave up while offered a permit cannot take it: the caller gives it back.
    let late: WaitOutcome | undefined
    void waiters
      .wait('k', 1000, waiters.nextSeq(), [controller.signal], Number.POSITIVE_INFINITY, sem, slot())
      .then((o) => {
        late = o
      })
    const offer = waiters.reserveSuccessor('k', 'semaphore:2')
    assert.ok(offer)
    controller.abort()
    await flushMicrotasks()
    assert.equal(late, 'aborted', 'an abort ends the wait at once, offer or not')
    assert.equal(waiters.handOver('k', offer.waiter, 'arl1.u', 6), false)
    // An exclusive waiter (no hand-over slot) is never offered one.
    track(waiters, 'x', 1000, waiters.nextSeq())
    assert.equal(waiters.reserveSuccessor('x', 'lock'), undefined)
  })

  test('a wake-up kept by a waiter offered a permit goes to the next waiter when that one gives up and the offer fails', async () => {
    const { waiters } = setup()
    const sem = { kind: 'semaphore', limit: 1 } as const
    const controller = new AbortController()
    let first: WaitOutcome | undefined
    const slot = { lifetimeMs: 1000, queueTtlMs: 2000, grant: undefined, held: false }
    void waiters
      .wait('k', 5000, waiters.nextSeq(), [controller.signal], Number.POSITIVE_INFINITY, sem, slot)
      .then((o) => {
        first = o
      })
    const offer = waiters.reserveSuccessor('k', 'semaphore:1')
    assert.ok(offer)
    assert.equal(offer.more, false)
    waiters.notify('k') // nobody else waits: the offered waiter keeps it
    const second = track(waiters, 'k', 5000, waiters.nextSeq())
    controller.abort()
    await flushMicrotasks()
    assert.equal(first, 'aborted')
    waiters.unreserve('k', offer.waiter) // the release did not hand over
    await flushMicrotasks()
    assert.equal(second.outcome, 'woken', 'the kept wake-up was lost')
  })

  test('an abort resolves aborted and removes the waiter', async () => {
    const { clock, waiters } = setup()
    const ac = new AbortController()
    const other = new AbortController()
    const a = track(waiters, 'k', 1000, waiters.nextSeq(), [undefined, ac.signal, other.signal])
    const b = track(waiters, 'k', 1000, waiters.nextSeq())
    ac.abort()
    await flushMicrotasks()
    assert.deepEqual(outcomes([a, b]), ['aborted', undefined])
    assert.equal(waiters.waiting, 1)
    waiters.notify('k')
    await flushMicrotasks()
    assert.equal(b.outcome, 'woken', 'the aborted waiter no longer holds the head of the queue')
    other.abort() // its listener was removed: nothing happens
    await clock.advanceAsync(LINGER_MS)
    assert.deepEqual(outcomes([a, b]), ['aborted', 'woken'])
    assert.equal(clock.pendingTimers, 0, 'the wait timers were cleared')
  })

  test('an already aborted signal resolves aborted at once and sets no timer', async () => {
    const { clock, waiters } = setup()
    const a = track(waiters, 'k', 1000, waiters.nextSeq(), [AbortSignal.abort()])
    await flushMicrotasks()
    assert.equal(a.outcome, 'aborted')
    assert.equal(waiters.waiting, 0)
    assert.equal(clock.pendingTimers, 1) // only the idle-key linger
  })

  test('a waiter re-inserted with an older seq goes to the front', async () => {
    const { waiters } = setup()
    const seq = waiters.nextSeq()
    const first = track(waiters, 'k', 1000, seq)
    waiters.notify('k')
    await flushMicrotasks()
    assert.equal(first.outcome, 'woken')
    // Newcomers queue up while the woken one tries (and fails) to acquire.
    const b = track(waiters, 'k', 1000, waiters.nextSeq())
    const c = track(waiters, 'k', 1000, waiters.nextSeq())
    const again = track(waiters, 'k', 1000, seq)
    waiters.notify('k')
    await flushMicrotasks()
    assert.deepEqual(outcomes([again, b, c]), ['woken', undefined, undefined])
  })

  test('a reconnect wakes one waiter per key', async () => {
    const { adapter, waiters } = setup()
    const sub = await subscribed(waiters, adapter, 'k')
    assert.equal(await waiters.subscribe('j', 1000), true)
    assert.equal(adapter.subscribers.length, 1, 'one subscriber connection for all keys')
    const k1 = track(waiters, 'k', 1000, waiters.nextSeq())
    const k2 = track(waiters, 'k', 1000, waiters.nextSeq())
    const j1 = track(waiters, 'j', 1000, waiters.nextSeq())
    const j2 = track(waiters, 'j', 1000, waiters.nextSeq())
    sub.reconnect()
    await flushMicrotasks()
    assert.deepEqual(outcomes([k1, k2, j1, j2]), ['woken', undefined, 'woken', undefined])
    assert.equal(waiters.generation('k'), 1)
    assert.equal(waiters.generation('j'), 1)
  })

  test('subscribe resolves true once active, and is not repeated', async () => {
    const { adapter, waiters } = setup()
    assert.equal(waiters.isSubscribed('k'), false)
    assert.equal(adapter.subscribers.length, 0, 'no connection before it is needed')
    const sub = await subscribed(waiters, adapter, 'k')
    assert.equal(waiters.isSubscribed('k'), true)
    assert.equal(await waiters.subscribe('k', 1000), true)
    assert.deepEqual(sub.log, [{ op: 'subscribe', channel: releaseChannel('k') }])
  })

  test('concurrent subscribes share one SUBSCRIBE', async () => {
    const { adapter, waiters } = setup()
    const gate = deferred<void>()
    adapter.subscribeHandler = () => gate.promise
    const a = waiters.subscribe('k', 1000)
    const b = waiters.subscribe('k', 1000)
    gate.resolve()
    assert.deepEqual(await Promise.all([a, b]), [true, true])
    assert.equal(adapter.lastSubscriber?.subscribeCalls, 1)
  })

  test('subscribe resolves false on failure and does not retry within the backoff', async () => {
    const { clock, adapter, waiters } = setup()
    let fail = true
    adapter.subscribeHandler = () => {
      if (fail) throw new Error('ERR max number of clients reached')
    }
    assert.equal(await waiters.subscribe('k', 1000), false)
    assert.equal(waiters.isSubscribed('k'), false)
    const sub = adapter.lastSubscriber!
    assert.equal(sub.subscribeCalls, 1)
    // As in acquire: after a failed subscribe the caller waits on its timer.
    const w = track(waiters, 'k', 2 * SUBSCRIBE_BACKOFF_MS, waiters.nextSeq())
    fail = false
    await clock.advanceAsync(SUBSCRIBE_BACKOFF_MS - 1)
    assert.equal(await waiters.subscribe('k', 1000), false)
    assert.equal(sub.subscribeCalls, 1, 'no SUBSCRIBE within the backoff')
    await clock.advanceAsync(1)
    assert.equal(await waiters.subscribe('k', 1000), true)
    assert.equal(adapter.subscribers.length, 1)
    assert.equal(sub.subscribeCalls, 2)
    assert.equal(waiters.isSubscribed('k'), true)
    assert.equal(w.outcome, undefined)
  })

  test('subscribe resolves false when SUBSCRIBE takes longer than timeoutMs', async () => {
    const { clock, adapter, waiters } = setup()
    const gate = deferred<void>()
    adapter.subscribeHandler = () => gate.promise
    let result: boolean | undefined
    void waiters.subscribe('k', 100).then((ok) => {
      result = ok
    })
    await clock.advanceAsync(99)
    assert.equal(result, undefined)
    await clock.advanceAsync(1)
    assert.equal(result, false)
    assert.equal(waiters.isSubscribed('k'), false)
    // The subscription may still complete later; it is then used.
    gate.resolve()
    await flushMicrotasks()
    assert.equal(waiters.isSubscribed('k'), true)
    assert.equal(adapter.lastSubscriber?.subscribeCalls, 1)
  })

  test('a second subscribe joining a hung SUBSCRIBE is bounded by its own timeout', async () => {
    const { clock, adapter, waiters } = setup()
    adapter.subscribeHandler = () => new Promise<void>(() => {})
    const results: boolean[] = []
    void waiters.subscribe('k', 100).then((ok) => results.push(ok))
    await clock.advanceAsync(50)
    void waiters.subscribe('k', 100).then((ok) => results.push(ok))
    await clock.advanceAsync(50)
    assert.deepEqual(results, [false])
    await clock.advanceAsync(50)
    assert.deepEqual(results, [false, false])
    assert.equal(adapter.lastSubscriber?.subscribeCalls, 1)
  })

  test('an idle key is unsubscribed after LINGER_MS, then the subscriber is closed', async () => {
    const { clock, adapter, waiters } = setup()
    const sub = await subscribed(waiters, adapter, 'k')
    const w = track(waiters, 'k', 100, waiters.nextSeq())
    await clock.advanceAsync(100)
    assert.equal(w.outcome, 'timeout')
    await clock.advanceAsync(LINGER_MS - 1)
    assert.equal(sub.channels.size, 1)
    assert.equal(sub.closed, false)
    assert.equal(waiters.isSubscribed('k'), true)
    await clock.advanceAsync(1)
    assert.deepEqual(sub.log.at(-1), { op: 'unsubscribe', channel: releaseChannel('k') })
    assert.equal(sub.channels.size, 0)
    assert.equal(sub.closed, true)
    assert.equal(waiters.isSubscribed('k'), false)
    assert.equal(clock.pendingTimers, 0)
    // The next need opens a new connection.
    assert.equal(await waiters.subscribe('k', 1000), true)
    assert.equal(adapter.subscribers.length, 2)
  })

  test('a new wait during the linger keeps the subscription', async () => {
    const { clock, adapter, waiters } = setup()
    const sub = await subscribed(waiters, adapter, 'k')
    track(waiters, 'k', 100, waiters.nextSeq())
    await clock.advanceAsync(100 + LINGER_MS - 1)
    const w = track(waiters, 'k', 5000, waiters.nextSeq())
    await clock.advanceAsync(LINGER_MS)
    assert.equal(sub.channels.size, 1)
    assert.equal(sub.closed, false)
    sub.emit(releaseChannel('k'), OTHER)
    await flushMicrotasks()
    assert.equal(w.outcome, 'woken')
  })

  test('the subscriber stays open while another key still has waiters', async () => {
    const { clock, adapter, waiters } = setup()
    const sub = await subscribed(waiters, adapter, 'k')
    assert.equal(await waiters.subscribe('j', 1000), true)
    track(waiters, 'k', 100, waiters.nextSeq())
    const j = track(waiters, 'j', 10 * LINGER_MS, waiters.nextSeq())
    await clock.advanceAsync(100 + LINGER_MS)
    assert.deepEqual([...sub.channels], [releaseChannel('j')])
    assert.equal(sub.closed, false)
    sub.emit(releaseChannel('j'), OTHER)
    await flushMicrotasks()
    assert.equal(j.outcome, 'woken')
    await clock.advanceAsync(LINGER_MS)
    assert.equal(sub.closed, true)
  })

  test('close() aborts every waiter, closes the subscriber and leaves no timers', async () => {
    const { clock, adapter, waiters } = setup()
    const sub = await subscribed(waiters, adapter, 'k')
    const a = track(waiters, 'k', 1000, waiters.nextSeq())
    const b = track(waiters, 'j', 1000, waiters.nextSeq())
    await waiters.close()
    await flushMicrotasks()
    assert.deepEqual(outcomes([a, b]), ['aborted', 'aborted'])
    assert.equal(sub.closed, true)
    assert.equal(waiters.waiting, 0)
    assert.equal(clock.pendingTimers, 0)
    assert.equal(await waiters.subscribe('k', 1000), false, 'no new subscription once closed')
    assert.equal(adapter.subscribers.length, 1)
    // A wait that starts after close (an acquire between two attempts) ends at once.
    const late = track(waiters, 'k', 1000, waiters.nextSeq())
    await flushMicrotasks()
    assert.deepEqual(outcomes([late]), ['aborted'])
    assert.equal(clock.pendingTimers, 0)
  })

  test('attempt counts: a key is busy exactly while an attempt on it is in flight, across the batched cleanup of idle keys', () => {
    const { waiters } = setup()
    waiters.beginAttempt('a')
    waiters.beginAttempt('a')
    // Far more keys than are kept at 0 before they are dropped together (256).
    for (let i = 0; i < 1000; i++) {
      waiters.beginAttempt(`k${i}`)
      assert.equal(waiters.isBusy(`k${i}`), true)
      waiters.endAttempt(`k${i}`)
      assert.equal(waiters.isBusy(`k${i}`), false)
    }
    assert.equal(waiters.isBusy('a'), true, 'two attempts in flight survive the cleanups')
    waiters.endAttempt('a')
    assert.equal(waiters.isBusy('a'), true, 'one attempt still in flight')
    // A key that went idle and is attempted again counts from 0.
    waiters.beginAttempt('k3')
    assert.equal(waiters.isBusy('k3'), true)
    waiters.endAttempt('a')
    waiters.endAttempt('a') // one end too many is ignored
    assert.equal(waiters.isBusy('a'), false)
    for (let i = 0; i < 600; i++) {
      waiters.beginAttempt(`m${i}`)
      waiters.endAttempt(`m${i}`)
    }
    assert.equal(
      waiters.isBusy('k3'),
      true,
      'an attempt begun again after its key went idle is still counted',
    )
    waiters.beginAttempt('a')
    assert.equal(waiters.isBusy('a'), true, 'an extra end never makes a later attempt invisible')
  })
})
