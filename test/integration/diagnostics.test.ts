import assert from 'node:assert/strict'
import dc from 'node:diagnostics_channel'
import { after, before, test } from 'node:test'
import util from 'node:util'
import { RequestError } from '@valkey/valkey-glide'
import { ReplyError } from 'ioredis'
import { ErrorReply } from 'redis'
import { GlideAdapter } from '../../src/adapters/glide.js'
import { IoRedisAdapter } from '../../src/adapters/ioredis.js'
import { NodeRedisAdapter } from '../../src/adapters/node-redis.js'
import {
  type AcquireFailureMessage,
  type AcquireStartMessage,
  type AcquireSuccessMessage,
  type AcquireTraceContext,
  BackendError,
  diagnosticsChannels,
  type ExtendMessage,
  LockError,
  Locker,
  type LostMessage,
  type ReleaseMessage,
  type ReleaseTraceContext,
} from '../../src/index.js'
import { holdersKey } from '../../src/internal/keys.js'
import { type ClientKind, describeMatrix, type MatrixContext } from '../helpers/matrix.js'
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
    assert.deepEqual(start, { keys: ['dc:k'], kind: 'exclusive', limit: null, tryOnce: false })
    const [success] = of<AcquireSuccessMessage>(events, diagnosticsChannels.acquireSuccess)
    assert.deepEqual(success?.keys, ['dc:k'])
    assert.equal(success?.fence, lock.fence)
    assert.equal(success?.attempts, 1)
    assert.ok(success !== undefined && success.waitedMs >= 0)
    const traced = of<AcquireTraceContext>(events, `tracing:${diagnosticsChannels.acquireTrace}:asyncEnd`)
    assert.deepEqual(traced[0]?.result, { keys: ['dc:k'], kind: 'exclusive', limit: null, fence: lock.fence })

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
    assert.deepEqual(extends_[0], {
      size: 1,
      keys: [['dc:k']],
      kinds: ['exclusive'],
      limits: [null],
      ok: [true],
      error: undefined,
    })

    const other = await a.acquire('other', { lifetimeMs: 1000 })
    await ctx.admin.del('dc:other')
    await waitFor(() => other.signal.aborted, { message: 'the loss of dc:other' })
    assert.deepEqual(of<LostMessage>(events, diagnosticsChannels.lost), [
      { keys: ['dc:other'], kind: 'exclusive', limit: null, reason: 'deleted' },
    ])
    assert.ok(of<ExtendMessage>(events, diagnosticsChannels.extend).some((e) => e.ok.includes(false)))

    assert.equal(await lock.release(), true)
    assert.equal(await other.release(), false)
    // release() of a lost lock still asks Redis, which finds nothing to remove.
    assert.deepEqual(of<ReleaseMessage>(events, diagnosticsChannels.release), [
      { keys: ['dc:k'], kind: 'exclusive', limit: null, removed: true },
      { keys: ['dc:other'], kind: 'exclusive', limit: null, removed: false },
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
      { keys: ['dc2:x'], kind: 'exclusive', limit: null, reason: 'closed' },
    ])
  })

  test('shared and semaphore acquisitions: every payload carries the kind and the limit, no token', async () => {
    const events = recorder.events
    events.length = 0
    const a = new Locker(await ctx.client(), { prefix: 'dck:' })
    const b = new Locker(await ctx.client(), { prefix: 'dck:' })
    const kindOf = (m: unknown) => {
      const { keys, kind, limit } = m as { keys: readonly string[]; kind: unknown; limit: unknown }
      return { keys, kind, limit }
    }
    const SHARED = { keys: ['dck:doc'], kind: 'shared', limit: null }
    const SEM = { keys: ['dck:jobs'], kind: 'semaphore', limit: 2 }

    const reader = await a.acquire('doc', { shared: true, lifetimeMs: 1000 })
    const p1 = await a.acquire('jobs', { limit: 2, lifetimeMs: 1000 })
    const p2 = await b.acquire('jobs', { limit: 2, lifetimeMs: 1000, fencing: true })
    assert.equal(await b.tryAcquire('jobs', { limit: 2 }), null)
    await assert.rejects(b.acquire('jobs', { limit: 2, retryTimeoutMs: 150, retryIntervalMs: 40 }))

    assert.deepEqual(of(events, diagnosticsChannels.acquireStart).map(kindOf), [SHARED, SEM, SEM, SEM, SEM])
    assert.deepEqual(of(events, diagnosticsChannels.acquireSuccess).map(kindOf), [SHARED, SEM, SEM])
    const failures = of<AcquireFailureMessage>(events, diagnosticsChannels.acquireFailure)
    assert.deepEqual(failures.map(kindOf), [SEM, SEM])
    assert.deepEqual(
      failures.map((f) => f.outcome),
      ['busy', 'error'],
    )
    const traceStarts = of(events, `tracing:${diagnosticsChannels.acquireTrace}:start`)
    assert.deepEqual(traceStarts.map(kindOf), [SHARED, SEM, SEM, SEM, SEM])
    const traceEnds = of<AcquireTraceContext>(events, `tracing:${diagnosticsChannels.acquireTrace}:asyncEnd`)
    assert.deepEqual(
      traceEnds.map((c) => c.result && kindOf(c.result)),
      // tryAcquire found the permits taken (null); the timed-out acquisition has no result.
      [SHARED, SEM, SEM, null, undefined],
    )

    // Extended at half the lifetime, each lease with its kind.
    await waitFor(
      () => {
        const all = of<ExtendMessage>(events, diagnosticsChannels.extend)
        const kinds = all.flatMap((e) => e.kinds)
        return kinds.includes('shared') && kinds.includes('semaphore')
      },
      { message: 'extensions of the shared hold and the permits' },
    )
    for (const e of of<ExtendMessage>(events, diagnosticsChannels.extend)) {
      assert.equal(e.kinds.length, e.size)
      assert.equal(e.limits.length, e.size)
      for (const [i, keys] of e.keys.entries()) {
        const expected = keys[0] === 'dck:doc' ? SHARED : SEM
        assert.deepEqual({ keys, kind: e.kinds[i], limit: e.limits[i] }, expected)
      }
    }

    // A permit whose holders set is deleted is lost.
    await ctx.admin.del('dck:jobs', holdersKey('dck:jobs'))
    await waitFor(() => p1.signal.aborted && p2.signal.aborted, { message: 'the loss of both permits' })
    const lost = of<LostMessage>(events, diagnosticsChannels.lost)
    assert.deepEqual(lost.map(kindOf), [SEM, SEM])

    assert.equal(await reader.release(), true)
    assert.equal(await p1.release(), false)
    const released = of<ReleaseMessage>(events, diagnosticsChannels.release)
    assert.deepEqual(
      released.map((m) => ({ ...kindOf(m), removed: m.removed })),
      [
        { ...SHARED, removed: true },
        { ...SEM, removed: false },
      ],
    )
    const releaseTraces = of(events, `tracing:${diagnosticsChannels.releaseTrace}:start`)
    assert.deepEqual(releaseTraces.map(kindOf), [SHARED, SEM])
    assertNoToken(events, [reader.token, p1.token, p2.token])
    await a.close()
    await b.close()
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

const PHASES = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'] as const

/**
 * Subscribes to every name in `diagnosticsChannels` and to the five tracing
 * sub-channels (`tracing:<name>:start` ...) of each, tracing or not: whatever the
 * library publishes anywhere under those names is recorded.
 */
function recordEverything(): { events: Event[]; stop(): void } {
  const events: Event[] = []
  const names = new Set<string>()
  for (const name of Object.values(diagnosticsChannels)) {
    names.add(name)
    for (const phase of PHASES) names.add(`tracing:${name}:${phase}`)
  }
  const stops: (() => void)[] = []
  for (const name of names) {
    const fn = (message: unknown) => events.push({ channel: name, message })
    dc.subscribe(name, fn)
    stops.push(() => dc.unsubscribe(name, fn))
  }
  return {
    events,
    stop: () => {
      for (const s of stops) s()
    },
  }
}

/**
 * A token or a Locker's publisher id: 16 random bytes in base64url, after an optional
 * format prefix (`arl1.`), with an optional waiting mark.
 */
const TOKEN_SHAPE = /^(?:[a-z0-9]+\.)?([A-Za-z0-9_-]{22})!?$/

/**
 * Records every token the adapters send (acquisitions that fail included, whose
 * tokens no Lock shows): each token-shaped argument of EVALSHA, EVAL and SET NX.
 * Kept are the random parts: a payload must not carry even a token cut short of its prefix.
 */
function recordSentTokens(): { tokens: Set<string>; stop(): void } {
  const tokens = new Set<string>()
  const restores: (() => void)[] = []
  for (const proto of [IoRedisAdapter.prototype, NodeRedisAdapter.prototype, GlideAdapter.prototype]) {
    const methods = proto as unknown as Record<string, (...args: unknown[]) => unknown>
    for (const name of ['evalsha', 'eval', 'setNx']) {
      const original = methods[name] as (...args: unknown[]) => unknown
      methods[name] = function (this: unknown, ...args: unknown[]) {
        for (const arg of args.flat()) {
          const random = typeof arg === 'string' ? TOKEN_SHAPE.exec(arg)?.[1] : undefined
          if (random !== undefined) tokens.add(random)
        }
        return original.apply(this, args)
      }
      restores.push(() => {
        methods[name] = original
      })
    }
  }
  return {
    tokens,
    stop: () => {
      for (const r of restores) r()
    },
  }
}

/**
 * Everything reachable from `value`, as text: util.inspect with hidden properties and
 * getters at any depth, plus a walk of every own property (hidden and symbol-keyed
 * ones included) and of every error's message, stack, `cause` chain and
 * AggregateError `errors`.
 */
function deepText(value: unknown): string {
  const parts = [
    util.inspect(value, {
      depth: Number.POSITIVE_INFINITY,
      showHidden: true,
      getters: true,
      maxArrayLength: Number.POSITIVE_INFINITY,
      maxStringLength: Number.POSITIVE_INFINITY,
    }),
  ]
  const seen = new Set<object>()
  const walk = (v: unknown): void => {
    if (typeof v === 'string') parts.push(v)
    else if (typeof v !== 'object' || v === null) parts.push(String(v))
    else if (!seen.has(v)) {
      seen.add(v)
      for (const key of Reflect.ownKeys(v)) {
        let child: unknown
        try {
          child = (v as Record<PropertyKey, unknown>)[key]
        } catch {
          continue
        }
        if (typeof child !== 'function') walk(child)
      }
      if (v instanceof Error) {
        walk(v.message)
        walk(v.stack)
        walk(v.cause)
        if (v instanceof AggregateError) walk(v.errors)
      }
    }
  }
  walk(value)
  return parts.join('\n')
}

function assertTokenFree(what: string, value: unknown, tokens: ReadonlySet<string>): void {
  const texts = [deepText(value), util.inspect(value, { depth: Number.POSITIVE_INFINITY })]
  for (const text of texts) {
    for (const token of tokens) {
      assert.ok(!text.includes(token), `${what} carries the token ${token}:\n${text}`)
    }
  }
}

/** The client library's error a BackendError wraps (down its `cause` chain); fails unless there is one. */
function clientErrorOf(what: string, err: unknown, kind: ClientKind, message: RegExp): Error {
  assert.ok(err instanceof BackendError, `${what}: expected a BackendError, got ${util.inspect(err)}`)
  let cause: unknown = err.cause
  while (cause instanceof LockError) cause = cause.cause
  assert.ok(cause instanceof Error, `${what}: no client error as cause: ${util.inspect(err)}`)
  assert.match(cause.message, message, what)
  // The client's class survives the sanitizing: instanceof on the cause still works.
  const Class = { ioredis: ReplyError, 'node-redis': ErrorReply, 'valkey-glide': RequestError }[kind]
  assert.ok(cause instanceof Class, `${what}: the cause is no longer a ${Class.name}: ${util.inspect(cause)}`)
  return cause
}

/** The errors published on the channels that carry them. */
function publishedErrors(events: Event[]): { channel: string; error: unknown }[] {
  const out: { channel: string; error: unknown }[] = []
  for (const { channel, message } of events) {
    const error = (message as { error?: unknown } | null)?.error
    if (error !== undefined) out.push({ channel, error })
  }
  return out
}

function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => assert.fail(`expected a rejection, got ${util.inspect(v)}`),
    (err: unknown) => err,
  )
}

