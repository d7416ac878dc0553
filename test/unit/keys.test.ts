import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import calculateSlot from 'cluster-key-slot'
import fc from 'fast-check'
import { InvalidArgumentError } from '../../src/errors.js'
import { fenceKey, hashTag, isReserved, RESERVED, releaseChannel } from '../../src/internal/keys.js'
import { resolveKeys, resolvePrefix } from '../../src/options.js'

/**
 * The part of a key Redis Cluster hashes, transcribed from `keyHashSlot` in Redis's
 * cluster.c: the text between the first `{` and the first `}` after it, unless there
 * is no such `}` or the text is empty; then the whole key.
 */
function redisHashedPart(key: string): string {
  const s = key.indexOf('{')
  if (s === -1) return key
  const e = key.indexOf('}', s + 1)
  if (e === -1 || e === s + 1) return key
  return key.slice(s + 1, e)
}

/**
 * `cluster-key-slot` (1.1.x) follows Redis except after an empty `{}`: for `a{}b}` it
 * keeps scanning and hashes `b` where Redis hashes the whole key. Keys with that shape
 * are kept out of the slot comparisons below, where it serves as the reference.
 */
function oracleAgreesWithRedis(key: string): boolean {
  const s = key.indexOf('{')
  return !(s !== -1 && key[s + 1] === '}' && key.indexOf('}', s + 2) !== -1)
}

function slot(key: string): number {
  assert.ok(
    oracleAgreesWithRedis(key),
    `cluster-key-slot is not a reliable oracle for ${JSON.stringify(key)}`,
  )
  return calculateSlot(key)
}

function assertSameSlot(key: string): void {
  const s = slot(key)
  assert.equal(slot(fenceKey(key)), s, `fenceKey(${JSON.stringify(key)}) = ${fenceKey(key)}`)
  assert.equal(
    slot(releaseChannel(key)),
    s,
    `releaseChannel(${JSON.stringify(key)}) = ${releaseChannel(key)}`,
  )
}

/** One character: mostly braces and a few letters, so tags of every shape come up; sometimes any code point. */
const keyChar = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('{', '}') },
  { weight: 4, arbitrary: fc.constantFrom('a', 'b', ':', '-', ' ') },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) },
)
const anyKey = fc.string({ unit: keyChar, minLength: 1, maxLength: 24 })
const keyWithoutClose = fc
  .string({ unit: keyChar, minLength: 1, maxLength: 24 })
  .map((k) => k.replaceAll('}', ''))
  .filter((k) => k.length > 0) // empty keys are rejected before any name is built
const keyWithTag = fc
  .tuple(
    fc.string({ unit: keyChar, maxLength: 8 }).map((s) => s.replaceAll('{', '')),
    fc.string({ unit: keyChar, minLength: 1, maxLength: 8 }).map((s) => s.replaceAll('}', '') || 't'),
    fc.string({ unit: keyChar, maxLength: 8 }),
  )
  .map(([head, tag, tail]) => `${head}{${tag}}${tail}`)
  .filter(oracleAgreesWithRedis)

describe('hashTag', () => {
  test('follows the Redis Cluster rules', () => {
    const cases: [string, string | undefined][] = [
      ['user1000', undefined],
      ['{user1000}.following', 'user1000'],
      ['{user1000}.followers', 'user1000'],
      ['foo{}{bar}', undefined], // empty tag: the whole key is hashed
      ['foo{{bar}}zap', '{bar'], // first { then the first } after it
      ['foo{bar}{zap}', 'bar'], // only the first tag counts
      ['{}', undefined],
      ['{', undefined],
      ['a{b', undefined], // { without }
      ['}', undefined],
      ['}{', undefined],
      ['a}b{c}', 'c'], // a } before the first { is ordinary text
      ['{a}', 'a'],
      ['x{ }y', ' '],
      ['{ü€😀}', 'ü€😀'],
    ]
    for (const [key, tag] of cases) assert.equal(hashTag(key), tag, key)
  })

  test('property: hashTag picks what Redis hashes', () => {
    fc.assert(
      fc.property(anyKey, (key) => {
        assert.equal(hashTag(key) ?? key, redisHashedPart(key))
      }),
      { numRuns: 2000 },
    )
  })

  test('property: the key hashes to the slot of its tag (checked with cluster-key-slot)', () => {
    fc.assert(
      fc.property(anyKey.filter(oracleAgreesWithRedis), (key) => {
        const tag = hashTag(key)
        if (tag !== undefined) assert.equal(slot(key), calculateSlot(tag))
      }),
      { numRuns: 2000 },
    )
  })
})

