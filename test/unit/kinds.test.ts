import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { inspection } from '../../src/kinds.js'

describe('inspection', () => {
  test('a shared lock or semaphore reports its longest holder’s lease, not the key’s TTL', () => {
    const state = {
      token: null,
      pttl: 60_000,
      fence: null,
      kind: 'semaphore',
      limit: 3,
      holders: [300, 800],
    } as const
    const out = inspection('k', state)
    assert.equal(out.remainingMs, 800)
    assert.deepEqual(out.holders, [{ remainingMs: 300 }, { remainingMs: 800 }])
    assert.equal(out.isHeld, true)
    assert.equal(out.limit, 3)
  })

  test('a key whose holders all expired is free, whatever its TTL', () => {
    const out = inspection('k', {
      token: null,
      pttl: 5000,
      fence: null,
      kind: 'shared',
      limit: null,
      holders: [],
    })
    assert.deepEqual([out.isHeld, out.kind, out.remainingMs], [false, null, null])
  })

  test('an exclusive holder: one holder with the key’s TTL and its token', () => {
    const out = inspection('k', {
      token: 't',
      pttl: 900,
      fence: 3n,
      kind: 'exclusive',
      limit: null,
      holders: [],
    })
    assert.deepEqual(out.holders, [{ remainingMs: 900 }])
    assert.equal(out.remainingMs, 900)
    assert.equal(out.token, 't')
  })
})
