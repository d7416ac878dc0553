import type { RedisAdapter, Subscriber } from '../adapters/adapter.js'
import { BackendError } from '../errors.js'
import {
  ACQUIRE,
  ACQUIRE_HOLDER,
  ACQUIRED,
  type AttemptResult,
  EXTEND,
  EXTEND_HOLDERS_UNIFORM,
  EXTEND_UNIFORM,
  type ExtendRequest,
  type ExtendStatus,
  INSPECT,
  isHolder,
  type KeyState,
  RELEASE,
  RELEASE_HOLDER,
  RELEASE_HOLDER_SHARDED,
  RELEASE_SHARDED,
  type ReleaseRequest,
  type ReleaseResult,
  type ScriptOverrides,
  SERVER_ID,
  type TypedScript,
  uniformKind,
  withSource,
} from '../scripts/index.js'
import { unexpectedReply } from '../scripts/script.js'
import { type AttemptRequest, type LockBackend, sentNothing } from './lock-backend.js'
import { acquireConfirmed } from './replicas.js'
import { ScriptRunner, toBackendError } from './script-runner.js'

/** The scripts one backend runs (replaced only in the test suite's negative controls). */
export interface BackendScripts {
  readonly acquire: TypedScript<AttemptRequest, AttemptResult>
  readonly extend: TypedScript<readonly ExtendRequest[], ExtendStatus[]>
  /** Null when the extend script was replaced: every batch then takes that one. */
  readonly extendUniform: TypedScript<readonly ExtendRequest[], ExtendStatus[]> | null
  /** The compact script for a batch of holders; null when the extend script was replaced. */
  readonly extendHolders: TypedScript<readonly ExtendRequest[], ExtendStatus[]> | null
  readonly release: TypedScript<ReleaseRequest, ReleaseResult>
  /** A shared lock's or semaphore's holder: its acquisition and release. */
  readonly acquireHolder: TypedScript<AttemptRequest, AttemptResult>
  readonly releaseHolder: TypedScript<ReleaseRequest, ReleaseResult>
}

/**
 * The scripts with `overrides` applied; `sharded` (Redis Cluster) announces releases
 * with SPUBLISH.
 */
export function backendScripts(overrides: ScriptOverrides = {}, sharded = false): BackendScripts {
  return {
    acquire: withSource(ACQUIRE, overrides.acquire),
    extend: withSource(EXTEND, overrides.extend),
    extendUniform: overrides.extend === undefined ? EXTEND_UNIFORM : null,
    extendHolders: overrides.extend === undefined ? EXTEND_HOLDERS_UNIFORM : null,
    release: withSource(sharded ? RELEASE_SHARDED : RELEASE, overrides.release),
    acquireHolder: withSource(ACQUIRE_HOLDER, overrides.acquireHolder),
    releaseHolder: withSource(sharded ? RELEASE_HOLDER_SHARDED : RELEASE_HOLDER, overrides.releaseHolder),
  }
}

/**
 * The lock on one Redis node (plain or Sentinel-managed), over one adapter: every
 * operation one script call (or a plain `SET NX PX`) through a {@link ScriptRunner}.
 */
export class SingleNodeBackend implements LockBackend {
  readonly arrivalQueue = true
  readonly runner: ScriptRunner
  readonly scripts: BackendScripts

  /** @param runner the adapter's script runner (shared by backends on the same connection). */
  constructor(adapter: RedisAdapter | ScriptRunner, scripts: BackendScripts = backendScripts()) {
    this.runner = adapter instanceof ScriptRunner ? adapter : new ScriptRunner(adapter)
    this.scripts = scripts
  }

  get adapter(): RedisAdapter {
    return this.runner.adapter
  }

  /** Any key is fine on a single node. */
  checkKeys(_keys: readonly string[]): void {}

  /**
   * One attempt at taking the keys. Rejects with a BackendError on any failure; a
   * failure that may have left the keys locked (timeout, connection lost, or a
   * script error after partial work) is cleaned up by releasing the token afterwards.
   * With `ack.replicas > 0`, a success is confirmed with WAIT first (replicas.ts).
   *
   * One key without fencing: a plain `SET NX PX` (the cheapest acquisition Redis
   * has); only when it finds the key taken does the acquire script follow, which
   * retries, reads the holder's TTL for the waiter, tells a replayed SET of our own
   * (the key holds our token) from a real holder, and reports a non-string key.
   */
  acquire(request: AttemptRequest): Promise<AttemptResult> {
    if ((request.ack?.replicas ?? 0) > 0) return acquireConfirmed(this, request)
    return this.attempt(request)
  }

