import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type Corkable, TickCork } from '../../src/adapters/tick-cork.js'

/** A socket that records which "commands" left in which write. */
class FakeSocket implements Corkable {
  destroyed = false
  writable = true
  corks = 0
  pending: number[] = []
  readonly writes: number[][] = []

  cork(): void {
    this.corks++
  }

  uncork(): void {
    if (this.corks === 0) throw new Error('uncork without cork')
    this.corks--
    if (this.corks === 0) this.#flush()
  }

  write(n: number): void {
    this.pending.push(n)
    if (this.corks === 0) this.#flush()
  }

  #flush(): void {
    if (this.pending.length > 0) this.writes.push(this.pending)
    this.pending = []
  }
}

const tick = () => new Promise<void>((resolve) => process.nextTick(resolve))

function send(cork: TickCork, socket: FakeSocket, count: number, from = 0): void {
  for (let i = 0; i < count; i++) {
    cork.hold()
    socket.write(from + i)
  }
}

test('a turn: the first command at once, then batches of 4, 16, 64 and 128, the rest when the turn ends', async () => {
  const socket = new FakeSocket()
  const cork = new TickCork(() => [socket])
  send(cork, socket, 300)
  // Before the turn ends: everything but the last, unfinished batch has been written.
  assert.deepEqual(
    socket.writes.map((w) => w.length),
    [1, 4, 16, 64, 128],
  )
  await tick()
  assert.deepEqual(
    socket.writes.map((w) => w.length),
    [1, 4, 16, 64, 128, 87],
  )
  assert.deepEqual(
    socket.writes.flat(),
    Array.from({ length: 300 }, (_, i) => i),
    'order kept',
  )
  assert.equal(socket.corks, 0)
})

test('a lone command is written at once, and every turn starts again with one', async () => {
  const socket = new FakeSocket()
  const cork = new TickCork(() => [socket])
  send(cork, socket, 1)
  assert.deepEqual(socket.writes, [[0]], 'not held until the turn ends')
  await tick()
  send(cork, socket, 3, 1)
  assert.deepEqual(socket.writes, [[0], [1]])
  await tick()
  assert.deepEqual(socket.writes, [[0], [1], [2, 3]])
  send(cork, socket, 1, 4)
  assert.deepEqual(socket.writes, [[0], [1], [2, 3], [4]])
  await tick()
  assert.equal(socket.corks, 0)
})

test('every socket the client may use is held, a destroyed or unwritable one is left alone', async () => {
  const [a, b, dead] = [new FakeSocket(), new FakeSocket(), new FakeSocket()]
  dead.destroyed = true
  let listed = 0
  const cork = new TickCork(() => {
    listed++
    return [a, undefined, b, null, dead]
  })
  cork.hold()
  a.write(0)
  cork.hold()
  a.write(1)
  b.write(2)
  cork.hold()
  b.write(3)
  assert.equal(dead.corks, 0)
  assert.deepEqual([a.writes, b.writes], [[[0]], []])
  await tick()
  assert.deepEqual([a.writes, b.writes], [[[0], [1]], [[2, 3]]])
  assert.equal(listed, 1, 'the sockets are listed once per corked batch')
  assert.equal(a.corks + b.corks, 0)
})

test('a socket replaced between batches: the old one is uncorked, the new one held', async () => {
  let current = new FakeSocket()
  const old = current
  const cork = new TickCork(() => [current])
  send(cork, current, 2) // 1 at once, the second held on `old`
  current = new FakeSocket()
  send(cork, current, 4, 2) // fills the batch of 4 (1 on old, 3 here), then a new batch
  await tick()
  assert.equal(old.corks, 0)
  assert.equal(current.corks, 0)
  assert.deepEqual(old.writes.flat(), [0, 1])
  assert.deepEqual(current.writes.flat(), [2, 3, 4, 5])
})

test("the ioredis adapter writes a turn's first command before it schedules the turn's end", async (t) => {
  const { IoRedisAdapter } = await import('../../src/adapters/ioredis.js')
  const socket = new FakeSocket()
  const scheduled = t.mock.method(process, 'nextTick')
  const count = () => scheduled.mock.callCount()
  /** Per command sent: how many nextTick calls had been made by then. */
  const seen: number[] = []
  let fail = false
  const record = () => {
    seen.push(count())
    if (fail) throw new Error('client threw')
    return Promise.resolve('OK')
  }
  const client = {
    status: 'ready',
    stream: socket,
    evalsha: record,
    eval: record,
    set: record,
    call: record,
    duplicate: () => client,
    subscribe: record,
    unsubscribe: record,
    on: () => client,
    quit: record,
    disconnect: () => {},
  }
  const adapter = new IoRedisAdapter(client as never, false)
  for (const send of [
    () => adapter.evalsha('sha', ['k'], ['a']),
    () => adapter.setNx('k', 'v', 1000),
    () => adapter.eval('return 1', [], []),
  ]) {
    await tick()
    const before = count()
    const sent = send()
    assert.equal(seen.at(-1), before, 'the first command of the turn was sent before any nextTick')
    assert.equal(count(), before + 1, 'and the flush was scheduled right after it')
    await sent
  }
  // A client that throws synchronously still leaves the turn's end scheduled, so the
  // next turn is not corked for ever.
  await tick()
  fail = true
  const before = count()
  assert.throws(() => adapter.evalsha('sha', ['k'], ['a']), /client threw/)
  assert.equal(count(), before + 1)
  fail = false
  await tick()
  const again = count()
  await adapter.evalsha('sha', ['k'], ['a'])
  assert.equal(seen.at(-1), again, 'the next turn starts with a lone command again')
  assert.equal(socket.corks, 0, 'nothing left corked')
})
