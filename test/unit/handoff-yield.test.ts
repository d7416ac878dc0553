import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { HandoffYield, MAX_YIELD_MS } from '../../src/internal/handoff-yield.js'
import { FakeClock } from '../helpers/fake-clock.js'

describe('HandoffYield', () => {
  test('yields a key for two round trips plus 1 ms, then not at all', () => {
    const clock = new FakeClock(100)
    const y = new HandoffYield(clock)
    assert.equal(y.left('k'), 0)
    y.grant(['k', 'j'], 0.5)
    assert.equal(y.left('k'), 2)
    assert.equal(y.left('j'), 2)
    clock.jump(1.5)
    assert.equal(y.left('k'), 0.5)
    clock.jump(1)
    assert.equal(y.left('k'), 0)
    assert.equal(y.left('other'), 0)
  })

  test('never yields longer than MAX_YIELD_MS, however slow the release was', () => {
    const clock = new FakeClock(0)
    const y = new HandoffYield(clock)
    y.grant(['k'], 5000)
    assert.equal(y.left('k'), MAX_YIELD_MS)
  })

  test('expired entries are swept so many distinct keys do not pile up', () => {
    const clock = new FakeClock(0)
    const y = new HandoffYield(clock)
    for (let i = 0; i < 1500; i++) y.grant([`k${i}`], 1)
    clock.jump(100)
    y.grant(['fresh'], 1)
    assert.equal(y.left('fresh'), 3)
    for (let i = 0; i < 1500; i++) assert.equal(y.left(`k${i}`), 0)
  })
})
