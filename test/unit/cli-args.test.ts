import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  MAX_DURATION_MS,
  MIN_LIFETIME_MS,
  parse,
  parseDuration,
  parseLimit,
  UsageError,
} from '../../src/cli/args.js'
import { heldText } from '../../src/cli/status.js'
import type { KeyInspection } from '../../src/types.js'

describe('CLI durations', () => {
  test('units and plain milliseconds', () => {
    assert.equal(parseDuration('wait', '500ms'), 500)
    assert.equal(parseDuration('wait', '30s'), 30_000)
    assert.equal(parseDuration('wait', '1.5s'), 1500)
    assert.equal(parseDuration('wait', '2m'), 120_000)
    assert.equal(parseDuration('wait', '1h'), 3_600_000)
    assert.equal(parseDuration('wait', '250'), 250)
    assert.equal(parseDuration('wait', '0'), 0)
  })

  test('anything else is a usage error naming the flag', () => {
    for (const bad of ['', 'soon', '-1s', '10 s', '1d', 's', '1e3']) {
      assert.throws(
        () => parseDuration('lifetime', bad),
        (err: unknown) => {
          return err instanceof UsageError && err.message.startsWith('--lifetime:')
        },
      )
    }
  })
})

describe('CLI duration bounds', () => {
  const usage = (pattern: RegExp) => (err: unknown) => err instanceof UsageError && pattern.test(err.message)

  test('--lifetime below the library minimum (10 ms) is reported by the flag', () => {
    assert.equal(MIN_LIFETIME_MS, 10)
    assert.equal(parseDuration('lifetime', '10', MIN_LIFETIME_MS), 10)
    assert.equal(parseDuration('lifetime', '9.5', MIN_LIFETIME_MS), 10)
    for (const bad of ['5', '0', '9', '0.009s', '9.4']) {
      assert.throws(
        () => parseDuration('lifetime', bad, MIN_LIFETIME_MS),
        (err: unknown) =>
          err instanceof UsageError && err.message === `--lifetime: must be at least 10ms; got '${bad}'`,
        bad,
      )
    }
  })

  test('a duration beyond the timer limit is reported by the flag', () => {
    assert.equal(parseDuration('grace', String(MAX_DURATION_MS)), MAX_DURATION_MS)
    for (const bad of ['600h', String(MAX_DURATION_MS + 1), '99999999999999999999']) {
      assert.throws(() => parseDuration('grace', bad), usage(/^--grace: must be at most 2147483647ms/), bad)
    }
  })
})

describe('CLI parse errors', () => {
  const messageOf = (fn: () => unknown): string => {
    try {
      fn()
    } catch (err) {
      assert.ok(err instanceof UsageError, String(err))
      return err.message
    }
    assert.fail('expected a UsageError')
  }
  const count = (text: string, ch: string) => text.split(ch).length - 1

  test('an unknown option is named, with balanced quotes', () => {
    const withPositionals = messageOf(() =>
      parse({
        args: ['--bogus'],
        strict: true,
        allowPositionals: true,
        options: { key: { type: 'string' } },
      }),
    )
    assert.equal(
      withPositionals,
      "unknown option '--bogus'; an argument that starts with '-' goes after '--'",
    )
    const without = messageOf(() =>
      parse({ args: ['-x'], strict: true, options: { key: { type: 'string' } } }),
    )
    assert.equal(without, "unknown option '-x'")
  })

  test('every parseArgs usage error has balanced quotes', () => {
    const options = { key: { type: 'string' }, quiet: { type: 'boolean' } } as const
    const cases = [
      () => parse({ args: ['--bogus'], strict: true, allowPositionals: true, options }),
      () => parse({ args: ['--bogus=1'], strict: true, allowPositionals: true, options }),
      () => parse({ args: ['-z'], strict: true, allowPositionals: true, options }),
      () => parse({ args: ['--bogus'], strict: true, options }),
      () => parse({ args: ['--key'], strict: true, options }),
      () => parse({ args: ['--quiet=yes'], strict: true, options }),
      () => parse({ args: ['stray'], strict: true, options }),
    ]
    for (const fn of cases) {
      const message = messageOf(fn)
      assert.equal(count(message, "'") % 2, 0, message)
      assert.equal(count(message, '"') % 2, 0, message)
    }
  })
})

describe('CLI --limit', () => {
  test('a whole number from 1 to 1000000', () => {
    assert.equal(parseLimit('1'), 1)
    assert.equal(parseLimit('2'), 2)
    assert.equal(parseLimit(' 5 '), 5)
    assert.equal(parseLimit('007'), 7)
    assert.equal(parseLimit('1000000'), 1_000_000)
  })

  test('anything else is a usage error naming --limit', () => {
    for (const bad of [
      '0',
      '00',
      '-1',
      '1.5',
      '1.0',
      'x',
      '',
      ' ',
      '2x',
      '1e3',
      '0x10',
      'Infinity',
      'NaN',
      '+3',
    ]) {
      assert.throws(
        () => parseLimit(bad),
        (err: unknown) => err instanceof UsageError && err.message.startsWith('--limit: '),
        JSON.stringify(bad),
      )
    }
    assert.throws(() => parseLimit('0'), { message: "--limit: must be at least 1; got '0'" })
    assert.throws(() => parseLimit('1000001'), { message: "--limit: must be at most 1000000; got '1000001'" })
  })
})

describe('CLI status line', () => {
  const state = (over: Partial<KeyInspection>): KeyInspection => ({
    key: 'k',
    isHeld: true,
    kind: 'exclusive',
    limit: null,
    holders: [{ remainingMs: 3200 }],
    token: null,
    remainingMs: 3200,
    fence: null,
    ...over,
  })

  test('says who holds the key, by kind', () => {
    assert.equal(
      heldText(state({ isHeld: false, kind: null, holders: [], remainingMs: null })),
      'free, trying',
    )
    assert.equal(heldText(state({})), 'held, 3.2 s left')
    assert.equal(
      heldText(
        state({ kind: 'semaphore', limit: 2, holders: [{ remainingMs: 900 }, { remainingMs: 3200 }] }),
      ),
      '2 of 2 permits held, 3.2 s left',
    )
    assert.equal(heldText(state({ kind: 'shared' })), 'held by 1 shared holder, 3.2 s left')
  })
})
