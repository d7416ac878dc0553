import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MAX_DURATION_MS, MIN_LIFETIME_MS, parse, parseDuration, UsageError } from '../../src/cli/args.js'

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
