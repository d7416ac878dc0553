// The single-node backend groups a batch of holders by key before EXTEND_HOLDERS_UNIFORM
// (one run, one read and one ZADD per key) and hands the statuses back in batch order.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { keysInRuns, SingleNodeBackend } from '../../src/backends/single-node.js'
import { EXTEND_HOLDERS_UNIFORM } from '../../src/scripts/index.js'
import { extendEntries, FakeAdapter } from '../helpers/fake-adapter.js'

test('holders of the same key leave as one run of the script, their statuses return in batch order', async () => {
  const adapter = new FakeAdapter()
  const statusOf: Record<string, number> = { a1: 1, b1: 0, a2: -1, c1: 1, b2: 1, a3: 0 }
  adapter.handler = (call) => extendEntries(call).map((e) => statusOf[e.token])
  const backend = new SingleNodeBackend(adapter)
  const mode = { kind: 'semaphore', limit: 3 } as const
  const keyOf = (t: string) => `k:${t[0]}`
  const batch = ['a1', 'b1', 'a2', 'c1', 'b2', 'a3'].map((token) => ({
    keys: [keyOf(token)],
    token,
    lifetimeMs: 3000,
    mode,
  }))
  const statuses = await backend.extend(batch, 1000)
  assert.deepEqual(
    statuses,
    batch.map((l) => statusOf[l.token]),
    'each lease gets its own status back',
  )
  const call = adapter.calls.at(-1)
  assert.ok(
    call && (call.script === EXTEND_HOLDERS_UNIFORM.sha || call.script === EXTEND_HOLDERS_UNIFORM.source),
  )
  const locks = call.keys.filter((_, i) => i % 2 === 0)
  assert.deepEqual(locks, ['k:a', 'k:b', 'k:c'], 'one run per key')
  assert.deepEqual(call.args, ['3000', '3', 'a1', 'a2', 'a3', '2', 'b1', 'b2', '1', 'c1'])
})

test('a batch already in runs (holders of a key next to each other) goes as it is: same runs, no reordering', async () => {
  const adapter = new FakeAdapter()
  adapter.handler = (call) => extendEntries(call).map((e) => (e.token === 'b2' ? 0 : 1))
  const backend = new SingleNodeBackend(adapter)
  const mode = { kind: 'semaphore', limit: 3 } as const
  const batch = ['a1', 'a2', 'b1', 'b2', 'c1'].map((token) => ({
    keys: [`k:${token[0]}`],
    token,
    lifetimeMs: 3000,
    mode,
  }))
  assert.deepEqual(await backend.extend(batch, 1000), [1, 1, 1, 0, 1])
  assert.deepEqual(adapter.calls.at(-1)?.args, ['3000', '2', 'a1', 'a2', '2', 'b1', 'b2', '1', 'c1'])
})

test("keysInRuns: true only when every key's leases are next to each other", () => {
  const of = (...keys: string[]) => keys.map((k) => ({ keys: [k], token: 't', lifetimeMs: 1000 }))
  assert.equal(keysInRuns(of()), true)
  assert.equal(keysInRuns(of('a')), true)
  assert.equal(keysInRuns(of('a', 'a', 'b', 'c', 'c')), true)
  assert.equal(keysInRuns(of('a', 'b', 'a')), false)
  assert.equal(keysInRuns(of('a', 'a', 'b', 'b', 'c', 'a')), false)
})
