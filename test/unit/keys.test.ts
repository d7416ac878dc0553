import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import calculateSlot from 'cluster-key-slot'
import fc from 'fast-check'
import { fenceKey, hashTag, releaseChannel } from '../../src/internal/keys.js'

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

describe('fenceKey and releaseChannel', () => {
  test('names', () => {
    assert.equal(fenceKey('job'), '{job}:fence')
    assert.equal(releaseChannel('job'), '{job}:released')
    assert.equal(fenceKey('{t}job'), '{t}job:fence')
    assert.equal(releaseChannel('{t}job'), '{t}job:released')
    assert.equal(fenceKey('a{b'), '{a{b}:fence')
    assert.notEqual(fenceKey('job'), releaseChannel('job'))
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
    assert.equal(fenceKey('a{}b'), 'a{}b:fence')
    assert.equal(releaseChannel('a{}b'), 'a{}b:released')
  })

  // Known limitation (documented in keys.ts and the README's Redis Cluster section):
  // a key that contains } without a valid tag cannot be wrapped in braces, so its
  // companions get a plain suffix and hash to another slot than the key. Fine on a
  // single node; the cluster backend rejects such keys before sending anything
  // (cluster.test.ts). This asserts the current behaviour so a change shows up here.
  test('known limitation: a key with an empty {} tag gets companions in another slot (documented)', () => {
    for (const key of ['a{}b', '{}', 'foo{}{bar']) {
      assert.equal(hashTag(key), undefined, key)
      assert.equal(fenceKey(key), `${key}:fence`)
      assert.equal(releaseChannel(key), `${key}:released`)
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

  test('property: companions of distinct keys are distinct within each naming scheme', () => {
    const wrapped = keyWithoutClose.filter((k) => hashTag(k) === undefined)
    for (const arb of [wrapped, keyWithTag]) {
      fc.assert(
        fc.property(arb, arb, (a, b) => {
          fc.pre(a !== b)
          assert.notEqual(fenceKey(a), fenceKey(b))
          assert.notEqual(releaseChannel(a), releaseChannel(b))
        }),
        { numRuns: 1000 },
      )
    }
  })

  test('known overlap: a key and the same text in braces share companions', () => {
    // Harmless for safety (a shared fence mark stays monotonic for both keys; a shared
    // channel only causes spurious wake-ups), but worth knowing.
    assert.equal(fenceKey('a'), fenceKey('{a}'))
    assert.equal(releaseChannel('a'), releaseChannel('{a}'))
  })
})