/** Both companions of `key`. */
function companions(key: string): [string, string] {
  return [fenceKey(key), releaseChannel(key)]
}

/** A prefix as an application would pick one: no braces, or a complete hash tag. */
const plainPrefix = fc.string({ unit: fc.constantFrom('a', 'p', ':', '-', '.', '/', 'ü'), maxLength: 8 })
const prefix = fc.oneof(
  plainPrefix,
  fc
    .tuple(
      plainPrefix,
      plainPrefix.filter((t) => t.length > 0),
    )
    .map(([p, t]) => `${p}{${t}}:`),
)

describe('fenceKey and releaseChannel', () => {
  test('names: the lock key (its part before any "{"), the reserved namespace, the kind, the key as tag', () => {
    assert.equal(RESERVED, '\u0000arl:')
    assert.equal(fenceKey('job'), 'job\u0000arl:fence:{job}')
    assert.equal(releaseChannel('job'), 'job\u0000arl:released:{job}')
    assert.equal(fenceKey('app:x'), 'app:x\u0000arl:fence:{app:x}')
    assert.equal(releaseChannel('app:x'), 'app:x\u0000arl:released:{app:x}')
    assert.equal(fenceKey('{t}job'), '{t}job\u0000arl:fence')
    assert.equal(releaseChannel('{t}job'), '{t}job\u0000arl:released')
    assert.equal(fenceKey('app:{x}'), 'app:{x}\u0000arl:fence')
    assert.equal(fenceKey('a{b'), 'a\u0000arl:fence:{a{b}')
    assert.notEqual(fenceKey('job'), releaseChannel('job'))
  })

  test('every companion starts with the prefix of its key (an ACL such as ~app:* &app:* covers them)', () => {
    for (const key of ['x', '{x}', 'x{y}z', 'a{b', 'a}b', 'a{}b', 'orders:42', 'ü€😀']) {
      for (const p of ['app:', '', '{app}:', 'my.app/']) {
        for (const c of companions(p + key)) assert.ok(c.startsWith(p), `${JSON.stringify(c)} under ${p}`)
      }
    }
  })

  test("property: companions start with the prefix and share the key's slot, whatever the prefix", () => {
    fc.assert(
      fc.property(prefix, keyWithoutClose, (p, key) => {
        const full = p + key
        fc.pre(oracleAgreesWithRedis(full))
        for (const c of companions(full)) assert.ok(c.startsWith(p), JSON.stringify(c))
        assertSameSlot(full)
      }),
      { numRuns: 2000 },
    )
    fc.assert(
      fc.property(prefix, keyWithTag, (p, key) => {
        const full = p + key
        for (const c of companions(full)) assert.ok(c.startsWith(p), JSON.stringify(c))
        assertSameSlot(full)
      }),
      { numRuns: 2000 },
    )
  })

  test("a prefix with a hash tag: the companions' first tag is the prefix's, as the key's", () => {
    for (const key of ['x', 'a{b}', 'a{b', '{y}']) {
      const full = `{app}:${key}`
      assert.equal(hashTag(full), 'app')
      for (const c of companions(full)) assert.equal(hashTag(c), 'app', c)
    }
  })

  test('the names depend on the full key only (a Locker with another prefix, the CLI, find the same)', () => {
    // resolveKeys('x', 'app:') and resolveKeys('app:x', '') name the same key.
    assert.deepEqual(resolveKeys('x', 'app:'), resolveKeys('app:x', ''))
    assert.equal(fenceKey(resolveKeys('x', 'app:')[0] as string), fenceKey('app:x'))
  })

  test('same slot as the key: no tag', () => {
    for (const key of ['job', 'orders:42', 'a', 'ü€😀', 'with space']) assertSameSlot(key)
  })

  test('same slot as the key: with a tag', () => {
    for (const key of ['{user1000}.following', 'x{t}y', 'foo{bar}{zap}', 'foo{{bar}}zap', 'a}b{c}']) {
      assertSameSlot(key)
    }
  })

  test('same slot as the key: with a { but no }', () => {
    for (const key of ['{', 'a{b', '{{', 'a{b{c']) assertSameSlot(key)
  })

  test('a key with an empty {} tag and no other } keeps a plain suffix (documented)', () => {
    assert.equal(fenceKey('a{}b'), 'a{}b\u0000arl:fence')
    assert.equal(releaseChannel('a{}b'), 'a{}b\u0000arl:released')
  })

  // Known limitation (documented in keys.ts and the README's Redis Cluster section):
  // a key that contains } without a valid tag cannot be wrapped in braces, so its
  // companions get a plain suffix and hash to another slot than the key. Fine on a
  // single node; the cluster backend rejects such keys before sending anything
  // (cluster.test.ts). This asserts the current behaviour so a change shows up here.
  test('known limitation: a key with an empty {} tag gets companions in another slot (documented)', () => {
    for (const key of ['a{}b', '{}', 'foo{}{bar']) {
      assert.equal(hashTag(key), undefined, key)
      assert.equal(fenceKey(key), `${key}${RESERVED}fence`)
      assert.equal(releaseChannel(key), `${key}${RESERVED}released`)
      assert.notEqual(slot(fenceKey(key)), slot(key), `fenceKey(${JSON.stringify(key)})`)
      assert.notEqual(slot(releaseChannel(key)), slot(key), `releaseChannel(${JSON.stringify(key)})`)
    }
  })

  test('property: same slot for keys without }', () => {
    fc.assert(
      fc.property(keyWithoutClose, (key) => assertSameSlot(key)),
      { numRuns: 2000 },
    )
  })

  test('property: same slot for keys with a valid tag', () => {
    fc.assert(
      fc.property(keyWithTag, (key) => {
        assert.notEqual(hashTag(key), undefined)
        assertSameSlot(key)
      }),
      { numRuns: 2000 },
    )
  })

  test('property: companions of distinct keys are distinct, across naming schemes', () => {
    const key = fc.oneof(anyKey, keyWithTag, keyWithoutClose)
    fc.assert(
      fc.property(key, key, (a, b) => {
        fc.pre(a !== b)
        assert.notEqual(fenceKey(a), fenceKey(b))
        assert.notEqual(releaseChannel(a), releaseChannel(b))
      }),
      { numRuns: 3000 },
    )
    // Once the same names (fixed): a key and the same text in braces.
    assert.notEqual(fenceKey('a'), fenceKey('{a}'))
    assert.notEqual(releaseChannel('a'), releaseChannel('{a}'))
    // The text after the namespace cannot be forged by a key either.
    assert.notEqual(fenceKey('x'), fenceKey('x{x}'))
  })

  test('property: no lock key is a companion: every companion is in the reserved namespace, which keys may not use', () => {
    fc.assert(
      fc.property(prefix, anyKey, (p, key) => {
        const full = p + key
        for (const c of companions(full)) {
          assert.ok(isReserved(c))
          assert.throws(() => resolveKeys(c, ''), InvalidArgumentError)
        }
      }),
      { numRuns: 1000 },
    )
  })
})

