import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Subscriber } from '../../src/adapters/adapter.js'
import {
  type AttemptRequest,
  type AttemptResult,
  type ExtendRequest,
  type ExtendStatus,
  type KeyState,
  type ReleaseRequest,
  type ReleaseResult,
  sentNothing,
} from '../../src/backends/lock-backend.js'
import { nodeTimeoutMs, QuorumBackend, type QuorumNode, quorumOf } from '../../src/backends/quorum.js'
import { QuorumSubscriber } from '../../src/backends/quorum-subscriber.js'
import { BackendError, QuorumError } from '../../src/errors.js'
import { FakeSubscriber } from '../helpers/fake-adapter.js'

type Answer<T> = T | Error | 'hang'

/** Lets already-settled promise chains (cleanup releases) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

/** A node whose every answer the test sets; `released` records cleanup releases. */
class FakeNode implements QuorumNode {
  acquireAnswer: Answer<AttemptResult> = { acquired: true, fence: 1n }
  extendAnswer: Answer<ExtendStatus[]> = [1]
  releaseAnswer: Answer<ReleaseResult> = { removed: 1, receivers: 0 }
  inspectAnswer: Answer<KeyState> = {
    token: null,
    pttl: -2,
    fence: null,
    kind: null,
    limit: null,
    holders: [],
  }
  runId: string
  /** Set to make serverId reject. */
  serverIdError: Error | undefined
  serverIdCalls = 0
  released = 0
  readonly sub = new FakeSubscriber()

  constructor(runId: string) {
    this.runId = runId
  }

  #answer<T>(a: Answer<T>, ms: number): Promise<T> {
    if (a === 'hang') {
      return new Promise((_, reject) => setTimeout(() => reject(new BackendError('acquire', 'no reply')), ms))
    }
    return a instanceof Error ? Promise.reject(a) : Promise.resolve(a)
  }

  checkKeys(): void {}
  serverId(): Promise<string> {
    this.serverIdCalls++
    if (this.serverIdError) return Promise.reject(this.serverIdError)
    return Promise.resolve(this.runId)
  }
  /** What each acquisition asked for: a quorum's nodes are told the caller undoes. */
  readonly callerUndoes: (boolean | undefined)[] = []
  acquire(request: AttemptRequest): Promise<AttemptResult> {
    this.callerUndoes.push(request.callerUndoes)
    return this.#answer(this.acquireAnswer, request.timeoutMs)
  }
  extend(_b: readonly ExtendRequest[], ms: number): Promise<ExtendStatus[]> {
    return this.#answer(this.extendAnswer, ms)
  }
  release(_r: ReleaseRequest, ms: number): Promise<ReleaseResult> {
    return this.#answer(this.releaseAnswer, ms)
  }
  releaseQuietly(): void {
    this.released++
  }
  inspect(_k: string, ms: number): Promise<KeyState> {
    return this.#answer(this.inspectAnswer, ms)
  }
  createSubscriber(): Subscriber {
    return this.sub
  }
  close(): Promise<void> {
    return Promise.resolve()
  }
}

function setup(n: number) {
  const nodes = Array.from({ length: n }, (_, i) => new FakeNode(`run${i}`))
  return { nodes, quorum: new QuorumBackend(nodes) }
}

/** An attempt request for `keys`, as the Locker builds it. */
const attempt = (
  keys: string[],
  token: string,
  lifetimeMs: number,
  timeoutMs: number,
  _ack?: undefined,
  fencing = false,
): AttemptRequest => ({ keys, token, lifetimeMs, timeoutMs, fencing })

const held = (pttl: number): AttemptResult => ({ acquired: false, pttl, blockedIndex: 0 })
const lease: ExtendRequest = { keys: ['k'], token: 't', lifetimeMs: 1000 }

describe('quorum math', () => {
  test('a majority, never less', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(quorumOf), [1, 2, 2, 3, 3, 4, 4])
  })

  test('per-node timeout: a tenth of the lease, at least 10 ms, at most the call timeout', () => {
    assert.equal(nodeTimeoutMs(2000, 1978), 200)
    assert.equal(nodeTimeoutMs(50, 48), 10)
    assert.equal(nodeTimeoutMs(50, 5), 5)
  })
})

