import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { newToken } from '../../src/internal/token.js'
import { ACQUIRE } from '../../src/scripts/index.js'

describe('newToken', () => {
  test('128 random bits as 22 base64url characters, never repeating', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 5000; i++) {
      const t = newToken()
      assert.match(t, /^[A-Za-z0-9_-]{22}$/)
      assert.equal(Buffer.from(t, 'base64url').length, 16)
      seen.add(t)
    }
    assert.equal(seen.size, 5000, 'tokens repeated across pool refills')
  })

  test("the acquire script marks only values of exactly a token's length", () => {
    assert.ok(ACQUIRE.source.includes(`#v == ${newToken().length}`))
  })
})
