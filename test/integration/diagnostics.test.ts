import assert from 'node:assert/strict'
import dc from 'node:diagnostics_channel'
import { after, before, test } from 'node:test'
import {
  type AcquireFailureMessage,
  type AcquireStartMessage,
  type AcquireSuccessMessage,
  type AcquireTraceContext,
  diagnosticsChannels,
  type ExtendMessage,
  Locker,
  type LostMessage,
  type ReleaseMessage,
  type ReleaseTraceContext,
} from '../../src/index.js'
import { describeMatrix } from '../helpers/matrix.js'
import { waitFor } from '../helpers/wait.js'

type Event = { channel: string; message: unknown }

/** Subscribes to every plain channel and both tracing channels; records what they get. */
function recordAll(): { events: Event[]; stop(): void } {
  const events: Event[] = []
  const stops: (() => void)[] = []
  const plain = [
    diagnosticsChannels.acquireStart,
    diagnosticsChannels.acquireSuccess,
    diagnosticsChannels.acquireFailure,
    diagnosticsChannels.extend,
    diagnosticsChannels.lost,
    diagnosticsChannels.release,
  ]
  for (const name of plain) {
    const fn = (message: unknown) => events.push({ channel: name, message })
    dc.subscribe(name, fn)
    stops.push(() => dc.unsubscribe(name, fn))
  }
  for (const name of [diagnosticsChannels.acquireTrace, diagnosticsChannels.releaseTrace]) {
    const trace = dc.tracingChannel(name)
    const record = (phase: string) => (message: unknown) =>
      events.push({ channel: `tracing:${name}:${phase}`, message })
    const handlers = {
      start: record('start'),
      end: record('end'),
      asyncStart: record('asyncStart'),
      asyncEnd: record('asyncEnd'),
      error: record('error'),
    }
    trace.subscribe(handlers)
    stops.push(() => trace.unsubscribe(handlers))
  }
  return {
    events,
    stop: () => {
      for (const s of stops) s()
    },
  }
}

function of<T>(events: Event[], channel: string): T[] {
  return events.filter((e) => e.channel === channel).map((e) => e.message as T)
}

/** No payload may carry an owner token: it is the capability to release the lock. */
function assertNoToken(events: Event[], tokens: string[]): void {
  for (const e of events) {
    const text = JSON.stringify(e.message, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))
    for (const token of tokens) assert.ok(!text.includes(token), `${e.channel} leaks a token: ${text}`)
  }
}

test('channel names are stable', () => {
  assert.deepEqual(diagnosticsChannels, {
    acquireStart: 'async-redis-lock:acquire:start',
    acquireSuccess: 'async-redis-lock:acquire:success',
    acquireFailure: 'async-redis-lock:acquire:failure',
    extend: 'async-redis-lock:extend',
    lost: 'async-redis-lock:lost',
    release: 'async-redis-lock:release',
    acquireTrace: 'async-redis-lock:acquire',
    releaseTrace: 'async-redis-lock:release',
  })
})

