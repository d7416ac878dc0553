import { BackendError } from '../errors.js'
import { fenceKey, releaseChannel } from '../internal/keys.js'
import { TOKEN_LENGTH } from '../internal/token.js'
import { ACQUIRE, EXTEND, EXTEND_UNIFORM, INSPECT, RELEASE, type Script, SERVER_ID } from '../scripts.js'
import type { RedisAdapter, Subscriber } from './adapter.js'
import type {
  AttemptResult,
  ExtendRequest,
  ExtendStatus,
  KeyState,
  LockBackend,
  ReleaseResult,
  ReplicaAck,
} from './lock-backend.js'
import { unsupportedReplicas } from './lock-backend.js'

export type { AttemptResult, ExtendRequest, ExtendStatus, KeyState, LockBackend, ReleaseResult, ReplicaAck }

interface PendingCall {
  readonly at: number
  readonly ms: number
  readonly operation: BackendError['operation']
  readonly reject: (err: unknown) => void
}

/** How much later than its deadline the shared watchdog may reject a hung call. */
export const WATCHDOG_SLACK_MS = 20

/** How long fence marks outlive their lock key: long enough to ride out a server clock step back. */
export const FENCE_MARK_TTL_MS = 3_600_000

/**
 * Every Redis operation the lock needs, each one script call, over one adapter.
 * This is the only place that runs scripts: EVALSHA first, EVAL once on NOSCRIPT,
 * every call bounded by a timeout, every Redis error wrapped as a BackendError.
 */
export class Backend implements LockBackend {
  readonly #adapter: RedisAdapter
  readonly #acquire: Script
  readonly #extend: Script
  /** Null when a test replaced the extend script: every batch then takes that one. */
  readonly #extendUniform: Script | null
  readonly #release: Script
  /** Scripts this Backend has sent in full at least once. */
  readonly #loaded: Set<string>
  /** Calls in flight with their deadlines, checked by one shared watchdog timer. */
  readonly #pending = new Set<PendingCall>()
  #watchdog: NodeJS.Timeout | undefined
  #watchdogAt = Number.POSITIVE_INFINITY

  readonly #scripts: { acquire?: Script; extend?: Script; release?: Script }

  /**
   * @param scripts replacements for tests' deliberately broken variants only.
   * @param loaded scripts known to be cached on the server (shared with the Backend whose connection this one borrows).
   */
  constructor(
    adapter: RedisAdapter,
    scripts: { acquire?: Script; extend?: Script; release?: Script } = {},
    loaded = new Set<string>(),
  ) {
    this.#adapter = adapter
    this.#scripts = scripts
    this.#loaded = loaded
    this.#acquire = scripts.acquire ?? ACQUIRE
    this.#extend = scripts.extend ?? EXTEND
    this.#extendUniform = scripts.extend ? null : EXTEND_UNIFORM
    this.#release = scripts.release ?? RELEASE
  }

  /** Any key is fine on a single node. */
  checkKeys(_keys: readonly string[]): void {}

  get kind(): RedisAdapter['kind'] {
    return this.#adapter.kind
  }

