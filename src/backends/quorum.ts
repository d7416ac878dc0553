import { BackendError, InvalidArgumentError, QuorumError } from '../errors.js'
import type { HoldMode } from '../scripts/index.js'
import type {
  AttemptRequest,
  AttemptResult,
  ExtendRequest,
  ExtendStatus,
  KeyState,
  LockBackend,
  ReleaseRequest,
  ReleaseResult,
  Subscriber,
} from './lock-backend.js'
import { unsupportedReplicas, wasSentNothing } from './lock-backend.js'
import {
  acquireOutcome,
  contention,
  extendOutcome,
  failedOutcome,
  gather,
  isAcquired,
  isHeld,
  summary,
} from './quorum-gather.js'
import { Healer } from './quorum-heal.js'
import { sharedState } from './quorum-inspect.js'
import { QuorumSubscriber } from './quorum-subscriber.js'

/** One independent master: a single-node backend that can also name its server. */
export interface QuorumNode extends LockBackend {
  /** The server's `run_id`. */
  serverId(timeoutMs: number): Promise<string>
}

/** An error's message (with its cause's), for matching Redis error codes. */
function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  return err.cause instanceof Error ? `${err.message} ${err.cause.message}` : err.message
}

/** How many of `n` nodes make a majority. Never configurable lower: two majorities must share a node. */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1
}

/**
 * How long one node may take to answer one request of a quorum operation:
 * a tenth of the lease (at least 10 ms), never more than the operation's own
 * timeout. A hung node then costs an acquisition at most a tenth of its
 * validity while the answering majority decides, instead of the whole lease.
 */
export function nodeTimeoutMs(lifetimeMs: number, timeoutMs: number): number {
  return Math.max(1, Math.min(timeoutMs, Math.max(10, lifetimeMs / 10)))
}

/** How often nodes whose `run_id` is still unknown are asked again. */
const RECHECK_MS = 1000

/**
 * Redlock over N independent Redis masters: every operation goes to all nodes in
 * parallel (one round trip, each node bounded by {@link nodeTimeoutMs}) and counts
 * only when a majority ({@link quorumOf}) agrees.
 *
 * - acquire: acquired on a majority → granted, fence = the maximum of the fences of
 *   the nodes that granted it; enough nodes held by others that no majority is
 *   possible → contention (pttl: when enough of them expire for a majority to be
 *   free); otherwise (nodes failed) → `QuorumError` with every node's outcome. A
 *   failed attempt releases its token on every node that took the keys.
 * - extend: a lease stays held only if a majority extended it; lost as `stolen` (-1)
 *   if a majority reports another owner, else `expired` (0); if the failed nodes
 *   could have made the difference, rejects with `QuorumError` so the renewer
 *   retries until its deadline.
 * - release: resolves once a majority answered; `removed` and `receivers` are the
 *   maximum over the answering nodes (every node holds the same keys, and our own
 *   subscriber listens on every node, so a sum would count it N times).
 * - inspect: the owner is the token a majority of nodes hold (else none); its
 *   remaining lease is how long a majority still holds it; the fence is the
 *   maximum mark seen.
 *
 * The same server given twice would fake a majority: before the first acquisition
 * every node is asked for its `run_id`, and duplicates reject every acquisition
 * with `InvalidArgumentError`. Nodes that did not answer are asked again, in the
 * background, on later acquisitions.
 */
export class QuorumBackend implements LockBackend {
  readonly #nodes: readonly QuorumNode[]
  readonly quorum: number
  readonly #healer = new Healer()
  /** Per node: its run_id; null when its ACL refuses the question (never asked again). */
  readonly #runIds: (string | null | undefined)[]
  #identifying: Promise<void> | undefined
  #firstCheck: Promise<void> | undefined
  #nextCheckAt = 0
  #checkedOnce = false
  #identified = false
  #duplicate: InvalidArgumentError | undefined

  constructor(nodes: readonly QuorumNode[]) {
    if (nodes.length === 0) throw new InvalidArgumentError('client', 'a quorum needs at least one node')
    this.#nodes = nodes
    this.quorum = quorumOf(nodes.length)
    this.#runIds = nodes.map(() => undefined)
  }

