import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SubscriberCore, type SubscriberEvents } from '../../src/adapters/subscriber-core.js'

function fake(options: { resubscribe?: boolean } = {}) {
  const sent: string[] = []
  let events!: SubscriberEvents
  let closedWith: readonly string[] | undefined
  const core = new SubscriberCore((e) => {
    events = e
    return {
      subscribe: async (c) => void sent.push(`sub ${c}`),
      unsubscribe: async (c) => void sent.push(`unsub ${c}`),
      close: async (channels) => {
        closedWith = channels
      },
    }
  }, options)
  const messages: string[] = []
  let reconnects = 0
  core.onMessage((c, m) => messages.push(`${c}=${m}`))
  core.onReconnect(() => reconnects++)
  return {
    core,
    sent,
    events,
    messages,
    get reconnects() {
      return reconnects
    },
    get closedWith() {
      return closedWith
    },
  }
}

const tick = () => new Promise((r) => setImmediate(r))

describe('SubscriberCore', () => {
  test('handlers get messages; the first ready is the connect, later ones are reconnects', async () => {
    const f = fake()
    await f.core.subscribe('a')
    f.events.message('a', 'x')
    assert.deepEqual(f.messages, ['a=x'])
    f.events.ready()
    assert.equal(f.reconnects, 0)
    f.events.ready()
    assert.equal(f.reconnects, 1)
  })

  test('maybeMissed tells the waiters only while something is subscribed', async () => {
    const f = fake()
    f.events.maybeMissed()
    assert.equal(f.reconnects, 0)
    await f.core.subscribe('a')
    f.events.maybeMissed()
    assert.equal(f.reconnects, 1)
    await f.core.unsubscribe('a')
    f.events.maybeMissed()
    assert.equal(f.reconnects, 1)
  })

  test('with resubscribe, a reconnect re-sends every channel before the waiters are told', async () => {
    const f = fake({ resubscribe: true })
    f.events.ready()
    await f.core.subscribe('a')
    await f.core.subscribe('b')
    f.sent.length = 0
    f.events.ready()
    assert.equal(f.reconnects, 0, 'not before the channels are back')
    await tick()
    assert.deepEqual(f.sent, ['sub a', 'sub b'])
    assert.equal(f.reconnects, 1)
  })

  test('close hands the driver the channels still subscribed, then is silent', async () => {
    const f = fake()
    await f.core.subscribe('a')
    await f.core.subscribe('b')
    await f.core.unsubscribe('a')
    await f.core.close()
    assert.deepEqual(f.closedWith, ['b'])
    f.events.message('b', 'late')
    f.events.ready()
    f.events.ready()
    assert.deepEqual(f.messages, [])
    assert.equal(f.reconnects, 0)
    await f.core.close() // idempotent
  })
})
