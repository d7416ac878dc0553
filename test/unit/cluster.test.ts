import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import calculateSlot from 'cluster-key-slot'
import { ClusterBackend, checkClusterKeys } from '../../src/backends/cluster.js'
import { BackendError, CrossSlotError, InvalidArgumentError } from '../../src/errors.js'
import { RELEASE_SHARDED } from '../../src/scripts/index.js'
import { extendEntries, extendReply, FakeAdapter } from '../helpers/fake-adapter.js'

/** Keys in `n` distinct slots (the plain keys 'k0', 'k1', … differ in slot). */
function keysInDistinctSlots(n: number): string[] {
  const seen = new Set<number>()
  const out: string[] = []
  for (let i = 0; out.length < n; i++) {
    const key = `k${i}`
    if (seen.has(calculateSlot(key))) continue
    seen.add(calculateSlot(key))
    out.push(key)
  }
  return out
}

describe('checkClusterKeys', () => {
  test('accepts one key and keys sharing a hash tag', () => {
    checkClusterKeys(['job'])
    checkClusterKeys(['{order:42}:a', '{order:42}:b', 'x{order:42}'])
    checkClusterKeys(['a{b']) // no }: wrapped in braces, companions share its slot
  })

  test('rejects keys of different slots with each slot and the hash-tag hint', () => {
    let err: unknown
    try {
      checkClusterKeys(['a', 'b'])
    } catch (e) {
      err = e
    }
    assert.ok(err instanceof CrossSlotError)
    assert.equal(err.code, 'ERR_LOCK_CROSS_SLOT')
    assert.deepEqual(err.slots, [
      { key: 'a', slot: calculateSlot('a') },
      { key: 'b', slot: calculateSlot('b') },
    ])
    assert.match(err.message, new RegExp(`${calculateSlot('a')}.*${calculateSlot('b')}`))
    assert.match(err.message, /hash tag/)
  })

  test('rejects a key with } but no valid tag, whose companions would hash elsewhere', () => {
    for (const key of ['a}b', 'a{}b', '{}', 'foo{}{bar}', '}']) {
      assert.throws(
        () => checkClusterKeys([key]),
        (err: unknown) => err instanceof InvalidArgumentError && err.argument === 'keys',
        key,
      )
    }
    checkClusterKeys(['a}b{c}']) // a } before the tag is ordinary text
  })
})

describe('ClusterBackend', () => {
  test('extend sends one call per slot and merges statuses back in order', async () => {
    const adapter = new FakeAdapter()
    const backend = new ClusterBackend(adapter)
    const [a, b, c] = keysInDistinctSlots(3) as [string, string, string]
    adapter.handler = extendReply((token) => (token === 't-b2' ? -1 : token === 't-c' ? 0 : 1))
    const batch = [
      { keys: [a], token: 't-a', lifetimeMs: 1000 },
      { keys: [b], token: 't-b', lifetimeMs: 1000 },
      { keys: [c], token: 't-c', lifetimeMs: 1000 },
      { keys: [`{${b}}:x`, `{${b}}:y`], token: 't-b2', lifetimeMs: 1000 },
      { keys: [a], token: 't-a2', lifetimeMs: 1000 },
    ]
    // `{b}:x` hashes like `b`: same slot group as the second lease.
    assert.equal(calculateSlot(`{${b}}:x`), calculateSlot(b))
    const statuses = await backend.extend(batch, 1000)
    assert.deepEqual(statuses, [1, 1, 0, -1, 1])
    assert.equal(adapter.calls.length, 3)
    for (const call of adapter.calls) {
      const slots = new Set(call.keys.map((k) => calculateSlot(k)))
      assert.equal(slots.size, 1, `one slot per call: ${call.keys.join(', ')}`)
    }
    const tokens = adapter.calls.map((call) => extendEntries(call).map((e) => e.token))
    assert.deepEqual(tokens, [['t-a', 't-a2'], ['t-b', 't-b2'], ['t-c']])
  })

  test('a failed slot call leaves only its leases without a status; all failed rejects', async () => {
    const adapter = new FakeAdapter()
    const backend = new ClusterBackend(adapter)
    const [a, b] = keysInDistinctSlots(2) as [string, string]
    adapter.handler = (call) => {
      if (call.keys.includes(b)) throw new Error('CLUSTERDOWN The cluster is down')
      return extendReply()(call)
    }
    const batch = [
      { keys: [a], token: 't-a', lifetimeMs: 1000 },
      { keys: [b], token: 't-b', lifetimeMs: 1000 },
    ]
    assert.deepEqual(await backend.extend(batch, 1000), [1, undefined])
    adapter.handler = () => {
      throw new Error('TRYAGAIN Multiple keys request during rehashing of slot')
    }
    await assert.rejects(backend.extend(batch, 1000), BackendError)
  })

  test('CLUSTERDOWN and TRYAGAIN are backend errors, never contention; the token is released after', async () => {
    for (const message of ['CLUSTERDOWN The cluster is down', 'TRYAGAIN Multiple keys request']) {
      const adapter = new FakeAdapter()
      const backend = new ClusterBackend(adapter)
      adapter.handler = (call) => {
        if (call.args.length === 5) throw new Error(message) // the acquisition
        return [0, 0]
      }
      await assert.rejects(
        backend.acquire({
          keys: ['{t}a', '{t}b'],
          token: 'tok',
          lifetimeMs: 1000,
          timeoutMs: 1000,
          fencing: false,
        }),
        (err: unknown) => err instanceof BackendError && err.operation === 'acquire',
      )
      // The cleanup release is fired after the failure: nothing may stay locked.
      await new Promise((r) => setImmediate(r))
      const release = adapter.calls.find((c) => c.script === RELEASE_SHARDED.source)
      assert.ok(release, 'released with the sharded release script')
      assert.deepEqual(release.keys, ['{t}a', '{t}b'])
    }
  })
})
