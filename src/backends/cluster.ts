import calculateSlot from 'cluster-key-slot'
import type { RedisAdapter } from '../adapters/adapter.js'
import { BackendError, CrossSlotError, InvalidArgumentError } from '../errors.js'
import { hashTag } from '../internal/keys.js'
import { sanitizeError } from '../internal/sanitize.js'
import type { ScriptOverrides } from '../scripts/index.js'
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
import { unsupportedReplicas } from './lock-backend.js'
import { backendScripts, SingleNodeBackend } from './single-node.js'

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

/** 'MOVED' or 'ASK' when `err` (or the Redis error it wraps) is that redirect reply. */
function redirectOf(err: unknown): 'MOVED' | 'ASK' | undefined {
  const reply = err instanceof Error && err.cause instanceof Error ? err.cause : err
  const text = reply instanceof Error ? reply.message : ''
  return /^(MOVED|ASK) \d+ /.exec(text)?.[1] as 'MOVED' | 'ASK' | undefined
}

/**
 * The lock on a Redis Cluster. Every lock's keys (and their companion keys) live in one
 * slot, so each acquisition, release and inspection is one script call that the client
 * routes by its first key, following MOVED/ASK itself; script running, timeouts and
 * error wrapping are the single-node {@link SingleNodeBackend}'s. What differs: keys are checked
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
  readonly arrivalQueue = true
  readonly #adapter: RedisAdapter
  readonly #inner: SingleNodeBackend
  /** Backends on the connections to slot masters, for acquisitions with replicas. */
  readonly #onMaster = new WeakMap<RedisAdapter, SingleNodeBackend>()

  /** @param overrides replacement scripts for tests' deliberately broken variants only. */
  constructor(adapter: RedisAdapter, overrides: ScriptOverrides = {}) {
    this.#adapter = adapter
    this.#inner = new SingleNodeBackend(adapter, backendScripts(overrides, true))
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
  async acquire(request: AttemptRequest): Promise<AttemptResult> {
    const { ack } = request
    if (!ack || ack.replicas <= 0) return this.#inner.acquire(request)
    const slotMaster = this.#adapter.slotMaster?.bind(this.#adapter)
    if (!slotMaster) throw unsupportedReplicas('this Redis Cluster client', ack.replicas)
    const startedAt = performance.now()
    const left = () => Math.max(1, request.timeoutMs - (performance.now() - startedAt))
    const slot = slotOf(request.keys[0] ?? '')
    for (let redirected = false; ; redirected = true) {
      const backend = await this.#masterBackend(slotMaster, slot, left())
      try {
        return await backend.acquire({ ...request, timeoutMs: left() })
      } catch (err) {
        const redirect = redirectOf(err)
        if (redirect === undefined) throw err
        // Nothing was written on the node that redirected. The routed release follows
        // the redirect, which makes the client refresh its slot map; once it is back,
        // a MOVED slot is tried once more on its new master. ASK (a slot mid-migration)
        // is not: the key may be on either node until the migration ends.
        const { keys, token, mode } = request
        await this.#inner.release({ keys, token, publisherId: '', mode }, left()).catch(() => {})
        if (redirect !== 'MOVED' || redirected || performance.now() - startedAt >= request.timeoutMs)
          throw err
      }
    }
  }

  /** The backend on the connection to `slot`'s master, found within `timeoutMs`. */
  async #masterBackend(
    slotMaster: (slot: number) => Promise<RedisAdapter>,
    slot: number,
    timeoutMs: number,
  ): Promise<SingleNodeBackend> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no connection within ${Math.round(timeoutMs)} ms`)),
        Math.max(1, timeoutMs),
      )
    })
    let master: RedisAdapter
    try {
      master = await Promise.race([slotMaster(slot), late])
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err)
      throw new BackendError('acquire', `acquire failed: master of slot ${slot}: ${text}`, {
        cause: sanitizeError(err),
      })
    } finally {
      clearTimeout(timer)
    }
    let backend = this.#onMaster.get(master)
    if (!backend) {
      backend = new SingleNodeBackend(master, this.#inner.scripts)
      this.#onMaster.set(master, backend)
    }
    return backend
  }

  /**
   * One extension call per slot, all in parallel; statuses come back in `batch` order.
   * A lease whose slot's call failed gets no status (it is retried soon), so one
   * unreachable master does not cost the leases on the others; only if every call
   * failed does this reject.
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

  release(request: ReleaseRequest, timeoutMs: number): Promise<ReleaseResult> {
    return this.#inner.release(request, timeoutMs)
  }

  releaseQuietly(request: ReleaseRequest): void {
    this.#inner.releaseQuietly(request)
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
