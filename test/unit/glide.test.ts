import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ClosingError, ConnectionError, RequestError, TimeoutError } from '@valkey/valkey-glide'
import calculateSlot from 'cluster-key-slot'
import { adapterFor } from '../../src/adapters/detect.js'
import { GlideAdapter, isGlide, keyInSlot } from '../../src/adapters/glide.js'
import { InvalidArgumentError } from '../../src/index.js'

interface Sent {
  args: string[]
  options: unknown
}

/** A fake GlideClient (or, with `cluster`, GlideClusterClient): records commands, answers with `reply`. */
function fakeGlide(
  options: {
    cluster?: boolean
    config?: object
    dynamic?: boolean
    reply?: (args: string[]) => unknown
  } = {},
) {
  const sent: Sent[] = []
  const reply = options.reply ?? (() => 'OK')
  const client: Record<string, unknown> = {
    config: options.config ?? { addresses: [{ host: '127.0.0.1', port: 1 }] },
    customCommand: async (args: string[], opts: unknown) => {
      sent.push({ args, options: opts })
      return reply(args)
    },
    invokeScript: async () => null,
    close: () => {},
  }
  if (options.cluster) client.invokeScriptWithRoute = async () => null
  if (options.dynamic !== false) {
    if (options.cluster) client.ssubscribe = async () => {}
    else client.subscribe = async () => {}
  }
  return { client, sent }
}

describe('GLIDE adapter: detection', () => {
  test('a GlideClient shape is GLIDE, single node; a GlideClusterClient shape is a cluster', () => {
    const single = adapterFor(fakeGlide().client, false)
    assert.ok(single instanceof GlideAdapter)
    assert.equal(single.library, 'valkey-glide')
    assert.equal(single.topology, 'single')
    assert.equal(typeof single.wait, 'function')
    assert.equal(typeof single.connectionId, 'function')
    assert.equal(single.slotMaster, undefined)

    const cluster = adapterFor(fakeGlide({ cluster: true }).client, false)
    assert.equal(cluster.library, 'valkey-glide')
    assert.equal(cluster.topology, 'cluster')
    assert.equal(typeof cluster.slotMaster, 'function')
    assert.equal(cluster.wait, undefined)
  })

  test('other clients and values are not GLIDE', () => {
    for (const value of [null, undefined, 1, 'redis', {}, { customCommand() {} }])
      assert.equal(isGlide(value), false)
    // An ioredis-like and a node-redis-like shape.
    assert.equal(isGlide({ evalsha() {}, duplicate() {}, call() {}, status: 'ready' }), false)
    assert.equal(isGlide({ evalSha() {}, sendCommand() {}, duplicate() {}, isOpen: true }), false)
  })

  test('a client older than 2.3 (no dynamic subscribe) is refused with InvalidArgumentError', () => {
    for (const cluster of [false, true]) {
      const { client } = fakeGlide({ cluster, dynamic: false })
      assert.throws(
        () => adapterFor(client, false),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.code === 'ERR_LOCK_INVALID_ARGUMENT' &&
          err.argument === 'client' &&
          /2\.3 or later/.test(err.message) &&
          err.message.includes(cluster ? 'ssubscribe()' : 'subscribe()'),
      )
    }
  })

  test('a RESP2 client is refused with InvalidArgumentError', () => {
    const { client } = fakeGlide({ config: { addresses: [], protocol: 1 } }) // ProtocolVersion.RESP2
    assert.throws(
      () => adapterFor(client, false),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.argument === 'client' && /RESP3/.test(err.message),
    )
    // RESP3 (0) or the default (unset) is fine.
    adapterFor(fakeGlide({ config: { addresses: [], protocol: 0 } }).client, false)
  })
})

