import calculateSlot from 'cluster-key-slot'
import { BackendError, CrossSlotError, InvalidArgumentError } from '../errors.js'
import { hashTag } from '../internal/keys.js'
import { RELEASE_SHARDED } from '../scripts.js'
import type { RedisAdapter, Subscriber } from './adapter.js'
import { Backend } from './backend.js'
import type { ScriptOverrides } from './detect.js'
import { IoRedisClusterAdapter, isIoRedisCluster } from './ioredis-cluster.js'
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
import { isNodeRedisCluster, NodeRedisClusterAdapter } from './node-redis-cluster.js'

/** The hash slot Redis Cluster assigns to `key` (0..16383). */
export function slotOf(key: string): number {
  return calculateSlot(key)
}

/**
 * Rejects keys that cannot be locked on a cluster, before anything is sent: a key whose
 * companions (fence mark, release channel) cannot share its slot, and a set of keys
 * that spans slots (a script may only touch keys of one slot).
 * @throws InvalidArgumentError for a key with a `}` but no valid hash tag.
 * @throws CrossSlotError when the keys map to more than one slot.
 */
export function checkClusterKeys(keys: readonly string[]): void {
  for (const key of keys) {
    // keys.ts can only wrap a key in braces when it has no `}`; such a key without a
    // valid tag gets a plain suffix, which hashes to another slot.
    if (hashTag(key) === undefined && key.includes('}')) {
      throw new InvalidArgumentError(
        'keys',
        `on a Redis Cluster a key with "}" needs a valid hash tag (a non-empty "{...}" before it) so ` +
          `its fence and release channel share its slot; received ${JSON.stringify(key)}`,
      )
    }
  }
  const slots = keys.map((key) => ({ key, slot: slotOf(key) }))
  const first = slots[0]?.slot
  if (slots.some((s) => s.slot !== first)) throw new CrossSlotError(slots)
}

/** A cluster adapter that also hands out the connection its client uses for a slot's master. */
export interface SlotMasterAdapter extends RedisAdapter {
  /**
   * An adapter (with `wait`) on the very connection the client routes `slot`'s
   * commands to; rejects when the client knows no master for it. The same connection
   * gives the same adapter.
   */
  slotMaster(slot: number): Promise<RedisAdapter>
}

function hasSlotMasters(adapter: RedisAdapter): adapter is SlotMasterAdapter {
  return typeof (adapter as Partial<SlotMasterAdapter>).slotMaster === 'function'
}

/** 'MOVED' or 'ASK' when `err` (or the Redis error it wraps) is that redirect reply. */
function redirectOf(err: unknown): 'MOVED' | 'ASK' | undefined {
  const reply = err instanceof Error && err.cause instanceof Error ? err.cause : err
  const text = reply instanceof Error ? reply.message : ''
  return /^(MOVED|ASK) \d+ /.exec(text)?.[1] as 'MOVED' | 'ASK' | undefined
}

/** True for a Redis Cluster client of either library. */
export function isClusterClient(client: unknown): boolean {
  return isIoRedisCluster(client) || isNodeRedisCluster(client)
}

/** A {@link ClusterBackend} for an ioredis `Cluster` or a node-redis `createCluster()` client; otherwise undefined. */
export function clusterBackendFor(
  client: unknown,
  owned: boolean,
  scripts: ScriptOverrides = {},
): LockBackend | undefined {
  if (isIoRedisCluster(client)) return new ClusterBackend(new IoRedisClusterAdapter(client, owned), scripts)
  if (isNodeRedisCluster(client)) {
    return new ClusterBackend(new NodeRedisClusterAdapter(client, owned), scripts)
  }
  return undefined
}

/**
 * The lock on a Redis Cluster. Every lock's keys (and their companion keys) live in one
 * slot, so each acquisition, release and inspection is one script call that the client
 * routes by its first key, following MOVED/ASK itself; script running, timeouts and
 * error wrapping are the single-node {@link Backend}'s. What differs: keys are checked
 * for one slot before sending, extension batches are split per slot, and releases are
 * announced with SPUBLISH to subscribers of the key's own shard.
 *
 * Errors such as CLUSTERDOWN or TRYAGAIN become BackendErrors like any other Redis
 * error: never contention, and a failed acquisition is released afterwards.
 *
 * An acquisition with `replicas > 0` is not routed by the client: it runs the
 * single-node Backend (script, then WAIT, failing closed) on the connection to the
 * master of the keys' slot, so WAIT counts the replicas of that master that have the
 * script's writes (see {@link ClusterBackend.acquire}).
 */
export class ClusterBackend implements LockBackend {
  readonly #adapter: RedisAdapter
  readonly #scripts: ScriptOverrides
  readonly #inner: Backend
  /** Backends on the connections to slot masters, for acquisitions with replicas. */
  readonly #onMaster = new WeakMap<RedisAdapter, Backend>()

  /** @param scripts replacements for tests' deliberately broken variants only. */
  constructor(adapter: RedisAdapter, scripts: ScriptOverrides = {}) {
    this.#adapter = adapter
    this.#scripts = { ...scripts, release: scripts.release ?? RELEASE_SHARDED }
    this.#inner = new Backend(adapter, this.#scripts)
  }

