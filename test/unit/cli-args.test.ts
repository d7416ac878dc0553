import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseDuration, UsageError } from '../../src/cli/args.js'

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