describeMatrix('diagnostics_channel events', (ctx) => {
  let recorder: ReturnType<typeof recordAll>
  before(() => {
    recorder = recordAll()
  })
  after(() => recorder.stop())

  test('acquire, contention timeout, extension, loss and release are published without tokens', async () => {
    const events = recorder.events
    events.length = 0
    const a = new Locker(await ctx.client(), { prefix: 'dc:' })
    const b = new Locker(await ctx.client(), { prefix: 'dc:' })
    const lock = await a.acquire('k', { lifetimeMs: 1000, fencing: true })

    const [start] = of<AcquireStartMessage>(events, diagnosticsChannels.acquireStart)
    assert.deepEqual(start, { keys: ['dc:k'], tryOnce: false })
    const [success] = of<AcquireSuccessMessage>(events, diagnosticsChannels.acquireSuccess)
    assert.deepEqual(success?.keys, ['dc:k'])
    assert.equal(success?.fence, lock.fence)
    assert.equal(success?.attempts, 1)
    assert.ok(success !== undefined && success.waitedMs >= 0)
    const traced = of<AcquireTraceContext>(events, `tracing:${diagnosticsChannels.acquireTrace}:asyncEnd`)
    assert.deepEqual(traced[0]?.result, { keys: ['dc:k'], fence: lock.fence })

    await assert.rejects(b.acquire('k', { retryTimeoutMs: 150, retryIntervalMs: 40 }))
    const [failure] = of<AcquireFailureMessage>(events, diagnosticsChannels.acquireFailure)
    assert.equal(failure?.outcome, 'error')
    assert.equal(failure?.code, 'ERR_LOCK_ACQUIRE_TIMEOUT')
    assert.ok(failure !== undefined && failure.attempts >= 2, `attempts ${failure?.attempts}`)
    assert.ok(failure.waitedMs >= 140, `waitedMs ${failure.waitedMs}`)
    assert.equal(of(events, `tracing:${diagnosticsChannels.acquireTrace}:error`).length, 1)

    assert.equal(await b.tryAcquire('k'), null)
    const busy = of<AcquireFailureMessage>(events, diagnosticsChannels.acquireFailure)[1]
    assert.equal(busy?.outcome, 'busy')
    assert.equal(busy?.code, undefined)

    // Extended at half the lifetime.
    await waitFor(() => of(events, diagnosticsChannels.extend).length > 0, { message: 'an extension' })
    const extends_ = of<ExtendMessage>(events, diagnosticsChannels.extend)
    assert.deepEqual(extends_[0], { size: 1, keys: [['dc:k']], ok: [true], error: undefined })

    const other = await a.acquire('other', { lifetimeMs: 1000 })
    await ctx.admin.del('dc:other')
    await waitFor(() => other.signal.aborted, { message: 'the loss of dc:other' })
    assert.deepEqual(of<LostMessage>(events, diagnosticsChannels.lost), [
      { keys: ['dc:other'], reason: 'deleted' },
    ])
    assert.ok(of<ExtendMessage>(events, diagnosticsChannels.extend).some((e) => e.ok.includes(false)))

    assert.equal(await lock.release(), true)
    assert.equal(await other.release(), false)
    // release() of a lost lock still asks Redis, which finds nothing to remove.
    assert.deepEqual(of<ReleaseMessage>(events, diagnosticsChannels.release), [
      { keys: ['dc:k'], removed: true },
      { keys: ['dc:other'], removed: false },
    ])
    const releaseEnds = of<ReleaseTraceContext>(
      events,
      `tracing:${diagnosticsChannels.releaseTrace}:asyncEnd`,
    )
    assert.deepEqual(
      releaseEnds.map((c) => [c.keys, c.result]),
      [
        [['dc:k'], true],
        [['dc:other'], false],
      ],
    )

    const stats = a.stats()
    assert.equal(stats.lost, 1)
    assert.equal(stats.lostByReason.deleted, 1)
    assert.ok(stats.extendCalls >= 1)
    assertNoToken(events, [lock.token, other.token])
    await a.close()
    await b.close()
  })

  test('close() publishes the loss of every held lock with reason closed', async () => {
    const events = recorder.events
    events.length = 0
    const l = new Locker(await ctx.client(), { prefix: 'dc2:' })
    await l.acquire('x')
    await l.close()
    assert.deepEqual(of<LostMessage>(events, diagnosticsChannels.lost), [
      { keys: ['dc2:x'], reason: 'closed' },
    ])
  })
})

describeMatrix('diagnostics_channel without subscribers', (ctx) => {
  test('nothing is published and locking works as usual', async () => {
    for (const name of Object.values(diagnosticsChannels)) {
      assert.equal(dc.hasSubscribers(name), false, name)
    }
    assert.equal(dc.tracingChannel(diagnosticsChannels.acquireTrace).hasSubscribers, false)
    const l = new Locker(await ctx.client(), { prefix: 'dc3:' })
    const lock = await l.acquire('k')
    await waitFor(() => l.stats().extendCalls > 0, { message: 'an extension' })
    assert.equal(await lock.release(), true)
    await l.close()
  })
})