  get kind(): RedisAdapter['kind'] {
    return this.#inner.kind
  }

  checkKeys(keys: readonly string[]): void {
    checkClusterKeys(keys)
  }

  /**
   * Without replicas: one script call routed by the client. With `ack.replicas > 0`,
   * WAIT only counts the writes of the connection it is sent on, so the script and the
   * WAIT both go, in order, on the connection the client uses for the master of the
   * keys' slot, outside the client's routing. A MOVED (the slot moved since the
   * client's last slot map) is followed once: the token is released through the
   * client's routing, which follows the redirect and refreshes the slot map, and the
   * attempt is made again on the slot's new master within the same time bound. An ASK
   * (the slot is being migrated) or a second MOVED fails the attempt with a
   * BackendError, nothing having been written.
   */
  async acquire(
    keys: readonly string[],
    token: string,
    lifetimeMs: number,
    timeoutMs: number,
    ack?: ReplicaAck,
    fencing = false,
  ): Promise<AttemptResult> {
    if (!ack || ack.replicas <= 0)
      return this.#inner.acquire(keys, token, lifetimeMs, timeoutMs, undefined, fencing)
    if (!hasSlotMasters(this.#adapter)) throw unsupportedReplicas('this Redis Cluster client', ack.replicas)
    const startedAt = performance.now()
    const left = () => Math.max(1, timeoutMs - (performance.now() - startedAt))
    const slot = slotOf(keys[0] ?? '')
    for (let redirected = false; ; redirected = true) {
      const backend = await this.#masterBackend(this.#adapter, slot, left())
      try {
        return await backend.acquire(keys, token, lifetimeMs, left(), ack, fencing)
      } catch (err) {
        const redirect = redirectOf(err)
        if (redirect === undefined) throw err
        // Nothing was written on the node that redirected. The routed release follows
        // the redirect, which makes the client refresh its slot map; once it is back,
        // a MOVED slot is tried once more on its new master. ASK (a slot mid-migration)
        // is not: the key may be on either node until the migration ends.
        await this.#inner.release(keys, token, '', left()).catch(() => {})
        if (redirect !== 'MOVED' || redirected || performance.now() - startedAt >= timeoutMs) throw err
      }
    }
  }

  /** The Backend on the connection to `slot`'s master, found within `timeoutMs`. */
  async #masterBackend(adapter: SlotMasterAdapter, slot: number, timeoutMs: number): Promise<Backend> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no connection within ${Math.round(timeoutMs)} ms`)),
        Math.max(1, timeoutMs),
      )
    })
    let master: RedisAdapter
    try {
      master = await Promise.race([adapter.slotMaster(slot), late])
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err)
      throw new BackendError('acquire', `acquire failed: master of slot ${slot}: ${text}`, { cause: err })
    } finally {
      clearTimeout(timer)
    }
    let backend = this.#onMaster.get(master)
    if (!backend) {
      backend = new Backend(master, this.#scripts)
      this.#onMaster.set(master, backend)
    }
    return backend
  }

  /**
   * One EXTEND call per slot, all in parallel; statuses come back in `batch` order. A
   * lease whose slot's call failed gets no status (the Renewer retries it soon), so one unreachable
   * master does not cost the leases on the others; only if every call failed does
   * this reject.
   */
  async extend(batch: readonly ExtendRequest[], timeoutMs: number): Promise<(ExtendStatus | undefined)[]> {
    const groups = new Map<number, number[]>()
    for (const [i, lease] of batch.entries()) {
      const slot = slotOf(lease.keys[0] ?? '')
      const group = groups.get(slot)
      if (group) group.push(i)
      else groups.set(slot, [i])
    }
    const out: (ExtendStatus | undefined)[] = new Array(batch.length).fill(undefined)
    const settled = await Promise.allSettled(
      [...groups.values()].map(async (indexes) => {
        const statuses = await this.#inner.extend(
          indexes.map((i) => batch[i] as ExtendRequest),
          timeoutMs,
        )
        for (const [j, i] of indexes.entries()) out[i] = statuses[j]
      }),
    )
    const failed = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected')
    if (failed.length === settled.length && failed[0]) throw failed[0].reason
    return out
  }

  release(
    keys: readonly string[],
    token: string,
    publisherId: string,
    timeoutMs: number,
  ): Promise<ReleaseResult> {
    return this.#inner.release(keys, token, publisherId, timeoutMs)
  }

  releaseQuietly(keys: readonly string[], token: string, publisherId: string): void {
    this.#inner.releaseQuietly(keys, token, publisherId)
  }

  /** Rejects a key that {@link checkClusterKeys} refuses (its fence mark is in another slot) without sending. */
  async inspect(key: string, timeoutMs: number): Promise<KeyState> {
    checkClusterKeys([key])
    return this.#inner.inspect(key, timeoutMs)
  }

  createSubscriber(): Subscriber {
    return this.#inner.createSubscriber()
  }

  close(): Promise<void> {
    return this.#inner.close()
  }
}