  /**
   * One attempt at taking `keys`. Rejects with a BackendError on any failure; a
   * failure that may have left the keys locked (timeout, connection lost, or a
   * script error after partial work) is cleaned up by releasing `token` afterwards.
   * With `ack.replicas > 0`, a success is confirmed with WAIT first (see #confirm).
   *
   * One key without fencing: a plain `SET NX PX` (the cheapest acquisition Redis
   * has); only when it finds the key taken does the acquire script follow, which
   * retries, reads the holder's TTL for the waiter, tells a replayed SET of our own
   * (the key holds our token) from a real holder, and reports a non-string key.
   */
  async acquire(
    keys: readonly string[],
    token: string,
    lifetimeMs: number,
    timeoutMs: number,
    ack?: ReplicaAck,
    fencing = false,
  ): Promise<AttemptResult> {
    const replicas = ack?.replicas ?? 0
    if (replicas > 0 && !this.#adapter.wait) {
      if (this.#adapter.pinned) return this.#acquirePinned(keys, token, lifetimeMs, timeoutMs, ack, fencing)
      throw unsupportedReplicas('this client', replicas)
    }
    const startedAt = performance.now()
    // With replicas: which connection the acquisition goes on (see #confirm). Sent
    // first, in order on the same connection, and awaited only after WAIT.
    const idBefore = replicas > 0 ? this.#connectionId() : undefined
    let reply: unknown
    try {
      const [only] = keys
      if (!fencing && keys.length === 1 && only !== undefined && this.#adapter.setNx) {
        const set = this.#adapter.setNx(only, token, lifetimeMs)
        if (await this.#bounded(set, timeoutMs, 'acquire')) reply = SET_REPLY
      }
      if (reply === undefined) {
        const args = [token, String(lifetimeMs), fencing ? String(FENCE_MARK_TTL_MS) : '0']
        const call = this.#run(this.#acquire, fencing ? [...keys, ...keys.map(fenceKey)] : keys, args)
        reply = await this.#bounded(call, Math.max(1, timeoutMs - (performance.now() - startedAt)), 'acquire')
      }
    } catch (err) {
      // The request may have been applied (or may still be, from an offline queue):
      // release the token once it settles, in order on the same connection.
      this.releaseQuietly(keys, token, '')
      throw toBackendError('acquire', err)
    }
    const result = parseAttempt(reply)
    if (result.acquired && ack && replicas > 0) {
      await this.#confirm(keys, token, ack, timeoutMs - (performance.now() - startedAt), idBefore)
    }
    return result
  }

  /**
   * {@link Backend.acquire} with replicas on a pooled client: on one lent connection,
   * so the WAIT counts the acquisition's write. Waiting for the connection counts
   * against `timeoutMs`; once that is gone nothing is sent.
   */
  async #acquirePinned(
    keys: readonly string[],
    token: string,
    lifetimeMs: number,
    timeoutMs: number,
    ack: ReplicaAck | undefined,
    fencing: boolean,
  ): Promise<AttemptResult> {
    const startedAt = performance.now()
    const onLent = async (conn: RedisAdapter): Promise<AttemptResult> => {
      const leftMs = timeoutMs - (performance.now() - startedAt)
      if (leftMs < 1) throw new BackendError('acquire', `no connection within ${Math.round(timeoutMs)} ms`)
      return new Backend(conn, this.#scripts, this.#loaded).acquire(
        keys,
        token,
        lifetimeMs,
        leftMs,
        ack,
        fencing,
      )
    }
    try {
      const run = (this.#adapter as Required<Pick<RedisAdapter, 'pinned'>>).pinned(onLent)
      return await this.#bounded(run, timeoutMs + WATCHDOG_SLACK_MS, 'acquire')
    } catch (err) {
      this.releaseQuietly(keys, token, '')
      throw toBackendError('acquire', err)
    }
  }

  /**
   * Sends WAIT right after a successful acquisition, on the same connection: WAIT
   * counts the replicas that have every earlier write of this connection, the
   * acquisition included. Too few confirmations, an error or no reply within what is
   * left of the attempt's time: the acquisition is undone and this rejects, so a lock
   * a failover could lose is never reported acquired. Extensions are not confirmed:
   * see {@link Backend.extend}.
   */
  async #confirm(
    keys: readonly string[],
    token: string,
    ack: ReplicaAck,
    leftMs: number,
    idBefore: Promise<unknown> | undefined,
  ): Promise<void> {
    const wait = this.#adapter.wait?.bind(this.#adapter)
    // The server's WAIT timeout never outlasts the attempt, so a short count comes back as such.
    const waitMs = Math.max(1, Math.min(ack.timeoutMs, Math.floor(leftMs)))
    let confirmed = 0
    try {
      if (!wait || leftMs < 1) throw new BackendError('acquire', 'no time left to wait for replicas')
      const waited = wait(ack.replicas, waitMs)
      const idAfter = idBefore === undefined ? undefined : this.#connectionId()
      confirmed = await this.#bounded(waited, leftMs, 'acquire')
      const [before, after] = await Promise.all([idBefore, idAfter])
      if (before !== after) {
        // A reconnect between the acquisition and WAIT (a client resends what had no
        // reply yet): WAIT may have run on a connection that wrote nothing, which it
        // answers at once with every replica. Its count proves nothing.
        throw new BackendError(
          'acquire',
          'the connection changed between the acquisition and WAIT (a reconnect); replica confirmation unknown',
        )
      }
    } catch (err) {
      this.releaseQuietly(keys, token, '')
      throw toBackendError('acquire', err)
    }
    if (confirmed >= ack.replicas) return
    // The master answers (only replicas lag): wait for the release, so the key is
    // gone from the master when the caller hears of the failure.
    await this.release(keys, token, '', Math.max(1000, ack.timeoutMs)).catch(() => {})
    throw new BackendError(
      'acquire',
      `only ${confirmed} of ${ack.replicas} replicas confirmed the acquisition within ${waitMs} ms (replicaTimeoutMs ${ack.timeoutMs}); the acquisition was undone`,
    )
  }

  /**
   * Extends a batch of leases in one script call. Extensions never WAIT for replicas,
   * even for locks acquired with `replicas`: the key (with its token) reached the
   * replicas when the acquisition was confirmed, and an extension only re-arms its
   * TTL, which replicates asynchronously. Waiting would put replica lag on the path
   * that keeps leases alive. The cost: after a failover the new master may carry the
   * TTL of an older extension, i.e. a shorter lease than the holder counts on; the
   * holder's next extension on the new master restores it (SAFETY.md).
   */
  async extend(batch: readonly ExtendRequest[], timeoutMs: number): Promise<ExtendStatus[]> {
    const [script, keys, args] = this.#extendCall(batch)
    let reply: unknown
    try {
      reply = await this.#bounded(this.#run(script, keys, args), timeoutMs, 'extend')
    } catch (err) {
      throw toBackendError('extend', err)
    }
    if (!Array.isArray(reply) || reply.length !== batch.length) {
      throw new BackendError('extend', `unexpected reply to extend: ${safeJson(reply)}`)
    }
    return reply.map((v) => Number(v) as ExtendStatus)
  }

  /** The script and arguments for one batch: {@link EXTEND_UNIFORM} when it fits, else {@link EXTEND}. */
  #extendCall(batch: readonly ExtendRequest[]): [Script, string[], string[]] {
    const ms = batch[0]?.lifetimeMs
    if (this.#extendUniform && batch.every((l) => l.keys.length === 1 && l.lifetimeMs === ms)) {
      const keys: string[] = new Array(batch.length)
      const args: string[] = new Array(batch.length + 1)
      args[0] = msText(ms ?? 0)
      for (let i = 0; i < batch.length; i++) {
        const lease = batch[i] as ExtendRequest
        keys[i] = lease.keys[0] as string
        args[i + 1] = lease.token
      }
      return [this.#extendUniform, keys, args]
    }
    const keys: string[] = []
    const args: string[] = [String(batch.length)]
    for (const lease of batch) {
      keys.push(...lease.keys)
      args.push(lease.token, msText(lease.lifetimeMs), String(lease.keys.length))
    }
    return [this.#extend, keys, args]
  }

  /**
   * Deletes the keys still holding `token` and announces it. Resolves how many keys
   * were deleted and how many subscribers heard about it.
   */
  async release(
    keys: readonly string[],
    token: string,
    publisherId: string,
    timeoutMs: number,
  ): Promise<ReleaseResult> {
    const args =
      keys.length === 1
        ? [token, publisherId, releaseChannel(keys[0] as string)]
        : [token, publisherId, ...keys.map(releaseChannel)]
    let reply: unknown
    try {
      reply = await this.#bounded(this.#run(this.#release, keys, args), timeoutMs, 'release')
    } catch (err) {
      throw toBackendError('release', err)
    }
    if (!Array.isArray(reply))
      throw new BackendError('release', `unexpected reply to release: ${safeJson(reply)}`)
    return { removed: Number(reply[0]), receivers: Number(reply[1]) }
  }

  /**
   * The adapter's connection id, or null when it has none or Redis refuses `CLIENT ID`
   * (an ACL without it): the reconnect check in {@link Backend.#confirm} is then skipped.
   * Never rejects.
   */
  #connectionId(): Promise<unknown> {
    const ask = this.#adapter.connectionId?.bind(this.#adapter)
    if (!ask) return Promise.resolve(null)
    return ask().then(
      (id) => id,
      (err: unknown) => (this.#adapter.isReplyError(err) ? null : Symbol('connection id unknown')),
    )
  }

  /** Fire-and-forget release for cleanup paths; failures are irrelevant because the lease expires anyway. */
  releaseQuietly(keys: readonly string[], token: string, publisherId: string): void {
    this.release(keys, token, publisherId, 60_000).catch(() => {})
  }

  /** Reads a key's owner token, remaining lease and fence mark. */
  async inspect(key: string, timeoutMs: number): Promise<KeyState> {
    try {
      const reply = await this.#bounded(this.#run(INSPECT, [key, fenceKey(key)], []), timeoutMs, 'inspect')
      const [token, pttl, fence] = reply as [unknown, unknown, unknown]
      return {
        token: typeof token === 'string' ? withoutWaitingMark(token) : null,
        pttl: Number(pttl),
        fence: typeof fence === 'string' ? BigInt(fence) : null,
      }
    } catch (err) {
      throw toBackendError('inspect', err)
    }
  }

  /** The server's `run_id`: tells apart connections to the same server (a quorum must not count it twice). */
  async serverId(timeoutMs: number): Promise<string> {
    let reply: unknown
    try {
      reply = await this.#bounded(this.#run(SERVER_ID, [], []), timeoutMs, 'connect')
    } catch (err) {
      throw toBackendError('connect', err)
    }
    if (typeof reply !== 'string') throw new BackendError('connect', `unexpected run_id: ${safeJson(reply)}`)
    return reply
  }

  createSubscriber(): Subscriber {
    return this.#adapter.createSubscriber()
  }

  close(): Promise<void> {
    return this.#adapter.close()
  }

  /**
   * Rejects with a BackendError if `p` has not settled after `ms`; its late
   * settlement is swallowed. One watchdog timer serves every call in flight instead
   * of a timer per call (a measurable share of an uncontended acquisition); it may
   * fire up to {@link WATCHDOG_SLACK_MS} late, which only bounds hangs: validity is
   * checked against the deadline separately.
   */
  #bounded<T>(p: Promise<T>, ms: number, operation: BackendError['operation']): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const call: PendingCall = { at: performance.now() + ms, ms, operation, reject }
      this.#pending.add(call)
      if (call.at + WATCHDOG_SLACK_MS < this.#watchdogAt) this.#armWatchdog(call.at)
      p.then(
        (v) => {
          this.#pending.delete(call)
          resolve(v)
        },
        (e: unknown) => {
          this.#pending.delete(call)
          reject(e)
        },
      )
    })
  }