describe('QuorumBackend.acquire', () => {
  test('a majority acquired wins with the largest fence, without waiting for a hung node', async () => {
    const { nodes, quorum } = setup(3)
    ;[nodes[0]!.acquireAnswer, nodes[1]!.acquireAnswer] = [
      { acquired: true, fence: 5n },
      { acquired: true, fence: 9n },
    ]
    nodes[2]!.acquireAnswer = 'hang'
    const started = performance.now()
    assert.deepEqual(await quorum.acquire(attempt(['k'], 't', 10_000, 9_000, undefined, true)), {
      acquired: true,
      fence: 9n,
    })
    assert.ok(performance.now() - started < 100)
  })

  test('held on a majority is contention; what was taken is released where it was taken', async () => {
    const { nodes, quorum } = setup(5)
    nodes[0]!.acquireAnswer = held(300)
    nodes[1]!.acquireAnswer = held(100)
    nodes[2]!.acquireAnswer = held(200)
    const r = await quorum.acquire(attempt(['k'], 't', 1000, 900))
    // One of the three holders must expire for a majority to be possible: the shortest.
    assert.deepEqual(r, { acquired: false, pttl: 100, blockedIndex: 0 })
    await settle()
    assert.deepEqual(
      nodes.map((n) => n.released),
      [0, 0, 0, 1, 1],
    )
  })

  test('a 2–2 split of 4 nodes is contention, not a failure', async () => {
    const { nodes, quorum } = setup(4)
    nodes[2]!.acquireAnswer = held(50)
    nodes[3]!.acquireAnswer = held(80)
    const r = await quorum.acquire(attempt(['k'], 't', 1000, 900))
    assert.equal(r.acquired, false)
  })

  test('failed nodes that prevent a decision: QuorumError with every outcome', async () => {
    const { nodes, quorum } = setup(3)
    nodes[1]!.acquireAnswer = held(50)
    nodes[2]!.acquireAnswer = new BackendError('acquire', 'READONLY')
    await assert.rejects(quorum.acquire(attempt(['k'], 't', 1000, 900)), (err: unknown) => {
      assert.ok(err instanceof QuorumError)
      assert.deepEqual(
        err.outcomes.map((o) => [o.node, o.outcome]),
        [
          [0, 'acquired'],
          [1, 'held'],
          [2, 'error'],
        ],
      )
      return true
    })
    // The nodes are told not to clean up after themselves (a late grant is kept when a
    // majority granted); the failed attempt as a whole is undone on node 0 and node 2.
    await settle()
    assert.deepEqual(
      nodes.map((n) => n.released),
      [1, 0, 1],
    )
    assert.deepEqual(
      nodes.map((n) => n.callerUndoes),
      [[true], [true], [true]],
    )
  })

  test('a failed node that sent nothing (its client reconnecting) costs no release', async () => {
    const { nodes, quorum } = setup(3)
    nodes[1]!.acquireAnswer = held(50)
    nodes[2]!.acquireAnswer = sentNothing(new BackendError('acquire', 'the client is reconnecting'))
    await assert.rejects(quorum.acquire(attempt(['k'], 't', 1000, 900)), QuorumError)
    await settle()
    assert.deepEqual(
      nodes.map((n) => n.released),
      [1, 0, 0],
    )
  })

  test('the same server twice is rejected before anything is sent', async () => {
    const { nodes, quorum } = setup(3)
    nodes[2]!.runId = 'run0'
    await assert.rejects(quorum.acquire(attempt(['k'], 't', 1000, 900)), {
      code: 'ERR_LOCK_INVALID_ARGUMENT',
    })
    assert.deepEqual(
      nodes.map((n) => n.released),
      [0, 0, 0],
    )
  })
})

describe('QuorumBackend: identifying the nodes', () => {
  test('a node whose ACL refuses the run_id question is not asked again; a node that failed otherwise is', async () => {
    const { nodes, quorum } = setup(3)
    nodes[1]!.serverIdError = new BackendError('connect', 'connect failed: timeout')
    nodes[2]!.serverIdError = new BackendError('connect', 'connect failed', {
      cause: new Error("NOPERM User app has no permissions to run the 'info' command"),
    })
    assert.equal((await quorum.acquire(attempt(['k'], 't', 1000, 900))).acquired, true)
    assert.deepEqual(
      nodes.map((n) => n.serverIdCalls),
      [1, 1, 1],
    )
    await new Promise((r) => setTimeout(r, 1100)) // past the re-ask interval
    await quorum.acquire(attempt(['k'], 't2', 1000, 900))
    await settle()
    assert.deepEqual(
      nodes.map((n) => n.serverIdCalls),
      [1, 2, 1],
    )
  })
})

