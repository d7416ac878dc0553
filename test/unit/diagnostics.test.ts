import assert from 'node:assert/strict'
import dc from 'node:diagnostics_channel'
import { test } from 'node:test'
import { diagnosticsChannels, extendObserved, observeAcquire } from '../../src/diagnostics.js'

test('without subscribers an acquisition runs bare: no clock read, no tally, no payload', async () => {
  let clockReads = 0
  let tallyGiven: unknown = 'not called'
  const lock = { fence: 1n }
  const got = await observeAcquire(
    ['k'],
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
    assert.deepEqual(seen, [{ keys: ['k'], fence: 7n, waitedMs: 0, attempts: 1 }])
  } finally {
    dc.unsubscribe(diagnosticsChannels.acquireSuccess, fn)
  }
})
