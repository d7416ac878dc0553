/**
 * async-redis-lock: a distributed lock for Node.js on Redis.
 *
 * @packageDocumentation
 */

export type {
  ClientMethod,
  GlideClientLike,
  IoRedisClient,
  IoRedisClusterClient,
  NodeRedisClient,
  NodeRedisClusterClient,
  SingleNodeClient,
} from './adapters/client-types.js'
export {
  type AcquireFailureMessage,
  type AcquireStartMessage,
  type AcquireSuccessMessage,
  type AcquireTraceContext,
  diagnosticsChannels,
  type ExtendMessage,
  type LostMessage,
  type ReleaseMessage,
  type ReleaseTraceContext,
} from './diagnostics.js'
export {
  AcquireTimeoutError,
  type AnyLockError,
  BackendError,
  CrossSlotError,
  InvalidArgumentError,
  isLockError,
  LockError,
  type LockErrorCode,
  type LockErrorsByCode,
  LockerClosedError,
  LockLostError,
  type LockLostReason,
  type NodeOutcome,
  QuorumError,
} from './errors.js'
export type { Lock } from './lock.js'
export { Locker } from './locker.js'
export type { AcquireOptions, FromUrlOptions, LockerOptions, LockOptions } from './options.js'
export type { KeyInspection, LockerStats, LockKind, RedisClient } from './types.js'
