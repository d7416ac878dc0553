import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { InvalidArgumentError } from '../../src/errors.js'
import { MAX_TIMER_MS } from '../../src/internal/clock.js'
import { Locker } from '../../src/locker.js'
import {
  ACQUIRE_OPTION_NAMES,
  checkOptionNames,
  DEFAULTS,
  FROM_URL_OPTION_NAMES,
  LOCKER_OPTION_NAMES,
  type LockOptions,
  resolveKeys,
  resolveLockOptions,
  resolvePrefix,
  describe as show,
} from '../../src/options.js'
import type { RedisClient } from '../../src/types.js'

/** Not a client at all: option checks come before the client is looked at. */
const fakeClient = {} as RedisClient

/** Asserts `fn` throws ERR_LOCK_INVALID_ARGUMENT about `argument`, with all of `parts` in the message. */
function rejects(fn: () => unknown, argument: string, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`)
    assert.equal(err.code, 'ERR_LOCK_INVALID_ARGUMENT')
    assert.equal(err.argument, argument)
    for (const part of [argument, ...parts]) {
      assert.ok(err.message.includes(part), `message ${JSON.stringify(err.message)} names ${part}`)
    }
    return true
  })
}

function resolveOne(options: Record<string, unknown>): ReturnType<typeof resolveLockOptions> {
  return resolveLockOptions([options as LockOptions])
}

describe('resolveLockOptions', () => {
  test('defaults', () => {
    assert.deepEqual(resolveLockOptions([]), {
      lifetimeMs: 2000,
      extendIntervalMs: 1000,
      retryIntervalMs: 500,
      retryTimeoutMs: 1000,
      replicas: 0,
      replicaTimeoutMs: 500,
      attemptTimeoutMs: 500,
      fencing: false,
      mode: { kind: 'exclusive', limit: 0 },
    })
    assert.deepEqual(resolveLockOptions([undefined, {}]), { ...DEFAULTS })
  })

  test('layers: call over Locker over defaults', () => {
    const locker: LockOptions = { lifetimeMs: 4000, retryIntervalMs: 100, retryTimeoutMs: null }
    assert.deepEqual(resolveLockOptions([locker, undefined]), {
      lifetimeMs: 4000,
      extendIntervalMs: 2000,
      retryIntervalMs: 100,
      retryTimeoutMs: null,
      replicas: 0,
      replicaTimeoutMs: 1000,
      attemptTimeoutMs: 1000,
      fencing: false,
      mode: { kind: 'exclusive', limit: 0 },
    })
    assert.deepEqual(resolveLockOptions([locker, { lifetimeMs: 6000, retryTimeoutMs: 50 }]), {
      lifetimeMs: 6000,
      extendIntervalMs: 3000,
      retryIntervalMs: 100,
      retryTimeoutMs: 50,
      replicas: 0,
      replicaTimeoutMs: 1000,
      attemptTimeoutMs: 1000,
      fencing: false,
      mode: { kind: 'exclusive', limit: 0 },
    })
  })

  test('an explicit undefined in a later layer does not erase an earlier value', () => {
    const call = { lifetimeMs: undefined, retryTimeoutMs: undefined } as unknown as LockOptions
    assert.deepEqual(resolveLockOptions([{ lifetimeMs: 3000, retryTimeoutMs: null }, call]), {
      lifetimeMs: 3000,
      extendIntervalMs: 1500,
      retryIntervalMs: 500,
      retryTimeoutMs: null,
      replicas: 0,
      replicaTimeoutMs: 750,
      attemptTimeoutMs: 750,
      fencing: false,
      mode: { kind: 'exclusive', limit: 0 },
    })
  })

  test('shared and limit: the kind of the acquisition; bad values are rejected before anything is sent', () => {
    assert.deepEqual(resolveOne({ shared: true }).mode, { kind: 'shared', limit: 0 })
    assert.deepEqual(resolveOne({ shared: false }).mode, { kind: 'exclusive', limit: 0 })
    assert.deepEqual(resolveOne({ limit: 5 }).mode, { kind: 'semaphore', limit: 5 })
    assert.deepEqual(resolveOne({ limit: 1, shared: false }).mode, { kind: 'semaphore', limit: 1 })
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '3', null, true, 2_000_000]) {
      rejects(() => resolveOne({ limit: bad }), 'limit', 'integer')
    }
    for (const bad of ['yes', 1, null]) rejects(() => resolveOne({ shared: bad }), 'shared', 'true or false')
    rejects(() => resolveOne({ shared: true, limit: 3 }), 'shared', 'cannot be combined')
    // Per acquisition only: a Locker-wide kind would make every key of it a semaphore.
    rejects(() => new Locker(fakeClient, { limit: 2 } as never), 'limit', 'unknown')
    rejects(() => new Locker(fakeClient, { shared: true } as never), 'shared', 'unknown')
  })

  test('attemptTimeoutMs: a quarter of the lease, at most 1 s, unless set; a bad value is rejected', () => {
    assert.equal(resolveOne({ lifetimeMs: 400 }).attemptTimeoutMs, 100)
    assert.equal(resolveOne({ lifetimeMs: 30_000 }).attemptTimeoutMs, 1000)
    assert.equal(resolveOne({ attemptTimeoutMs: 50 }).attemptTimeoutMs, 50)
    for (const [value, received] of [
      [0, 'received 0'],
      [-1, 'received -1'],
      [1.5, 'received 1.5'],
      ['100', 'received "100"'],
    ] as const) {
      rejects(() => resolveOne({ attemptTimeoutMs: value as never }), 'attemptTimeoutMs', received)
    }
  })

  test('extendIntervalMs defaults to half of the lifetime it ends up with', () => {
    assert.equal(resolveOne({ lifetimeMs: 500 }).extendIntervalMs, 250)
    assert.equal(resolveOne({ lifetimeMs: 11 }).extendIntervalMs, 5)
    assert.equal(resolveOne({ lifetimeMs: 10 }).extendIntervalMs, 5)
    assert.equal(resolveOne({ lifetimeMs: MAX_TIMER_MS }).extendIntervalMs, Math.floor(MAX_TIMER_MS / 2))
    // A Locker-level lifetime with a call-level one: half of the call's.
    assert.equal(resolveLockOptions([{ lifetimeMs: 8000 }, { lifetimeMs: 600 }]).extendIntervalMs, 300)
  })

  test('an explicit extendIntervalMs is kept across layers', () => {
    const r = resolveLockOptions([{ extendIntervalMs: 1500 }, { lifetimeMs: 6000 }])
    assert.equal(r.lifetimeMs, 6000)
    assert.equal(r.extendIntervalMs, 1500)
  })

  test('retryTimeoutMs: 0 means one attempt and null means forever', () => {
    assert.equal(resolveOne({ retryTimeoutMs: 0 }).retryTimeoutMs, 0)
    assert.equal(resolveOne({ retryTimeoutMs: null }).retryTimeoutMs, null)
    assert.equal(resolveOne({ retryTimeoutMs: MAX_TIMER_MS }).retryTimeoutMs, MAX_TIMER_MS)
  })

  for (const name of ['lifetimeMs', 'extendIntervalMs', 'retryIntervalMs'] as const) {
    test(`${name}: bad values are rejected naming the option and the value`, () => {
      const base = name === 'extendIntervalMs' ? { lifetimeMs: MAX_TIMER_MS } : {}
      const cases: [unknown, string][] = [
        [0, 'received 0'],
        [-1, 'received -1'],
        [1.5, 'received 1.5'],
        [Number.NaN, 'received NaN'],
        [Number.POSITIVE_INFINITY, 'received Infinity'],
        ['100', 'received "100"'],
        [MAX_TIMER_MS + 1, `received ${MAX_TIMER_MS + 1}`],
        [null, 'received null'],
        [true, 'received true'],
        [10n, 'received 10'],
        [{}, 'received an object (Object)'],
      ]
      for (const [value, received] of cases) {
        rejects(() => resolveOne({ ...base, [name]: value }), name, received)
      }
    })
  }

  test('extendIntervalMs must be less than lifetimeMs', () => {
    rejects(
      () => resolveOne({ lifetimeMs: 1000, extendIntervalMs: 1000 }),
      'extendIntervalMs',
      'lifetimeMs (1000)',
      'received 1000',
    )
    rejects(
      () => resolveOne({ lifetimeMs: 1000, extendIntervalMs: 1001 }),
      'extendIntervalMs',
      'received 1001',
    )
    // Locker default interval against a shorter call lifetime.
    rejects(
      () => resolveLockOptions([{ extendIntervalMs: 1000 }, { lifetimeMs: 500 }]),
      'extendIntervalMs',
      'received 1000',
    )
    assert.equal(resolveOne({ lifetimeMs: 1000, extendIntervalMs: 999 }).extendIntervalMs, 999)
  })

  test('lifetimeMs must be at least 10', () => {
    rejects(() => resolveOne({ lifetimeMs: 9 }), 'lifetimeMs', 'received 9')
    rejects(() => resolveOne({ lifetimeMs: 1 }), 'lifetimeMs', 'received 1')
    assert.equal(resolveOne({ lifetimeMs: 10 }).lifetimeMs, 10)
  })

  test('retryTimeoutMs: negative, fractional, non-numeric and too large are rejected', () => {
    const cases: [unknown, string][] = [
      [-1, 'received -1'],
      [1.5, 'received 1.5'],
      [Number.NaN, 'received NaN'],
      [Number.POSITIVE_INFINITY, 'received Infinity'],
      ['100', 'received "100"'],
      [MAX_TIMER_MS + 1, `received ${MAX_TIMER_MS + 1}`],
    ]
    for (const [value, received] of cases) {
      rejects(() => resolveOne({ retryTimeoutMs: value }), 'retryTimeoutMs', received)
    }
  })

  test('replicas: an integer >= 0; replicaTimeoutMs defaults to min(lifetimeMs / 4, 1000)', () => {
    assert.equal(resolveOne({ replicas: 2 }).replicas, 2)
    assert.equal(resolveOne({ lifetimeMs: 400 }).replicaTimeoutMs, 100)
    assert.equal(resolveOne({ lifetimeMs: 10 }).replicaTimeoutMs, 2)
    assert.equal(resolveOne({ lifetimeMs: 60_000 }).replicaTimeoutMs, 1000)
    assert.equal(resolveLockOptions([{ replicaTimeoutMs: 300 }, { replicas: 1 }]).replicaTimeoutMs, 300)
    for (const [value, received] of [
      [-1, 'received -1'],
      [1.5, 'received 1.5'],
      [Number.NaN, 'received NaN'],
      ['1', 'received "1"'],
      [null, 'received null'],
    ] as const) {
      rejects(() => resolveOne({ replicas: value }), 'replicas', 'integer >= 0', received)
    }
    for (const [value, received] of [
      [0, 'received 0'],
      [-5, 'received -5'],
      [2.5, 'received 2.5'],
      ['100', 'received "100"'],
    ] as const) {
      rejects(() => resolveOne({ replicaTimeoutMs: value }), 'replicaTimeoutMs', received)
    }
    rejects(
      () => resolveOne({ lifetimeMs: 1000, replicaTimeoutMs: 1000 }),
      'replicaTimeoutMs',
      'less than lifetimeMs (1000)',
      'received 1000',
    )
    for (const list of [ACQUIRE_OPTION_NAMES, LOCKER_OPTION_NAMES, FROM_URL_OPTION_NAMES]) {
      assert.ok(list.includes('replicas') && list.includes('replicaTimeoutMs'))
    }
    rejects(() => new Locker(fakeClient, { replicas: -1 }), 'replicas', 'received -1')
  })

  test('fencing: off by default, a boolean per Locker or per call', () => {
    assert.equal(DEFAULTS.fencing, false)
    assert.equal(resolveLockOptions([]).fencing, false)
    assert.equal(resolveLockOptions([{ fencing: true }]).fencing, true)
    assert.equal(resolveLockOptions([{ fencing: true }, { fencing: false }]).fencing, false)
    for (const [value, received] of [
      ['yes', 'received "yes"'],
      [1, 'received 1'],
      [null, 'received null'],
    ] as const) {
      rejects(() => resolveLockOptions([{ fencing: value as unknown as boolean }]), 'fencing', received)
    }
    for (const list of [ACQUIRE_OPTION_NAMES, LOCKER_OPTION_NAMES, FROM_URL_OPTION_NAMES]) {
      assert.ok(list.includes('fencing'))
    }
  })

  test('the option checked first in a layer stack is the resolved one, not a shadowed one', () => {
    // A bad Locker default overridden by a good call value is fine.
    assert.equal(resolveLockOptions([{ lifetimeMs: -5 }, { lifetimeMs: 100 }]).lifetimeMs, 100)
  })
})

describe('checkOptionNames', () => {
  test('accepts undefined and known names', () => {
    checkOptionNames(undefined, LOCKER_OPTION_NAMES, 'Locker')
    checkOptionNames({ prefix: 'p:', lifetimeMs: 5 }, LOCKER_OPTION_NAMES, 'Locker')
    checkOptionNames({ signal: new AbortController().signal }, ACQUIRE_OPTION_NAMES, 'acquire')
    checkOptionNames({ connectTimeoutMs: 5 }, FROM_URL_OPTION_NAMES, 'fromUrl')
  })

  test('rejects an unknown name such as a typo', () => {
    rejects(
      () => checkOptionNames({ lifetime: 1000 }, LOCKER_OPTION_NAMES, 'Locker'),
      'lifetime',
      'unknown Locker option "lifetime"',
      'lifetimeMs',
    )
    rejects(() => checkOptionNames({ prefix: 'x' }, ACQUIRE_OPTION_NAMES, 'acquire'), 'prefix', 'acquire')
    rejects(
      () => checkOptionNames({ signal: undefined }, LOCKER_OPTION_NAMES, 'Locker'),
      'signal',
      '"signal"',
    )
  })

  test('rejects options that are not a plain object', () => {
    for (const [value, received] of [
      [null, 'received null'],
      [5, 'received 5'],
      ['x', 'received "x"'],
      [[], 'received an array of 0'],
    ] as const) {
      rejects(() => checkOptionNames(value, LOCKER_OPTION_NAMES, 'Locker'), 'options', received)
    }
  })

  test('the Locker constructor checks option names and values before touching the client', () => {
    rejects(() => new Locker(fakeClient, { lifetime: 1000 } as never), 'lifetime')
    rejects(() => new Locker(fakeClient, { lifetimeMs: 0 }), 'lifetimeMs', 'received 0')
    rejects(() => new Locker(fakeClient, { prefix: 5 } as never), 'prefix', 'received 5')
  })
})

describe('resolveKeys', () => {
  test('a string or an array, prefix applied', () => {
    assert.deepEqual(resolveKeys('a', ''), ['a'])
    assert.deepEqual(resolveKeys('a', 'app:'), ['app:a'])
    assert.deepEqual(resolveKeys(['a', 'b'], 'app:'), ['app:a', 'app:b'])
    assert.deepEqual(resolveKeys(['{t}a', '{t}b'], ''), ['{t}a', '{t}b'])
  })

  test('the input array is not modified', () => {
    const keys = ['a', 'b']
    const out = resolveKeys(keys, 'p:')
    assert.notEqual(out, keys)
    assert.deepEqual(keys, ['a', 'b'])
  })

  test('bad keys', () => {
    rejects(() => resolveKeys('', ''), 'keys', 'keys[0]', 'received ""')
    rejects(() => resolveKeys(5, ''), 'keys', 'received 5')
    rejects(() => resolveKeys(undefined, ''), 'keys', 'received undefined')
    rejects(() => resolveKeys(null, ''), 'keys', 'received null')
    rejects(() => resolveKeys({ 0: 'a' }, ''), 'keys', 'received an object (Object)')
    rejects(() => resolveKeys([], ''), 'keys', 'empty array', 'received []')
    rejects(() => resolveKeys(['a', 1], ''), 'keys', 'keys[1]', 'received 1')
    rejects(() => resolveKeys(['a', ''], 'p:'), 'keys', 'keys[1]', 'received ""')
    rejects(() => resolveKeys(['a', 'b', 'a'], ''), 'keys', 'distinct', '"a" appears twice')
  })
})

describe('resolvePrefix', () => {
  test('optional string', () => {
    assert.equal(resolvePrefix(undefined), '')
    assert.equal(resolvePrefix(''), '')
    assert.equal(resolvePrefix('app:'), 'app:')
    rejects(() => resolvePrefix(5), 'prefix', 'received 5')
    rejects(() => resolvePrefix(null), 'prefix', 'received null')
  })
})

describe('describe (value rendering in messages)', () => {
  test('renders values safely and briefly', () => {
    assert.equal(show('x'.repeat(61)), JSON.stringify(`${'x'.repeat(60)}…`))
    assert.equal(show('x'.repeat(60)), JSON.stringify('x'.repeat(60)))
    assert.equal(
      show(() => 1),
      'a function',
    )
    assert.equal(show(Object.create(null)), 'an object (null prototype)')
    assert.equal(show(new Map()), 'an object (Map)')
    assert.equal(show([1, 2]), 'an array of 2')
    assert.equal(show(-0), '0')
  })
})
