import type { Subscriber } from '../adapters/adapter.js'
import { InvalidArgumentError } from '../errors.js'
import type * as S from '../scripts/index.js'

export type {
  AttemptResult,
  ExtendRequest,
  ExtendStatus,
  KeyState,
  ReleaseRequest,
  ReleaseResult,
} from '../scripts/index.js'
export type { Subscriber }

/** Replica confirmation an acquisition must get (Redis `WAIT`) before it counts. */
export interface ReplicaAck {
  /** How many replicas must confirm; 0 skips the wait. */
  readonly replicas: number
  /** How long the server waits for them. */
  readonly timeoutMs: number
}

const sentNothingErrors = new WeakSet<object>()

/**
 * Marks `err` as the failure of an operation that sent nothing to Redis (a client
 * reconnecting): there is nothing to undo, and a quorum sends no release for it.
 */
export function sentNothing<E extends Error>(err: E): E {
  sentNothingErrors.add(err)
  return err
}

/** True for an error marked by {@link sentNothing}. */
export function wasSentNothing(err: unknown): boolean {
  return typeof err === 'object' && err !== null && sentNothingErrors.has(err)
}

/** One acquisition attempt, as a backend runs it. */
export interface AttemptRequest extends S.AcquireRequest {
  /**
   * How long the attempt may take, counted from when it is sent: the attempt timeout,
   * never more than the lease's validity (a reply after that is useless).
   */
  readonly timeoutMs: number
  /**
   * The keys were held at this caller's previous attempt: go straight to the acquire
   * script (which tries the SET itself) instead of a plain SET first, so a waiter's
   * retry costs one request, not two. Left unset by a waiter that a release of the key
   * woke (the key is then most likely free: the plain SET goes first, see Acquisition.run).
   */
  readonly contended?: boolean | undefined
  /** Replica confirmation to wait for; none when absent. */
  readonly ack?: ReplicaAck | undefined
  /**
   * The caller cleans up after a failed attempt itself: the backend does not release
   * the token after a timeout or an error. A quorum sets it on its nodes' attempts, so
   * a node that grants late, after a majority already did, keeps the key: the lease is
   * then on every node instead of on a bare majority until its next extension.
   */
  readonly callerUndoes?: boolean | undefined
}

/**
 * What the Locker needs from a Redis deployment: a single node, a cluster, or a quorum
 * of independent nodes. Every operation is bounded by its timeout and rejects only
 * with a `BackendError` (or a subclass), or with a `QuorumError` when a quorum of
 * independent nodes could not decide.
 */
export interface LockBackend {
  /**
   * True where a semaphore's waiting Lockers queue in Redis (one node, a cluster: see
   * ACQUIRE_HOLDER). A quorum has none: its nodes' queues could disagree on who is first.
   */
  readonly arrivalQueue?: boolean
  /**
   * Checks keys that are valid in general against this deployment's own rules
   * (a cluster: one hash slot) and a kind of lock it cannot hold safely (a quorum:
   * semaphores with a limit above 1) before anything is sent; throws a LockError.
   */
  checkKeys(keys: readonly string[], mode?: S.HoldMode): void
  /**
   * One attempt at taking all keys for the request's token. A failure that may have
   * left keys locked is cleaned up by releasing the token afterwards, unless the
   * request says the caller does (`callerUndoes`). With
   * `ack.replicas > 0` a successful attempt is only reported once that many replicas
   * confirmed it; otherwise it is released and rejects with a BackendError. A backend
   * that cannot wait for replicas rejects such a call with an InvalidArgumentError,
   * sending nothing. With `fencing`, a success carries a fencing token.
   */
  acquire(request: AttemptRequest): Promise<S.AttemptResult>
  /**
   * Extends a batch of leases; one status per lease, in order. A backend that splits
   * the batch into several calls (a cluster: one per slot) leaves a lease's status
   * undefined when its call failed and the others did not; such a lease is retried.
   */
  extend(batch: readonly S.ExtendRequest[], timeoutMs: number): Promise<(S.ExtendStatus | undefined)[]>
  /** Deletes the keys still holding the token and announces the release. */
  release(request: S.ReleaseRequest, timeoutMs: number): Promise<S.ReleaseResult>
  /** Fire-and-forget release for cleanup paths; never rejects. */
  releaseQuietly(request: S.ReleaseRequest): void
  /** Reads a key's owner token, remaining lease and fence mark. */
  inspect(key: string, timeoutMs: number): Promise<S.KeyState>
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