describe('QuorumBackend.extend', () => {
  test('extended on a majority stays held; a majority of other owners is stolen; else expired', async () => {
    const { nodes, quorum } = setup(3)
    nodes[0]!.extendAnswer = [1, -1, 0]
    nodes[1]!.extendAnswer = [1, -1, -1]
    nodes[2]!.extendAnswer = [0, 1, 0]
    assert.deepEqual(await quorum.extend([lease, lease, lease], 900), [1, -1, 0])
  })

  test('undecidable because nodes failed: no status, or QuorumError when nothing is decided', async () => {
    const { nodes, quorum } = setup(3)
    nodes[0]!.extendAnswer = [1, 0]
    nodes[1]!.extendAnswer = new BackendError('extend', 'down')
    nodes[2]!.extendAnswer = [0, 0]
    assert.deepEqual(await quorum.extend([lease, lease], 900), [undefined, 0])
    nodes[2]!.extendAnswer = 'hang'
    await assert.rejects(quorum.extend([lease], 900), { code: 'ERR_LOCK_QUORUM' })
  })
})

describe('QuorumBackend.release and inspect', () => {
  test('release: maxima over a majority; fewer answers reject', async () => {
    const { nodes, quorum } = setup(3)
    nodes[0]!.releaseAnswer = { removed: 1, receivers: 2 }
    nodes[1]!.releaseAnswer = { removed: 0, receivers: 1 }
    nodes[2]!.releaseAnswer = 'hang'
    assert.deepEqual(await quorum.release({ keys: ['k'], token: 't', publisherId: 'me' }, 50), {
      removed: 1,
      receivers: 2,
    })
    nodes[1]!.releaseAnswer = new BackendError('release', 'down')
    await assert.rejects(quorum.release({ keys: ['k'], token: 't', publisherId: 'me' }, 50), {
      code: 'ERR_LOCK_QUORUM',
    })
  })

  test('inspect: the majority owner, how long a majority still holds it, the largest fence', async () => {
    const { nodes, quorum } = setup(3)
    nodes[0]!.inspectAnswer = {
      token: 'a',
      pttl: 900,
      fence: 3n,
      kind: 'exclusive',
      limit: null,
      holders: [],
    }
    nodes[1]!.inspectAnswer = {
      token: 'a',
      pttl: 500,
      fence: 7n,
      kind: 'exclusive',
      limit: null,
      holders: [],
    }
    nodes[2]!.inspectAnswer = {
      token: 'b',
      pttl: 800,
      fence: 4n,
      kind: 'exclusive',
      limit: null,
      holders: [],
    }
    assert.deepEqual(await quorum.inspect('k', 50), {
      token: 'a',
      pttl: 500,
      fence: 7n,
      kind: 'exclusive',
      limit: null,
      holders: [],
    })
    nodes[1]!.inspectAnswer = { token: null, pttl: -2, fence: 7n, kind: null, limit: null, holders: [] }
    assert.deepEqual(await quorum.inspect('k', 50), {
      token: null,
      pttl: -2,
      fence: 7n,
      kind: null,
      limit: null,
      holders: [],
    })
  })
})

describe('QuorumSubscriber', () => {
  test('one release heard from every node wakes once; the same Locker releasing again wakes again', async () => {
    const subs = [new FakeSubscriber(), new FakeSubscriber(), new FakeSubscriber()]
    const sub = new QuorumSubscriber(subs, 2)
    const heard: string[] = []
    sub.onMessage((channel, message) => heard.push(`${channel}:${message}`))
    await sub.subscribe('c')
    for (const s of subs) s.emit('c', 'x')
    assert.deepEqual(heard, ['c:x'])
    subs[0]!.emit('c', 'x')
    assert.deepEqual(heard, ['c:x', 'c:x'])
    subs[1]!.emit('c', 'y')
    assert.equal(heard.length, 3)
    await sub.close()
  })

  test('subscribe needs a majority of nodes', async () => {
    const subs = [new FakeSubscriber(), new FakeSubscriber(() => Promise.reject(new Error('down')))]
    subs.push(new FakeSubscriber(() => Promise.reject(new Error('down'))))
    await assert.rejects(new QuorumSubscriber(subs, 2).subscribe('c'), /2 of 3 nodes/)
    const reconnects: number[] = []
    const ok = new QuorumSubscriber([new FakeSubscriber(), subs[1]!, new FakeSubscriber()], 2)
    ok.onReconnect(() => reconnects.push(1))
    await ok.subscribe('c')
    subs[1]!.reconnect()
    assert.equal(reconnects.length, 1)
  })
})