describe('the reserved namespace', () => {
  const rejects = (fn: () => unknown, argument: string, ...parts: string[]) =>
    assert.throws(fn, (err) => {
      assert.ok(err instanceof InvalidArgumentError, String(err))
      assert.equal(err.code, 'ERR_LOCK_INVALID_ARGUMENT')
      assert.equal(err.argument, argument)
      for (const part of parts) assert.ok(err.message.includes(part), `${err.message} lacks ${part}`)
      return true
    })

  test('a lock key in it is rejected, naming the namespace: the key itself, in an array, or made with the prefix', () => {
    const named = JSON.stringify(RESERVED)
    rejects(() => resolveKeys(fenceKey('y'), ''), 'keys', named, 'reserved', 'keys[0]')
    rejects(() => resolveKeys(['a', releaseChannel('y')], 'p:'), 'keys', named, 'keys[1]')
    rejects(() => resolveKeys(`x${RESERVED}fence`, 'app:'), 'keys', named)
    // The prefix ends with part of it, the key starts with the rest.
    rejects(() => resolveKeys('arl:fence', 'app:\u0000'), 'keys', named)
    rejects(() => resolveKeys(['arl:x'], 'app:\u0000'), 'keys', named)
    rejects(() => resolvePrefix(`app:${RESERVED}`), 'prefix', named)
    // Near misses are ordinary keys.
    assert.deepEqual(resolveKeys(['y:fence', '{y}:fence', 'arl:x', 'a\u0000b'], ''), [
      'y:fence',
      '{y}:fence',
      'arl:x',
      'a\u0000b',
    ])
    assert.equal(resolvePrefix('app:\u0000'), 'app:\u0000')
  })

  test("the old layout's names are ordinary keys now and collide with nothing", () => {
    // 0.1.0 stored the fence mark of y at {y}:fence, which a lock on "{y}:fence" overwrote.
    for (const key of ['{y}:fence', '{y}:released']) {
      assert.deepEqual(resolveKeys(key, ''), [key])
      assert.notEqual(fenceKey('y'), key)
      assert.notEqual(fenceKey(key), fenceKey('y'))
    }
  })
})