interface LeakProbe {
  readonly events: Event[]
  readonly tokens: Set<string>
}

/** Every recorded payload and every given error is free of every token sent. */
function assertNothingLeaks(probe: LeakProbe, thrown: Record<string, unknown>, mustHold: string[]): void {
  for (const token of mustHold) {
    assert.ok(probe.tokens.has(token.slice(-22)), `the recorder saw the token ${token} sent`)
  }
  for (const e of probe.events) assertTokenFree(e.channel, e.message, probe.tokens)
  for (const [what, err] of Object.entries(thrown)) assertTokenFree(what, err, probe.tokens)
}

/** Records payloads and sent tokens from this describe block's `before` to its `after`. */
function leakProbe(): LeakProbe {
  let recorder: ReturnType<typeof recordEverything> | undefined
  let sent: ReturnType<typeof recordSentTokens> | undefined
  before(() => {
    recorder = recordEverything()
    sent = recordSentTokens()
  })
  after(() => {
    recorder?.stop()
    sent?.stop()
  })
  return {
    get events() {
      return recorder?.events ?? []
    },
    get tokens() {
      return sent?.tokens ?? new Set<string>()
    },
  }
}

const EXTEND_ERRORS = diagnosticsChannels.extend
const ACQUIRE_FAILURE = diagnosticsChannels.acquireFailure
const ACQUIRE_TRACE_ERROR = `tracing:${diagnosticsChannels.acquireTrace}:error`
const RELEASE_TRACE_ERROR = `tracing:${diagnosticsChannels.releaseTrace}:error`