  #armWatchdog(at: number): void {
    if (this.#watchdog !== undefined) clearTimeout(this.#watchdog)
    this.#watchdogAt = at
    this.#watchdog = setTimeout(() => this.#checkPending(), Math.max(0, at - performance.now()))
    this.#watchdog.unref()
  }

  #checkPending(): void {
    this.#watchdog = undefined
    this.#watchdogAt = Number.POSITIVE_INFINITY
    const now = performance.now()
    let next = Number.POSITIVE_INFINITY
    for (const call of this.#pending) {
      if (call.at <= now) {
        this.#pending.delete(call)
        call.reject(
          new BackendError(
            call.operation,
            `${call.operation} got no reply from Redis within ${Math.round(call.ms)} ms`,
          ),
        )
      } else next = Math.min(next, call.at)
    }
    if (next < Number.POSITIVE_INFINITY) this.#armWatchdog(next)
  }

  #run(script: Script, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    // The first call of each script sends its source (EVAL caches it): an EVALSHA
    // that is bound to fail with NOSCRIPT would cost a whole extra round trip, which
    // on a slow link can be the difference between extending a lease and losing it.
    if (!this.#loaded.has(script.sha)) {
      return this.#adapter.eval(script.source, keys, args).then((reply) => {
        this.#loaded.add(script.sha)
        return reply
      })
    }
    return this.#adapter.evalsha(script.sha, keys, args).catch((err: unknown) => {
      // The server lost its script cache (restart, SCRIPT FLUSH, failover): send the
      // source once, which also caches it again for the next EVALSHA.
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
        return this.#adapter.eval(script.source, keys, args)
      }
      throw err
    })
  }
}