  get size(): number {
    return this.#nodes.length
  }

  checkKeys(keys: readonly string[], mode?: HoldMode): void {
    for (const node of this.#nodes) node.checkKeys(keys)
    if (mode?.kind === 'semaphore' && mode.limit > 1) {
      // Counted per node, permits do not add up across a quorum: with 3 nodes and a
      // limit of 2, holders on nodes {1,2}, {1,3} and {2,3} each got a majority while
      // every node is at its limit, so three would hold a permit at once.
      throw new InvalidArgumentError(
        'limit',
        `limit ${mode.limit} is not supported on a quorum of independent masters: each node counts its own holders, so majorities of different nodes could admit more than ${mode.limit} holders at once (limit: 1 and shared locks are safe on a quorum)`,
      )
    }
  }

  async acquire(request: AttemptRequest): Promise<AttemptResult> {
    const { lifetimeMs, timeoutMs, ack } = request
    // Redlock's masters are independent by design; replica confirmation per node is not
    // implemented (each node's WAIT would have to fit its per-node timeout).
    if (ack && ack.replicas > 0) throw unsupportedReplicas('a quorum of independent masters', ack.replicas)
    const started = performance.now()
    const perNode = nodeTimeoutMs(lifetimeMs, timeoutMs)
    await this.#checkDistinct(perNode)
    // The Locker's validity counts from before this call: time spent identifying
    // the nodes comes off the attempt's budget, not on top of it.
    const left = timeoutMs - (performance.now() - started)
    if (left <= 0)
      throw new BackendError('acquire', 'no time left for the acquisition after identifying the nodes')
    const ms = Math.min(perNode, left)
    const n = this.#nodes.length
    const mustFree = n - this.quorum + 1 // held this many: no majority is possible
    // A node's attempt that fails (a timeout, say) is not undone by the node: once a
    // majority granted, a late grant there is part of the lease (undone only if the
    // whole attempt fails, by #undo).
    const perNodeRequest: AttemptRequest = { ...request, timeoutMs: ms, ack: undefined, callerUndoes: true }
    const attempts = this.#nodes.map((node) => node.acquire(perNodeRequest))
    try {
      return await gather(attempts, ms, (settled, pending) => {
        const acquired = settled.filter(isAcquired)
        if (acquired.length >= this.quorum) {
          let fence: bigint | undefined
          for (const s of acquired) {
            const f = s.value.fence
            if (f !== undefined && (fence === undefined || f > fence)) fence = f
          }
          return { acquired: true, fence } as const
        }
        // Another kind of lock on the key (any node): waiting would not help.
        for (const s of settled) if (s.ok && !s.value.acquired && s.value.conflict) return s.value
        const held = settled.filter(isHeld)
        if (held.length >= mustFree) return contention(held, held.length - (n - this.quorum))
        if (pending > 0) return undefined
        throw new QuorumError(
          'acquire',
          `acquire reached no majority of ${n} nodes: ${summary(settled, (v) => (v.acquired ? 'acquired' : 'held by another owner'))}`,
          settled.map(acquireOutcome),
        )
      }).then((result) => {
        if (!result.acquired) this.#undo(attempts, request)
        return result
      })
    } catch (err) {
      this.#undo(attempts, request)
      throw err
    }
  }

  /**
   * After a failed attempt, releases the token on each node whose own attempt took the
   * keys or failed (a timeout or error may have left them taken; the nodes were told
   * not to clean up themselves), as soon as it settles. A node that found the keys
   * held, or failed without sending anything (its client reconnecting), has nothing
   * of ours and costs no release.
   */
  #undo(attempts: readonly Promise<AttemptResult>[], request: AttemptRequest): void {
    const { keys, token, mode } = request
    const release = (i: number) => this.#nodes[i]?.releaseQuietly({ keys, token, publisherId: '', mode })
    attempts.forEach((attempt, i) => {
      attempt.then(
        (r) => {
          if (r.acquired) release(i)
        },
        (err: unknown) => {
          if (!wasSentNothing(err)) release(i)
        },
      )
    })
  }