  /** {@link SingleNodeBackend.acquire} without replica confirmation; `timeoutMs` bounds it. */
  attempt(request: AttemptRequest): Promise<AttemptResult> {
    if (this.adapter.isReconnecting?.()) {
      // Nothing is sent: a command now would sit in the client's offline queue.
      return Promise.reject(
        sentNothing(
          new BackendError('acquire', 'acquire failed: the client is reconnecting to Redis (not connected)'),
        ),
      )
    }
    const startedAt = performance.now()
    const { keys, token, lifetimeMs, timeoutMs, fencing } = request
    const setNx = this.adapter.setNx
    const only = keys.length === 1 ? keys[0] : undefined
    if (!isHolder(request.mode) && !fencing && only !== undefined && setNx && request.contended !== true) {
      // The fast path, a promise chain rather than an async function (it runs on every
      // uncontended acquisition): the SET, and the script only when the key is taken.
      let set: Promise<boolean>
      try {
        set = setNx.call(this.adapter, only, token, lifetimeMs)
      } catch (err) {
        return Promise.reject(this.#failed(request, err))
      }
      return this.runner.bounded(set, timeoutMs, 'acquire').then(
        (ok) => (ok ? ACQUIRED : this.#scripted(request, startedAt)),
        (err: unknown) => {
          throw this.#failed(request, err)
        },
      )
    }
    return this.#scripted(request, startedAt)
  }

  /** An attempt by script (holders, fencing, several keys, a taken key), within what is left of `timeoutMs`. */
  async #scripted(request: AttemptRequest, startedAt: number): Promise<AttemptResult> {
    const { timeoutMs } = request
    const left = () => Math.max(1, timeoutMs - (performance.now() - startedAt))
    try {
      if (isHolder(request.mode))
        return await this.runner.call(this.scripts.acquireHolder, request, left(), 'acquire')
      const result = await this.runner.call(this.scripts.acquire, request, left(), 'acquire')
      if (result.acquired || result.companions !== true || request.companions === true || result.pttl > 0) {
        return result
      }
      // A shared lock or semaphore: the script needs its holders set and writer mark.
      return await this.runner.call(this.scripts.acquire, { ...request, companions: true }, left(), 'acquire')
    } catch (err) {
      throw this.#failed(request, err)
    }
  }

  /**
   * A failed attempt: the request may have been applied (or may still be, from an
   * offline queue), so the token is released once it settles, in order on the same
   * connection. Returns the error to throw.
   */
  #failed(request: AttemptRequest, err: unknown): BackendError {
    const { keys, token } = request
    if (request.callerUndoes !== true)
      this.releaseQuietly({ keys, token, publisherId: '', mode: request.mode })
    return toBackendError('acquire', err, [token])
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
    const { extend, extendUniform, extendHolders } = this.scripts
    const uniform = uniformKind(batch)
    const script =
      uniform === 'exclusive' && extendUniform
        ? extendUniform
        : uniform === 'holders' && extendHolders
          ? extendHolders
          : extend
    if (script === extendHolders) {
      // Holders of one key in one run of the script (one read, one ZADD); a batch already
      // in runs (holders acquired together sit together in the renewer's list) goes as is.
      const byKey = runsByKey(batch)
      if (byKey !== undefined) return this.#extendRegrouped(script, batch, byKey, timeoutMs)
    }
    const statuses = await this.runner.call(script, batch, timeoutMs, 'extend')
    if (statuses.length !== batch.length) throw unexpectedReply('extend', statuses)
    return statuses
  }

  /**
   * Extends `batch` in the order of `byKey` (its indices per key, see runsByKey);
   * statuses back in batch order.
   */
  async #extendRegrouped(
    script: TypedScript<readonly ExtendRequest[], ExtendStatus[]>,
    batch: readonly ExtendRequest[],
    byKey: ReadonlyMap<string, readonly number[]>,
    timeoutMs: number,
  ): Promise<ExtendStatus[]> {
    const order: number[] = []
    const grouped: ExtendRequest[] = []
    for (const run of byKey.values())
      for (const i of run) {
        order.push(i)
        grouped.push(batch[i] as ExtendRequest)
      }
    const inRuns = await this.runner.call(script, grouped, timeoutMs, 'extend')
    if (inRuns.length !== batch.length) throw unexpectedReply('extend', inRuns)
    const statuses = new Array<ExtendStatus>(batch.length)
    for (let j = 0; j < order.length; j++) statuses[order[j] as number] = inRuns[j] as ExtendStatus
    return statuses
  }

  /**
   * Deletes the keys still holding the token and announces it. Resolves how many keys
   * were deleted and how many subscribers heard about it.
   */
  release(request: ReleaseRequest, timeoutMs: number): Promise<ReleaseResult> {
    const script = isHolder(request.mode) ? this.scripts.releaseHolder : this.scripts.release
    return this.runner.call(script, request, timeoutMs, 'release')
  }

  /** Fire-and-forget release for cleanup paths; failures are irrelevant because the lease expires anyway. */
  releaseQuietly(request: ReleaseRequest): void {
    this.release(request, 60_000).catch(() => {})
  }

  /** Reads a key's owner token, remaining lease and fence mark. */
  inspect(key: string, timeoutMs: number): Promise<KeyState> {
    return this.runner.call(INSPECT, { key }, timeoutMs, 'inspect')
  }

  /** The server's `run_id`: tells apart connections to the same server (a quorum must not count it twice). */
  serverId(timeoutMs: number): Promise<string> {
    return this.runner.call(SERVER_ID, undefined, timeoutMs, 'connect')
  }

  createSubscriber(): Subscriber {
    return this.adapter.createSubscriber()
  }

  close(): Promise<void> {
    return this.adapter.close()
  }
}

/**
 * The indices of `batch` per key (first key first), or undefined when the leases of each
 * key are next to each other already and the batch needs no regrouping. One pass, with
 * a map rather than a sort (a sort with a comparator per pair is the costlier of the two
 * on 500-lease batches).
 */
function runsByKey(batch: readonly ExtendRequest[]): Map<string, number[]> | undefined {
  const byKey = new Map<string, number[]>()
  let last: string | undefined
  let inRuns = true
  for (let i = 0; i < batch.length; i++) {
    const key = (batch[i] as ExtendRequest).keys[0] as string
    const run = byKey.get(key)
    if (run === undefined) byKey.set(key, [i])
    else {
      run.push(i)
      if (key !== last) inRuns = false
    }
    last = key
  }
  return inRuns ? undefined : byKey
}

/** True when the leases of each key are next to each other in `batch` (then it goes as is). */
export function keysInRuns(batch: readonly ExtendRequest[]): boolean {
  return runsByKey(batch) === undefined
}
