import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  isStoredToken,
  newToken,
  STORED_TOKEN,
  TOKEN_LENGTH,
  TOKEN_PREFIX,
} from '../../src/internal/token.js'
import { ACQUIRE, INSPECT, withoutWaitingMark } from '../../src/scripts/index.js'

describe('newToken', () => {
  test('the version prefix and 128 random bits as 22 base64url characters, never repeating', () => {
    assert.equal(TOKEN_PREFIX, 'arl1.')
    assert.equal(TOKEN_LENGTH, 27)
    const seen = new Set<string>()
    for (let i = 0; i < 5000; i++) {
      const t = newToken()
      assert.match(t, /^arl1\.[A-Za-z0-9_-]{22}$/)
      assert.equal(t.length, TOKEN_LENGTH)
      assert.equal(Buffer.from(t.slice(TOKEN_PREFIX.length), 'base64url').length, 16)
      seen.add(t)
    }
    assert.equal(seen.size, 5000, 'tokens repeated across pool refills')
  })

  test('the stored format: a token, or a token and the waiting mark; nothing else', () => {
    const t = newToken()
    assert.ok(isStoredToken(t))
    assert.ok(isStoredToken(`${t}!`))
    assert.ok(STORED_TOKEN.test(`${t}!`))
    for (const foreign of [
      'A'.repeat(22), // 0.1.0's token
      `${'A'.repeat(22)}!`, // 0.1.0's marked token
      'A'.repeat(27), // a token's length, no prefix
      `${t}!!`,
      `${t}x`,
      t.slice(0, -1),
      `arl2.${t.slice(5)}`,
      `arl1.${'A'.repeat(21)}=`,
      `arl1.${'A'.repeat(21)}\n`,
      '',
    ]) {
      assert.equal(isStoredToken(foreign), false, JSON.stringify(foreign))
      assert.equal(withoutWaitingMark(foreign), foreign, JSON.stringify(foreign))
    }
  })

  test("the scripts mark only an unmarked value of a token's exact length and format", () => {
    // kindOf(v) checks the format (ours) before a token is marked; a marked one is left alone.
    assert.ok(ACQUIRE.source.includes(`n == ${newToken().length + 1}`))
    assert.ok(ACQUIRE.source.includes('not marked(v)'))
    assert.ok(ACQUIRE.source.includes("'^arl1%.[A-Za-z0-9_%-]+$'"))
    assert.ok(INSPECT.source.includes('kindOf(v)'))
  })
})
