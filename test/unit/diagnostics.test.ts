import assert from 'node:assert/strict'
import dc from 'node:diagnostics_channel'
import { test } from 'node:test'
import {
  diagnosticsChannels,
  extendObserved,
  observeAcquire,
  publishExtend,
  publishLost,
  publishRelease,
} from '../../src/diagnostics.js'
import { EXCLUSIVE, type HoldMode, SHARED } from '../../src/scripts/index.js'

test('without subscribers an acquisition runs bare: no clock read, no tally, no payload', async () => {
  let clockReads = 0
  let tallyGiven: unknown = 'not called'
  const lock = { fence: 1n }
  const got = await observeAcquire(
    ['k'],
    EXCLUSIVE,
    false,
    () => clockReads++,
    (l: { fence: bigint }) => l.fence,
    async (tally) => {
      tallyGiven = tally
      return lock
    },
  )
  assert.equal(got, lock)
  assert.equal(tallyGiven, undefined)
  assert.equal(clockReads, 0)
  assert.equal(extendObserved(), false)
})

test('one subscriber on any acquire channel turns the bookkeeping on', async () => {
  const seen: unknown[] = []
  const fn = (m: unknown) => seen.push(m)
  dc.subscribe(diagnosticsChannels.acquireSuccess, fn)
  try {
    const got = await observeAcquire(
      ['k'],
      EXCLUSIVE,
      true,
      () => 5,
      (l: { fence: bigint }) => l.fence,
      async (tally) => {
        assert.ok(tally)
        tally.attempts = 1
        return { fence: 7n, token: 'secret' }
      },
    )
    assert.equal(got?.fence, 7n)
    assert.deepEqual(seen, [
      { keys: ['k'], kind: 'exclusive', limit: null, fence: 7n, waitedMs: 0, attempts: 1 },
    ])
  } finally {
    dc.unsubscribe(diagnosticsChannels.acquireSuccess, fn)
  }
})

test('every payload says the kind, and the limit of a semaphore, never a token', async () => {
  const seen: { channel: string; message: unknown }[] = []
  const names = [
    diagnosticsChannels.acquireStart,
    diagnosticsChannels.acquireSuccess,
    diagnosticsChannels.acquireFailure,
    diagnosticsChannels.extend,
    diagnosticsChannels.lost,
    diagnosticsChannels.release,
  ]
  const fns = names.map((channel) => {
    const fn = (message: unknown) => seen.push({ channel, message })
    dc.subscribe(channel, fn)
    return fn
  })
  const sem: HoldMode = { kind: 'semaphore', limit: 3 }
  try {
    await observeAcquire(
      ['s'],
      SHARED,
      false,
      () => 0,
      () => undefined,
      async () => ({}),
    )
    await observeAcquire(
      ['p'],
      sem,
      true,
      () => 0,
      () => undefined,
      async () => null,
    )
    await assert.rejects(
      observeAcquire(
        ['p'],
        sem,
        false,
        () => 0,
        () => undefined,
        async () => {
          throw new Error('boom')
        },
      ),
    )
    const shared = { keys: ['s'], mode: SHARED, token: 'arl1.secret' }
    const permit = { keys: ['p'], mode: sem, token: 'arl1.secret' }
    publishRelease(shared, true)
    publishLost(permit, 'deleted')
    publishExtend(
      [shared, permit, { keys: ['x'], mode: EXCLUSIVE, token: 'arl1.secret' }],
      [true, false, true],
      undefined,
    )
  } finally {
    for (const [i, channel] of names.entries()) dc.unsubscribe(channel, fns[i] as (m: unknown) => void)
  }
  const pick = (channel: string) =>
    seen
      .filter((e) => e.channel === channel)
      .map((e) => {
        const { kind, limit, keys } = e.message as { kind: string; limit: number | null; keys: unknown }
        return { keys, kind, limit }
      })
  assert.deepEqual(pick(diagnosticsChannels.acquireStart), [
    { keys: ['s'], kind: 'shared', limit: null },
    { keys: ['p'], kind: 'semaphore', limit: 3 },
    { keys: ['p'], kind: 'semaphore', limit: 3 },
  ])
  assert.deepEqual(pick(diagnosticsChannels.acquireSuccess), [{ keys: ['s'], kind: 'shared', limit: null }])
  assert.deepEqual(pick(diagnosticsChannels.acquireFailure), [
    { keys: ['p'], kind: 'semaphore', limit: 3 },
    { keys: ['p'], kind: 'semaphore', limit: 3 },
  ])
  assert.deepEqual(pick(diagnosticsChannels.release), [{ keys: ['s'], kind: 'shared', limit: null }])
  assert.deepEqual(pick(diagnosticsChannels.lost), [{ keys: ['p'], kind: 'semaphore', limit: 3 }])
  const [extend] = seen.filter((e) => e.channel === diagnosticsChannels.extend)
  assert.deepEqual(extend?.message, {
    size: 3,
    keys: [['s'], ['p'], ['x']],
    kinds: ['shared', 'semaphore', 'exclusive'],
    limits: [null, 3, null],
    ok: [true, false, true],
    error: undefined,
  })
  for (const e of seen) assert.ok(!JSON.stringify(e.message).includes('secret'), e.channel)
})
