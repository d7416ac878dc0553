import { InvalidArgumentError } from '../errors.js'
import type { Subscriber } from './adapter.js'

/** Outcome of one acquisition attempt. */
export type AttemptResult =
  | { readonly acquired: true; readonly fence: bigint | undefined }
  | { readonly acquired: false; readonly pttl: number; readonly blockedIndex: number }

/** One lease in an extension batch. */
export interface ExtendRequest {
  readonly keys: readonly string[]
  readonly token: string
  readonly lifetimeMs: number
}

/** Replica confirmation an acquisition must get (Redis `WAIT`) before it counts. */
export interface ReplicaAck {
  /** How many replicas must confirm; 0 skips the wait. */
  readonly replicas: number
  /** How long the server waits for them. */
  readonly timeoutMs: number
}

/** Per lease: 1 extended, 0 a key was gone, -1 a key has another owner. */
export type ExtendStatus = 1 | 0 | -1

/** Outcome of a release. */
export interface ReleaseResult {
  /** Keys deleted by this call. */
  readonly removed: number
  /** Subscribers (of any process, ours included) that received the release messages. */
  readonly receivers: number
}

/** What `inspect` reads about one key. */
export interface KeyState {
  readonly token: string | null
  readonly pttl: number
  readonly fence: bigint | null
}

/**
 * What the Locker needs from a Redis deployment: a single node (`Backend`), a
 * cluster, or a quorum of independent nodes. Every operation is bounded by its
 * timeout and rejects only with a `BackendError` (or a subclass), or with a
 * `QuorumError` when a quorum of independent nodes could not decide.
 */
export interface LockBackend {
  /**
   * Checks keys that are valid in general against this deployment's own rules
   * (a cluster: one hash slot) before anything is sent; throws a LockError.
   */
  checkKeys(keys: readonly string[]): void
  /**
   * One attempt at taking all `keys` for `token`. A failure that may have left keys
   * locked is cleaned up by releasing `token` afterwards. With `ack.replicas > 0` a
   * successful attempt is only reported once that many replicas confirmed it;
   * otherwise it is released and rejects with a BackendError. A backend that cannot
   * wait for replicas rejects such a call with an InvalidArgumentError, sending nothing.
   * With `fencing`, a success carries a fencing token; without, its fence is undefined.
   */
  acquire(
    keys: readonly string[],
    token: string,
    lifetimeMs: number,
    timeoutMs: number,
    ack?: ReplicaAck,
    fencing?: boolean,
  ): Promise<AttemptResult>
  /**
   * Extends a batch of leases; one status per lease, in order. A backend that splits
   * the batch into several calls (a cluster: one per slot) leaves a lease's status
   * undefined when its call failed and the others did not; such a lease is retried.
   */
  extend(batch: readonly ExtendRequest[], timeoutMs: number): Promise<(ExtendStatus | undefined)[]>
  /** Deletes the keys still holding `token` and announces the release. */
  release(
    keys: readonly string[],
    token: string,
    publisherId: string,
    timeoutMs: number,
  ): Promise<ReleaseResult>
  /** Fire-and-forget release for cleanup paths; never rejects. */
  releaseQuietly(keys: readonly string[], token: string, publisherId: string): void
  /** Reads a key's owner token, remaining lease and fence mark. */
  inspect(key: string, timeoutMs: number): Promise<KeyState>
  /** A subscriber that receives release announcements for the keys it subscribes to. */
  createSubscriber(): Subscriber
  /** Closes what this backend owns. */
  close(): Promise<void>
}

/** The error of a backend that cannot wait for replica confirmation. */
export function unsupportedReplicas(where: string, replicas: number): InvalidArgumentError {
  return new InvalidArgumentError(
    'replicas',
    `replicas (waiting for replica confirmation) is not supported on ${where} yet: expected 0; received ${replicas}`,
  )
}
