import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { BackendError } from '../../src/errors.js'
import {
  ACQUIRE,
  ACQUIRE_HOLDER,
  EXCLUSIVE,
  EXTEND,
  EXTEND_HOLDERS_UNIFORM,
  EXTEND_UNIFORM,
  FENCE_MARK_TTL_MS,
  INSPECT,
  isUniform,
  markerOf,
  RELEASE,
  RELEASE_HOLDER,
  RELEASE_HOLDER_SHARDED,
  RELEASE_SHARDED,
  readNotice,
  SERVER_ID,
  SHARED,
  WRITER_MARK_MS,
  withoutWaitingMark,
  withSource,
} from '../../src/scripts/index.js'

const token = `arl1.${'A'.repeat(22)}`
/** The reserved namespace of companion keys (internal/keys.ts). */
const NS = '\u0000arl:'

describe('scripts: encode and decode (pure, no Redis)', () => {
  test('ACQUIRE: lock keys, then fence marks only with fencing; with companions the holders sets and writer marks between; ARGV token, lease, mark TTL or 0, writer mark TTL or 0', () => {
    assert.deepEqual(ACQUIRE.encode({ keys: ['a', 'b'], token, lifetimeMs: 2000, fencing: false }), {
      keys: ['a', 'b'],
      args: [token, '2000', '0', 'light', String(WRITER_MARK_MS)],
    })
    assert.deepEqual(ACQUIRE.encode({ keys: ['a', '{t}b'], token, lifetimeMs: 500, fencing: true }), {
      keys: ['a', '{t}b', `a${NS}fence:{a}`, `{t}b${NS}fence`],
      args: [token, '500', String(FENCE_MARK_TTL_MS), 'light', String(WRITER_MARK_MS)],
    })
    assert.deepEqual(
      ACQUIRE.encode({ keys: ['a', 'b'], token, lifetimeMs: 2000, fencing: false, companions: true }),
      {
        keys: ['a', 'b', `a${NS}holders:{a}`, `b${NS}holders:{b}`, `a${NS}writer:{a}`, `b${NS}writer:{b}`],
        args: [token, '2000', '0', 'full', String(WRITER_MARK_MS)],
      },
    )
    assert.deepEqual(
      ACQUIRE.encode({
        keys: ['a', '{t}b'],
        token,
        lifetimeMs: 500,
        fencing: true,
        writerMarkMs: 1700,
        companions: true,
      }),
      {
        keys: [
          'a',
          '{t}b',
          `a${NS}holders:{a}`,
          `{t}b${NS}holders`,
          `a${NS}writer:{a}`,
          `{t}b${NS}writer`,
          `a${NS}fence:{a}`,
          `{t}b${NS}fence`,
        ],
        args: [token, '500', String(FENCE_MARK_TTL_MS), 'full', '1700'],
      },
    )
    // {2, i}: key i is a shared lock or semaphore, run again with companions; {0, pttl, i, 's'}: shared holders.
    assert.deepEqual(ACQUIRE.decode([2, 1]), { acquired: false, pttl: 0, blockedIndex: 0, companions: true })
    assert.deepEqual(ACQUIRE.decode([0, 900, 1, 's']), {
      acquired: false,
      pttl: 900,
      blockedIndex: 0,
      companions: true,
    })
  })

  test('ACQUIRE_HOLDER: the same KEYS; ARGV adds the kind (s or the limit) and its marker', () => {
    const shared = ACQUIRE_HOLDER.encode({
      keys: ['a'],
      token,
      lifetimeMs: 900,
      fencing: false,
      mode: SHARED,
    })
    assert.deepEqual(shared, {
      keys: ['a', `a${NS}holders:{a}`, `a${NS}writer:{a}`],
      args: [token, '900', '0', 's', 'arl1.shared'],
    })
    const sem = ACQUIRE_HOLDER.encode({
      keys: ['j'],
      token,
      lifetimeMs: 900,
      fencing: true,
      mode: { kind: 'semaphore', limit: 5 },
    })
    assert.deepEqual(sem.args, [token, '900', String(FENCE_MARK_TTL_MS), '5', 'arl1.sem.5'])
    assert.equal(sem.keys.length, 4)
    assert.equal(markerOf({ kind: 'semaphore', limit: 12 }), 'arl1.sem.12')
    // A semaphore's arrival queue takes the writer mark's place; ARGV adds the Locker, flags, TTL.
    const queued = ACQUIRE_HOLDER.encode({
      keys: ['j'],
      token,
      lifetimeMs: 900,
      fencing: false,
      mode: { kind: 'semaphore', limit: 5 },
      queue: { id: 'L1', join: true, more: true, ttlMs: 2000 },
    })
    assert.deepEqual(queued, {
      keys: ['j', `j${NS}holders:{j}`, `j${NS}queue:{j}`],
      args: [token, '900', '0', '5', 'arl1.sem.5', 'L1', 'jm', '2000'],
    })
    const single = ACQUIRE_HOLDER.encode({
      keys: ['j'],
      token,
      lifetimeMs: 900,
      fencing: false,
      mode: { kind: 'semaphore', limit: 5 },
      queue: { id: 'L1', join: false, more: false, ttlMs: 2000 },
    })
    assert.deepEqual(single.args.slice(5), ['L1', '', '2000'])
    // A shared hold has no queue, whatever the request says.
    const sharedQueued = ACQUIRE_HOLDER.encode({
      keys: ['a'],
      token,
      lifetimeMs: 900,
      fencing: false,
      mode: SHARED,
      queue: { id: 'L1', join: true, more: false, ttlMs: 2000 },
    })
    assert.deepEqual(sharedQueued, shared)
  })

  test('ACQUIRE replies {-1, i, kind, limit}: another kind holds key i (a conflict, not contention)', () => {
    assert.deepEqual(ACQUIRE.decode([-1, 1, 'semaphore', 3]), {
      acquired: false,
      pttl: -1,
      blockedIndex: 0,
      conflict: { kind: 'semaphore', limit: 3 },
    })
    assert.deepEqual(ACQUIRE_HOLDER.decode([-1, 2, 'exclusive', 0]), {
      acquired: false,
      pttl: -1,
      blockedIndex: 1,
      conflict: EXCLUSIVE,
    })
    assert.deepEqual(ACQUIRE_HOLDER.decode([-1, 1, 'shared', 0]).acquired, false)
  })

  test('RELEASE_HOLDER: lock keys then holders sets; ARGV token, publisher (the script names the channels)', () => {
    assert.deepEqual(RELEASE_HOLDER.encode({ keys: ['k'], token, publisherId: 'me', mode: SHARED }), {
      keys: ['k', `k${NS}holders:{k}`],
      args: [token, 'me'],
    })
    // A semaphore: its arrival queues follow, and its limit (the release names who goes next).
    const sem = { kind: 'semaphore', limit: 4 } as const
    assert.deepEqual(RELEASE_HOLDER.encode({ keys: ['k'], token, publisherId: 'me', mode: sem }), {
      keys: ['k', `k${NS}holders:{k}`, `k${NS}queue:{k}`],
      args: [token, 'me', '4'],
    })
    // Leaving the arrival queue: and the Locker's id.
    assert.deepEqual(
      RELEASE_HOLDER.encode({ keys: ['k'], token: '', publisherId: 'me', mode: sem, leaveQueue: 'me' }),
      { keys: ['k', `k${NS}holders:{k}`, `k${NS}queue:{k}`], args: ['', 'me', '4', 'me'] },
    )
    assert.match(RELEASE_HOLDER.source, /'PUBLISH'/)
    assert.match(RELEASE_HOLDER_SHARDED.source, /'SPUBLISH'/)
    assert.deepEqual(RELEASE_HOLDER.decode([1, 2]), { removed: 1, receivers: 2 })
    assert.deepEqual(RELEASE_HOLDER.decode(1), { removed: 1, receivers: 0 })
    assert.deepEqual(RELEASE_HOLDER.decode([1, 2, 1, 600]), {
      removed: 1,
      receivers: 2,
      named: 'others',
      othersExpireInMs: 600,
    })
    assert.deepEqual(RELEASE_HOLDER.decode([1, 2, 2]), { removed: 1, receivers: 2, named: 'us' })
  })

  test('RELEASE_HOLDER hand-over: the successor (token, lease, more waiters, queue TTL) after an empty leave-queue id; its reply and what became of permits still free', () => {
    const sem = { kind: 'semaphore', limit: 4 } as const
    const successor = { token: 'arl1.next', lifetimeMs: 2500, more: true, queueTtlMs: 3000 }
    assert.deepEqual(RELEASE_HOLDER.encode({ keys: ['k'], token, publisherId: 'me', mode: sem, successor }), {
      keys: ['k', `k${NS}holders:{k}`, `k${NS}queue:{k}`],
      args: [token, 'me', '4', '', 'arl1.next', '2500', 'm', '3000'],
    })
    assert.deepEqual(
      RELEASE_HOLDER.encode({
        keys: ['k'],
        token,
        publisherId: 'me',
        mode: sem,
        successor: { ...successor, more: false },
      }).args,
      [token, 'me', '4', '', 'arl1.next', '2500', '', '3000'],
    )
    // Several keys (never a semaphore's) or a shared lock: no successor is sent.
    assert.deepEqual(
      RELEASE_HOLDER.encode({ keys: ['k'], token, publisherId: 'me', mode: SHARED, successor }).args,
      [token, 'me'],
    )
    assert.deepEqual(RELEASE_HOLDER.decode([1, 0, 0, 0, 1]), { removed: 1, receivers: 0, handedOver: true })
    assert.deepEqual(RELEASE_HOLDER.decode([1, 1, 1, 700, 1]), {
      removed: 1,
      receivers: 1,
      handedOver: true,
      named: 'others',
      othersExpireInMs: 700,
    })
    assert.deepEqual(RELEASE_HOLDER.decode([1, 0, 2, 0, 1]), {
      removed: 1,
      receivers: 0,
      handedOver: true,
      named: 'us',
    })
    assert.deepEqual(RELEASE_HOLDER.decode([1, 2, 3, 0, 1]), {
      removed: 1,
      receivers: 2,
      handedOver: true,
      moreFree: true,
    })
    assert.throws(() => RELEASE_HOLDER.decode([1, 0, 9, 0, 1]), /unexpected reply/)
  })

  test('release messages: the sender alone concerns every Locker but the sender; one naming Lockers wakes only them, the others learn when the named entries run out', () => {
    assert.equal(readNotice('a', 'b'), 'any')
    assert.equal(readNotice('a', 'a'), 'own', 'its own release, handled locally')
    assert.equal(readNotice('a 600 b c', 'c'), 'named')
    assert.equal(readNotice('a 600 b c', 'b'), 'named')
    assert.equal(readNotice('a 600 b c', 'd'), 600, 'not named: the queue turns it away until then')
    assert.equal(readNotice('a 600 a', 'a'), 'own', 'named, but its own release: woken locally')
    assert.equal(readNotice('a x b', 'd'), 'any', 'a message it cannot read: attempt')
  })

  test('ACQUIRE replies: {1}, {1, fence}, {0, pttl, i}; anything else is a BackendError', () => {
    assert.deepEqual(ACQUIRE.decode([1]), { acquired: true, fence: undefined })
    assert.deepEqual(ACQUIRE.decode([1, '1700000000000001']), { acquired: true, fence: 1700000000000001n })
    assert.deepEqual(ACQUIRE.decode([0, 1500, 2]), { acquired: false, pttl: 1500, blockedIndex: 1 })
    assert.deepEqual(ACQUIRE.decode([0, -1, 1]), { acquired: false, pttl: -1, blockedIndex: 0 })
    for (const bad of ['OK', null, [], [2], { a: 1 }]) {
      assert.throws(
        () => ACQUIRE.decode(bad),
        (err) => err instanceof BackendError && err.operation === 'acquire',
      )
    }
  })

  test('EXTEND: per lease token, lease length and key count; EXTEND_UNIFORM: one length, tokens in key order', () => {
    const batch = [
      { keys: ['a'], token: 't1', lifetimeMs: 1000 },
      { keys: ['b', 'c'], token: 't2', lifetimeMs: 3000 },
    ]
    assert.deepEqual(EXTEND.encode(batch), {
      keys: ['a', 'b', 'c'],
      args: ['2', 't1', '1000', '1', 'x', 't2', '3000', '2', 'x'],
    })
    assert.equal(isUniform(batch), false)
    // A holder of a shared lock or semaphore: each lock key followed by its holders set.
    const holders = [{ keys: ['s', 'u'], token: 't3', lifetimeMs: 1000, mode: SHARED }]
    assert.deepEqual(EXTEND.encode(holders), {
      keys: ['s', `s${NS}holders:{s}`, 'u', `u${NS}holders:{u}`],
      args: ['1', 't3', '1000', '2', 'h'],
    })
    assert.equal(isUniform([{ keys: ['s'], token: 't3', lifetimeMs: 1000, mode: SHARED }]), false)
    assert.equal(isUniform([{ keys: ['s'], token: 't3', lifetimeMs: 1000, mode: EXCLUSIVE }]), true)
    const uniform = [
      { keys: ['a'], token: 't1', lifetimeMs: 1000 },
      { keys: ['b'], token: 't2', lifetimeMs: 1000 },
    ]
    assert.equal(isUniform(uniform), true)
    assert.equal(
      isUniform([
        { keys: ['a'], token: 't', lifetimeMs: 1 },
        { keys: ['b'], token: 'u', lifetimeMs: 2 },
      ]),
      false,
    )
    assert.deepEqual(EXTEND_UNIFORM.encode(uniform), { keys: ['a', 'b'], args: ['1000', 't1', 't2'] })
    // Holders: per run of one key, the key and its set once; ARGV the run's count, then its tokens.
    const sem = { kind: 'semaphore', limit: 3 } as const
    assert.deepEqual(
      EXTEND_HOLDERS_UNIFORM.encode([
        { keys: ['a'], token: 't1', lifetimeMs: 1000, mode: sem },
        { keys: ['a'], token: 't2', lifetimeMs: 1000, mode: sem },
        { keys: ['b'], token: 't3', lifetimeMs: 1000, mode: sem },
        { keys: ['a'], token: 't4', lifetimeMs: 1000, mode: sem },
      ]),
      {
        keys: ['a', `a${NS}holders:{a}`, 'b', `b${NS}holders:{b}`, 'a', `a${NS}holders:{a}`],
        args: ['1000', '2', 't1', 't2', '1', 't3', '1', 't4'],
      },
    )
    assert.deepEqual(EXTEND.decode([1, 0, -1]), [1, 0, -1])
    assert.deepEqual(EXTEND_UNIFORM.decode(['1']), [1])
    assert.throws(() => EXTEND.decode('OK'), BackendError)
  })

  test("RELEASE: ARGV token and publisher only (the script names each key's channel); an integer reply when nobody heard", () => {
    assert.deepEqual(RELEASE.encode({ keys: ['k'], token, publisherId: 'me' }), {
      keys: ['k'],
      args: [token, 'me'],
    })
    assert.deepEqual(RELEASE_SHARDED.encode({ keys: ['{u}a', 'b'], token, publisherId: '' }), {
      keys: ['{u}a', 'b'],
      args: [token, ''],
    })
    assert.deepEqual(RELEASE.decode([1, 2]), { removed: 1, receivers: 2 })
    assert.deepEqual(RELEASE.decode(1), { removed: 1, receivers: 0 })
    assert.deepEqual(RELEASE.decode(0), { removed: 0, receivers: 0 })
    assert.deepEqual(RELEASE.decode(7), { removed: 7, receivers: 0 })
    assert.deepEqual(RELEASE.decode(1n), { removed: 1, receivers: 0 })
    // Clients told to return integers as strings (ioredis stringNumbers, node-redis type mappings).
    assert.deepEqual(RELEASE.decode('1'), { removed: 1, receivers: 0 })
    assert.deepEqual(RELEASE.decode(['1', '2']), { removed: 1, receivers: 2 })
    for (const bad of ['OK', '', null, undefined, { removed: 1 }, 1.5, true]) {
      assert.throws(
        () => RELEASE.decode(bad),
        (err) => err instanceof BackendError && err.operation === 'release',
        JSON.stringify(bad),
      )
    }
    assert.match(RELEASE.source, /'PUBLISH'/)
    assert.match(RELEASE_SHARDED.source, /'SPUBLISH'/)
  })

  test('INSPECT: the key, its fence mark and holders set; the waiting mark is stripped, a missing key is null', () => {
    assert.deepEqual(INSPECT.encode({ key: 'k' }), {
      keys: ['k', `k${NS}fence:{k}`, `k${NS}holders:{k}`],
      args: [],
    })
    assert.deepEqual(INSPECT.encode({ key: 'app:x' }).keys.slice(0, 2), ['app:x', `app:x${NS}fence:{app:x}`])
    const none = { kind: null, limit: null, holders: [] }
    assert.deepEqual(INSPECT.decode([`${token}!`, 900, '42', []]), {
      token,
      pttl: 900,
      fence: 42n,
      kind: 'exclusive',
      limit: null,
      holders: [],
    })
    assert.deepEqual(INSPECT.decode([null, -2, null, []]), { token: null, pttl: -2, fence: null, ...none })
    assert.deepEqual(INSPECT.decode(['arl1.shared!', 800, null, [300, 800]]), {
      token: null,
      pttl: 800,
      fence: null,
      kind: 'shared',
      limit: null,
      holders: [300, 800],
    })
    assert.deepEqual(INSPECT.decode(['arl1.sem.4', 800, null, [800]]).limit, 4)
    assert.throws(() => INSPECT.decode('x'), BackendError)
  })

  test('the waiting mark: only a value of our format ending in "!" loses its last character', () => {
    assert.equal(withoutWaitingMark(`${token}!`), token)
    assert.equal(withoutWaitingMark(token), token)
    assert.equal(withoutWaitingMark('short!'), 'short!')
    assert.equal(withoutWaitingMark(`${token}!!`), `${token}!!`)
    // 0.1.0's format (22 characters, 23 marked) and a token's length without the prefix: not ours.
    const old = 'A'.repeat(22)
    assert.equal(withoutWaitingMark(`${old}!`), `${old}!`)
    assert.equal(withoutWaitingMark(`${'A'.repeat(27)}!`), `${'A'.repeat(27)}!`)
  })

  test('EXTEND, EXTEND_UNIFORM and RELEASE read each key with redis.pcall: only a WRONGTYPE key is affected', () => {
    for (const s of [EXTEND, EXTEND_UNIFORM, RELEASE, RELEASE_SHARDED]) {
      assert.doesNotMatch(s.source, /redis\.call\('GET'/, s.name)
      assert.match(s.source, /redis\.pcall\('GET', KEYS\[i\]\)/, s.name)
      assert.match(s.source, /'\^WRONGTYPE'/, s.name)
    }
  })

  test('SERVER_ID decodes a string and rejects anything else', () => {
    assert.equal(SERVER_ID.decode('abc123'), 'abc123')
    assert.throws(() => SERVER_ID.decode(null), BackendError)
  })

  test('withSource keeps the contract and changes the source (and so the SHA)', () => {
    const broken = withSource(RELEASE, 'return {1, 0}')
    assert.notEqual(broken.sha, RELEASE.sha)
    assert.equal(broken.source, 'return {1, 0}')
    assert.deepEqual(
      broken.encode({ keys: ['k'], token, publisherId: 'me' }),
      RELEASE.encode({ keys: ['k'], token, publisherId: 'me' }),
    )
    assert.equal(withSource(RELEASE, undefined), RELEASE)
  })

  test('every script starts with its contract header in the source file, and SHAs are distinct', () => {
    const all = [ACQUIRE, EXTEND, EXTEND_UNIFORM, RELEASE, RELEASE_SHARDED, INSPECT, SERVER_ID]
    assert.equal(new Set(all.map((s) => s.sha)).size, all.length)
    for (const s of all) assert.match(s.sha, /^[0-9a-f]{40}$/)
  })
})