  /**
   * A lease the nodes could not decide (too many failed to tell extended from lost)
   * gets no status and is retried by the renewer; when no lease is decided the call
   * rejects with a `QuorumError` carrying the node outcomes of the first one.
   */
  async extend(batch: readonly ExtendRequest[], timeoutMs: number): Promise<(ExtendStatus | undefined)[]> {
    let lifetimeMs = Number.POSITIVE_INFINITY
    for (const lease of batch) lifetimeMs = Math.min(lifetimeMs, lease.lifetimeMs)
    const ms = nodeTimeoutMs(lifetimeMs, timeoutMs)
    const calls = this.#nodes.map((node) => node.extend(batch, ms))
    const decided = gather(calls, ms, (settled, pending) => {
      const failed = settled.filter((s) => !s.ok).length
      const out: (ExtendStatus | undefined)[] = []
      let decided = 0
      for (let i = 0; i < batch.length; i++) {
        let extended = 0
        let stolen = 0
        for (const s of settled) {
          if (!s.ok) continue
          if (s.value[i] === 1) extended++
          else if (s.value[i] === -1) stolen++
        }
        if (extended >= this.quorum) out.push(1)
        // Lost only if even the pending and the failed nodes could not have made a majority.
        else if (extended + pending + failed < this.quorum) out.push(stolen >= this.quorum ? -1 : 0)
        else if (pending > 0) return undefined
        else {
          out.push(undefined)
          continue
        }
        decided++
      }
      if (decided > 0 || batch.length === 0) return out
      throw new QuorumError(
        'extend',
        `extend confirmed by fewer than the majority of ${this.quorum} of ${this.#nodes.length} nodes, too many failed to tell: ${summary(settled)}`,
        settled.map((s) => extendOutcome(s, 0)),
      )
    })
    void decided.then(
      (statuses) => this.#healer.heal(this.#nodes, batch, statuses, calls),
      () => {},
    )
    return decided
  }

  release(request: ReleaseRequest, timeoutMs: number): Promise<ReleaseResult> {
    this.#healer.released(request.token)
    // Never a hand-over: each node would grant on its own count (no arrival queue here).
    const plain = request.successor === undefined ? request : { ...request, successor: undefined }
    return gather(
      this.#nodes.map((node) => node.release(plain, timeoutMs)),
      timeoutMs,
      (settled, pending) => {
        const answered = settled.filter((s) => s.ok)
        if (answered.length >= this.quorum) {
          let removed = 0
          let receivers = 0
          for (const s of answered) {
            removed = Math.max(removed, s.value.removed)
            receivers = Math.max(receivers, s.value.receivers)
          }
          return { removed, receivers }
        }
        if (answered.length + pending >= this.quorum) return undefined
        throw new QuorumError(
          'release',
          `release confirmed by ${answered.length} of ${this.#nodes.length} nodes, fewer than the majority of ${this.quorum} (the rest expire with their lease): ${summary(settled)}`,
          settled.map((s) => (s.ok ? { node: s.node, outcome: 'acquired' } : failedOutcome(s))),
        )
      },
    )
  }