describe('GLIDE adapter: commands', () => {
  test('EVALSHA, EVAL, SET NX, WAIT and CLIENT ID go through customCommand with the string decoder', async () => {
    const { client, sent } = fakeGlide({
      reply: (args) => (args[0] === 'WAIT' ? 1 : args[0] === 'SET' ? null : 'x'),
    })
    const adapter = adapterFor(client, false)
    await adapter.evalsha('abc', ['k1', 'k2'], ['a'])
    await adapter.eval('return 1', ['k1'], [])
    assert.equal(await adapter.setNx?.('k', 'v', 500), false)
    assert.equal(await adapter.wait?.(2, 300), 1)
    await adapter.connectionId?.()
    assert.deepEqual(
      sent.map((s) => s.args),
      [
        ['EVALSHA', 'abc', '2', 'k1', 'k2', 'a'],
        ['EVAL', 'return 1', '1', 'k1'],
        ['SET', 'k', 'v', 'PX', '500', 'NX'],
        ['WAIT', '2', '300'],
        ['CLIENT', 'ID'],
      ],
    )
    for (const s of sent) assert.deepEqual(s.options, { decoder: 1 })
  })

  test("GLIDE's NoScriptError becomes an error whose message starts with NOSCRIPT, GLIDE's error as cause", async () => {
    const glideError = new RequestError(
      'An error was signalled by the server: - NoScriptError: No matching script. Please use EVAL.',
    )
    const { client } = fakeGlide({
      reply: () => {
        throw glideError
      },
    })
    const adapter = adapterFor(client, false)
    const err = await adapter.evalsha('abc', ['k'], []).then(
      () => assert.fail('resolved'),
      (e: unknown) => e,
    )
    assert.ok(err instanceof Error && err.message.startsWith('NOSCRIPT'), String(err))
    assert.equal(err.cause, glideError)
    assert.equal(adapter.isReplyError(err), true)
    // Other errors pass through as they are.
    const other = new RequestError('WRONGTYPE: Operation against a key holding the wrong kind of value')
    const { client: c2 } = fakeGlide({
      reply: () => {
        throw other
      },
    })
    await assert.rejects(adapterFor(c2, false).evalsha('abc', ['k'], []), (e) => e === other)
  })

  test('only server error replies are reply errors, not connection, timeout or closing errors', () => {
    const adapter = adapterFor(fakeGlide().client, false)
    const replies = [
      new RequestError('An error was signalled by the server: - ResponseError: unknown command'),
      new RequestError('WRONGTYPE: Operation against a key holding the wrong kind of value'),
      new RequestError('NOREPLICAS: Not enough good replicas to write.'),
      new RequestError(
        "An error was signalled by the server: - PermissionDenied: no permissions to run 'client|id'",
      ),
    ]
    for (const err of replies) assert.equal(adapter.isReplyError(err), true, err.message)
    const others = [
      new RequestError(
        'Standalone connect failed - IoError: Received error for address `127.0.0.1:1`: timed out\n',
      ),
      new ConnectionError('An error was signalled by the server: - ResponseError: looks like one'),
      new TimeoutError('timed out'),
      new ClosingError('Unable to execute requests; the client is closed. Please create a new client.'),
      new Error('WRONGTYPE: not from GLIDE'),
      'WRONGTYPE',
      undefined,
    ]
    for (const err of others) assert.equal(adapter.isReplyError(err), false, String(err))
  })

  test('a slot master adapter routes every command to a key of that slot, and is the same for the same slot', async () => {
    const { client, sent } = fakeGlide({ cluster: true, reply: (args) => (args[0] === 'WAIT' ? 1 : 'OK') })
    const adapter = adapterFor(client, false)
    const slotMaster = adapter.slotMaster?.bind(adapter)
    assert.ok(slotMaster)
    const master = await slotMaster(5798)
    assert.equal(await slotMaster(5798), master)
    assert.notEqual(await slotMaster(5799), master)
    assert.equal(typeof master.wait, 'function')
    assert.equal(master.slotMaster, undefined)
    await master.eval('return 1', ['k'], [])
    assert.equal(await master.wait?.(1, 100), 1)
    await master.connectionId?.()
    assert.equal(sent.length, 3)
    for (const s of sent) {
      const route = (s.options as { route: { type: string; key: string } }).route
      assert.equal(route.type, 'primarySlotKey')
      assert.equal(calculateSlot(route.key), 5798)
    }
    // The client's own routing (by first key) for the rest.
    await adapter.evalsha('abc', ['k'], [])
    assert.deepEqual(sent.at(-1)?.options, { decoder: 1 })
  })

  test('keyInSlot finds a key for every one of the 16384 slots', () => {
    for (let slot = 0; slot < 16384; slot++) assert.equal(calculateSlot(keyInSlot(slot)), slot)
  })

  test('the subscriber is a client of its own, made from the caller’s configuration; reconnects are reported', async () => {
    const log: string[] = []
    let callback: ((msg: { channel: string; message: string }) => void) | undefined
    let created: Record<string, unknown> | undefined
    const active = new Set<string>()
    class FakeGlideClient {
      config = {
        addresses: [{ host: 'h', port: 1 }],
        requestTimeout: 777,
        pubsubSubscriptions: { theirs: true },
      }
      static async createClient(config: Record<string, unknown>) {
        created = config
        callback = (config.pubsubSubscriptions as { callback: typeof callback }).callback
        const sub = new FakeGlideClient()
        return Object.assign(sub, {
          subscribe: async (channels: string[]) => {
            log.push(`subscribe ${channels}`)
            for (const c of channels) active.add(c)
          },
          unsubscribe: async (channels: string[]) => void log.push(`unsubscribe ${channels}`),
          unsubscribeLazy: async (channels: string[] | null) => void log.push(`unsubscribeLazy ${channels}`),
          getSubscriptions: async () => ({ actualSubscriptions: { 0: new Set(active) } }),
          close: () => void log.push('close'),
        })
      }
      customCommand = async () => 'OK'
      invokeScript = async () => null
      subscribe = async () => {}
      close = () => void log.push('caller closed')
    }
    const adapter = adapterFor(new FakeGlideClient(), false)
    const sub = adapter.createSubscriber()
    const messages: string[] = []
    let reconnects = 0
    sub.onMessage((c, m) => messages.push(`${c}=${m}`))
    sub.onReconnect(() => reconnects++)
    await sub.subscribe('ch')
    assert.equal(created?.requestTimeout, 777, "the caller's configuration")
    assert.equal(created?.defaultDecoder, 1, 'strings')
    assert.deepEqual(created?.pubsubSubscriptions, { channelsAndPatterns: {}, callback }, 'ours, not theirs')
    callback?.({ channel: 'ch', message: 'hello' })
    assert.deepEqual(messages, ['ch=hello'])
    // GLIDE lost the subscription (a reconnect) and re-subscribed it: reported once it is back.
    active.clear()
    await new Promise((r) => setTimeout(r, 450))
    assert.equal(reconnects, 0, 'not while the channel is missing')
    active.add('ch')
    await new Promise((r) => setTimeout(r, 450))
    assert.equal(reconnects, 1)
    await sub.unsubscribe('ch')
    await sub.close()
    assert.deepEqual(log, ['subscribe ch', 'unsubscribe ch', 'unsubscribeLazy null', 'close'])
  })

  test('a reconnect too quick to see in getSubscriptions() is reported by the new connection id', async () => {
    // GLIDE re-subscribes within milliseconds of a reconnect: polls never see a channel missing.
    let id: number | Error = 6
    const commands: string[] = []
    const sub = subscriberOn({
      getSubscriptions: async () => ({ actualSubscriptions: { 0: new Set(['ch']) } }),
      customCommand: async (args: string[]) => {
        commands.push(args.join(' '))
        if (id instanceof Error) throw id
        return id
      },
    })
    let reconnects = 0
    sub.onReconnect(() => reconnects++)
    await sub.subscribe('ch')
    await new Promise((r) => setTimeout(r, 450))
    assert.equal(reconnects, 0, 'the same connection: nothing to report')
    assert.ok(commands.length >= 1 && commands.every((c) => c === 'CLIENT ID'), commands.join())
    id = 7 // a new connection, already subscribed again
    await new Promise((r) => setTimeout(r, 450))
    assert.equal(reconnects, 1, 'the new id is a reconnect')
    id = new Error('connection closed') // no answer: the connection is in trouble
    await new Promise((r) => setTimeout(r, 450))
    assert.equal(reconnects, 1, 'not while it does not answer')
    id = 7
    await new Promise((r) => setTimeout(r, 450))
    assert.equal(reconnects, 2, 'reported once it answers again')
    await sub.unsubscribe('ch')
    const asked = commands.length
    await new Promise((r) => setTimeout(r, 450))
    assert.equal(commands.length, asked, 'no channel: no CLIENT ID')
    await sub.close()
  })

  test('a server that refuses CLIENT ID (an ACL without it) leaves the getSubscriptions() poll alone', async () => {
    const active = new Set<string>()
    let asked = 0
    const sub = subscriberOn({
      subscribe: async (channels: string[]) => {
        for (const c of channels) active.add(c)
      },
      getSubscriptions: async () => ({ actualSubscriptions: { 0: new Set(active) } }),
      customCommand: async () => {
        asked++
        const refusal = new Error('NOPERM: User lim has no permissions to run the client|id command')
        throw Object.assign(refusal, { name: 'RequestError' })
      },
    })
    let reconnects = 0
    sub.onReconnect(() => reconnects++)
    await sub.subscribe('ch')
    await new Promise((r) => setTimeout(r, 450))
    assert.equal(reconnects, 0, 'a refusal is not a reconnect')
    assert.equal(asked, 1, 'asked once, then not again')
    active.clear()
    await new Promise((r) => setTimeout(r, 450))
    active.add('ch')
    await new Promise((r) => setTimeout(r, 450))
    assert.equal(reconnects, 1, 'a channel lost and back is still reported')
    await sub.close()
  })

  test('close() closes the client only when owned', async () => {
    let closed = 0
    const { client } = fakeGlide()
    client.close = () => void closed++
    await adapterFor(client, false).close()
    assert.equal(closed, 0)
    await adapterFor(client, true).close()
    assert.equal(closed, 1)
  })
})

/** A subscriber whose own GLIDE client is a fake with `methods` (no-ops for the rest). */
function subscriberOn(methods: Record<string, unknown>) {
  class FakeGlideClient {
    config = { addresses: [{ host: 'h', port: 1 }] }
    static async createClient() {
      return Object.assign(
        new FakeGlideClient(),
        { subscribe: async () => {}, unsubscribe: async () => {}, unsubscribeLazy: async () => {} },
        methods,
      )
    }
    customCommand = async () => 'OK'
    invokeScript = async () => null
    subscribe = async () => {}
    close = () => {}
  }
  return adapterFor(new FakeGlideClient(), false).createSubscriber()
}