/** Decimal text of a lease length; nearly every lease of a Locker has the same one. */
let lastMs = -1
let lastMsText = ''
function msText(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms
    lastMsText = String(ms)
  }
  return lastMsText
}

/** The acquire script's reply for a success without fencing, which a plain SET stands for. */
const SET_REPLY = [1] as const
const ACQUIRED: AttemptResult = Object.freeze({ acquired: true, fence: undefined })

function parseAttempt(reply: unknown): AttemptResult {
  if (Array.isArray(reply)) {
    const [status, value, index] = reply as unknown[]
    if (Number(status) === 1 && reply.length === 1) return ACQUIRED
    if (Number(status) === 1 && (typeof value === 'string' || typeof value === 'number')) {
      return { acquired: true, fence: BigInt(value) }
    }
    if (Number(status) === 0) {
      return { acquired: false, pttl: Number(value), blockedIndex: Number(index) - 1 }
    }
  }
  throw new BackendError('acquire', `unexpected reply to acquire: ${safeJson(reply)}`)
}

/** A holder's token as stored, less the '!' a waiter appends (see ACQUIRE in scripts.ts). */
export function withoutWaitingMark(stored: string): string {
  return stored.length === TOKEN_LENGTH + 1 && stored.endsWith('!') ? stored.slice(0, -1) : stored
}

function toBackendError(operation: BackendError['operation'], err: unknown): BackendError {
  if (err instanceof BackendError) return err
  const text = err instanceof Error ? err.message : String(err)
  return new BackendError(operation, `${operation} failed: ${text}`, { cause: err })
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v)?.slice(0, 200) ?? String(v)
  } catch {
    return String(v)
  }
}