/** Client errors reached the acquire, extend and release payloads (so the test can fail). */
function assertClientErrorsPublished(probe: LeakProbe, ctx: MatrixContext, message: RegExp): void {
  const errors = publishedErrors(probe.events)
  for (const channel of [ACQUIRE_FAILURE, ACQUIRE_TRACE_ERROR, EXTEND_ERRORS, RELEASE_TRACE_ERROR]) {
    // At least one: a loaded machine may add timeouts (no client error) to the rest, the
    // last one included (an extension near the lease's end has a few ms to get its reply).
    const found = errors.filter((e) => e.channel === channel)
    assert.ok(found.length > 0, `no error published on ${channel}`)
    const carries = (e: { error: unknown }) => {
      try {
        clientErrorOf(channel, e.error, ctx.kind, message)
        return true
      } catch {
        return false
      }
    }
    // None does: assert on the last one, for the reason in the failure.
    if (!found.some(carries)) clientErrorOf(channel, found.at(-1)?.error, ctx.kind, message)
  }
}

describeMatrix('diagnostics and errors carry no owner token: a script refused by ACL mid-hold', (ctx) => {
  const probe = leakProbe()

  test('acquire, extend and release fail with the client error, published and thrown without tokens', async () => {
    await ctx.admin.call('ACL', 'SETUSER', 'leaky', 'on', '>pw', '~*', '&*', '+@all')
    const locker = new Locker(await ctx.client({ url: `redis://leaky:pw@127.0.0.1:${ctx.server.port}` }), {
      prefix: 'leak:',
    })
    const held = await locker.acquire('held', { lifetimeMs: 10_000, fencing: true })
    const multi = await locker.acquire(['m1', 'm2'], { lifetimeMs: 800 })
    await held.extend() // both scripts are cached: EVALSHA from now on
    await ctx.admin.call('ACL', 'SETUSER', 'leaky', '-evalsha', '-eval')
    const denied = /no permissions/

    const acquireError = await failure(locker.acquire('fresh', { fencing: true }))
    const tryError = await failure(locker.tryAcquire(['t1', 't2']))
    const extendError = await failure(held.extend())
    const releaseError = await failure(held.release())
    await waitFor(() => multi.signal.aborted, { message: 'the loss of the multi-key lock' })
    const lostReason: unknown = multi.signal.reason
    const lostReleaseError = await failure(multi.release())

    for (const [what, err] of Object.entries({ acquireError, tryError, extendError, releaseError })) {
      clientErrorOf(what, err, ctx.kind, denied)
    }
    assert.equal((lostReason as { reason?: unknown }).reason, 'unreachable')
    assertClientErrorsPublished(probe, ctx, denied)
    assert.ok(probe.tokens.size >= 4, `tokens sent: ${probe.tokens.size}`) // two held, two failed attempts
    assertNothingLeaks(
      probe,
      { acquireError, tryError, extendError, releaseError, lostReason, lostReleaseError },
      [held.token, multi.token],
    )
    await ctx.admin.call('ACL', 'SETUSER', 'leaky', '+@all')
    await locker.close()
  })
})