  releaseQuietly(request: ReleaseRequest): void {
    this.#healer.released(request.token)
    for (const node of this.#nodes) node.releaseQuietly(request)
  }

  inspect(key: string, timeoutMs: number): Promise<KeyState> {
    return gather(
      this.#nodes.map((node) => node.inspect(key, timeoutMs)),
      timeoutMs,
      (settled, pending) => {
        const answered = settled.filter((s) => s.ok).map((s) => s.value)
        const byToken = new Map<string | null, KeyState[]>()
        for (const state of answered) {
          const same = byToken.get(state.token) ?? []
          same.push(state)
          byToken.set(state.token, same)
        }
        let owner: KeyState[] | undefined
        for (const states of byToken.values()) if (states.length >= this.quorum) owner = states
        if (owner === undefined && pending > 0) return undefined
        if (answered.length < this.quorum) {
          throw new QuorumError(
            'inspect',
            `inspect answered by ${answered.length} of ${this.#nodes.length} nodes, fewer than the majority of ${this.quorum}: ${summary(settled)}`,
            settled.map((s) => (s.ok ? { node: s.node, outcome: 'acquired' } : failedOutcome(s))),
          )
        }
        let fence: bigint | null = null
        for (const state of answered)
          if (state.fence !== null && (fence === null || state.fence > fence)) fence = state.fence
        const token = owner?.[0]?.token ?? null
        if (owner === undefined || token === null) return sharedState(answered, this.quorum, fence)
        // The lease lasts while a majority holds it: the quorum-th longest remaining TTL.
        const ttls = owner.map((s) => (s.pttl < 0 ? Number.POSITIVE_INFINITY : s.pttl)).sort((a, b) => b - a)
        const pttl = ttls[this.quorum - 1] ?? -1
        return {
          token,
          pttl: Number.isFinite(pttl) ? pttl : -1,
          fence,
          kind: 'exclusive',
          limit: null,
          holders: [],
        }
      },
    )
  }

  createSubscriber(): Subscriber {
    return new QuorumSubscriber(
      this.#nodes.map((node) => node.createSubscriber()),
      this.quorum,
    )
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.#nodes.map((node) => node.close()))
  }

  /**
   * Rejects while two nodes are known to be one server. The first call waits for
   * every node's `run_id` (bounded by `ms`); nodes that did not answer then are
   * asked again in the background on later calls, without delaying them.
   */
  async #checkDistinct(ms: number): Promise<void> {
    if (this.#duplicate) throw this.#duplicate
    if (!this.#identified) {
      // Only the first acquisition waits; later ones never pay for nodes that are
      // down (or refuse INFO), and ask them again at most once per second.
      if (this.#firstCheck === undefined || performance.now() >= this.#nextCheckAt) {
        this.#nextCheckAt = performance.now() + RECHECK_MS
        this.#identifying ??= this.#identify(ms)
        this.#firstCheck ??= this.#identifying
      }
      // Concurrent first acquisitions all wait for the same first check.
      if (!this.#checkedOnce) await this.#firstCheck
    }
    if (this.#duplicate) throw this.#duplicate
  }

  async #identify(ms: number): Promise<void> {
    const missing = this.#runIds.flatMap((id, i) => (id === undefined ? [i] : []))
    const results = await Promise.allSettled(missing.map((i) => (this.#nodes[i] as QuorumNode).serverId(ms)))
    for (const [j, r] of results.entries()) {
      if (r.status === 'fulfilled') this.#runIds[missing[j] as number] = r.value
      // An ACL that refuses INFO (or scripts) will keep refusing: that node cannot be
      // told apart from the others, and asking every second would only cost calls.
      else if (/NOPERM/.test(errorText(r.reason))) this.#runIds[missing[j] as number] = null
    }
    const first = new Map<string, number>()
    for (const [i, id] of this.#runIds.entries()) {
      if (id === undefined || id === null) continue
      const prior = first.get(id)
      if (prior !== undefined) {
        this.#duplicate ??= new InvalidArgumentError(
          'client',
          `clients ${prior} and ${i} of the quorum reach the same Redis server (run_id ${id}); ` +
            'it would count twice towards the majority: give each independent master once',
        )
      } else first.set(id, i)
    }
    this.#identified = this.#runIds.every((id) => id !== undefined)
    this.#checkedOnce = true
    this.#identifying = undefined
  }
}

/**
 * A quorum backend over `clients` (at least one), each turned into a single-node
 * backend by `nodeFor`. The same client object twice is rejected here; the same
 * server reached through two clients is caught before the first acquisition.
 */
export function quorumBackendFor(
  clients: readonly unknown[],
  nodeFor: (client: unknown, index: number) => QuorumNode,
): QuorumBackend {
  if (clients.length === 0) {
    throw new InvalidArgumentError(
      'client',
      'an array of clients must hold at least one client (a quorum of independent masters)',
    )
  }
  const at = clients.findIndex((c, i) => clients.indexOf(c) !== i)
  if (at >= 0) {
    throw new InvalidArgumentError(
      'client',
      `clients ${clients.indexOf(clients[at])} and ${at} are the same client: it would count twice towards the majority`,
    )
  }
  return new QuorumBackend(clients.map(nodeFor))
}