describeMatrix(
  'diagnostics and errors carry no owner token: Redis echoes an unknown command with its arguments',
  (ctx) => {
    const probe = leakProbe()

    test('EVALSHA renamed away: the echoed arguments are cut from every message, published and thrown', async () => {
      // EVAL runs each script once; every later call is an EVALSHA, which this server
      // answers "ERR unknown command 'evalsha', with args beginning with: ... '<token>'".
      const locker = new Locker(await ctx.client(), { prefix: 'echo:' })
      const a = await locker.acquire('a', { lifetimeMs: 10_000 })
      const b = await locker.acquire('b', { lifetimeMs: 10_000 })
      const c = await locker.acquire('c', { lifetimeMs: 10_000, fencing: true })
      assert.equal(await b.release(), true)
      await a.extend()

      const acquireError = await failure(locker.acquire('d', { fencing: true }))
      const extendError = await failure(a.extend())
      const releaseError = await failure(c.release())

      const unknown = /unknown command/i
      const thrown = { acquireError, extendError, releaseError }
      for (const [what, err] of Object.entries(thrown)) clientErrorOf(what, err, ctx.kind, unknown)
      assertClientErrorsPublished(probe, ctx, unknown)
      assertNothingLeaks(probe, thrown, [a.token, b.token, c.token])
      for (const [what, err] of Object.entries(thrown)) {
        const cause = clientErrorOf(what, err, ctx.kind, unknown)
        assert.match(cause.message, /with args beginning with: \[redacted\]$/, what)
        assert.match((err as Error).message, /with args beginning with: \[redacted\]$/, what)
      }
      await locker.close()
    })
  },
  { redisArgs: ['--rename-command', 'EVALSHA', ''] },
)
