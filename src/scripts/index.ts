/**
 * Every Lua script of the library, each beside its contract: the KEYS/ARGV/returns
 * header, the request it encodes and the reply it decodes. No Lua lives anywhere else.
 *
 * @module
 */
export {
  ACQUIRE,
  ACQUIRED,
  type AcquireRequest,
  type ArrivalQueue,
  type AttemptResult,
  EXCLUSIVE,
  FENCE_MARK_TTL_MS,
  type HoldKind,
  type HoldMode,
  isHolder,
  markerOf,
  SHARED,
  WRITER_MARK_MS,
  withoutWaitingMark,
} from './acquire.js'
export {
  EXTEND,
  EXTEND_HOLDERS_UNIFORM,
  EXTEND_UNIFORM,
  type ExtendRequest,
  type ExtendStatus,
  isUniform,
  uniformKind,
} from './extend.js'
export { ACQUIRE_HOLDER } from './holders.js'
export { MEMORY_POLICY, type MemoryPolicy } from './info.js'
export { INSPECT, type KeyState, SERVER_ID } from './inspect.js'
export { RELEASE, RELEASE_SHARDED, type ReleaseRequest, type ReleaseResult } from './release.js'
export { RELEASE_HOLDER, RELEASE_HOLDER_SHARDED } from './release-holder.js'
export { readNotice } from './release-notice.js'
export { type Script, type ScriptArgs, script, type TypedScript, typedScript, withSource } from './script.js'

/** Replacement Lua sources with the same contract (the test suite's negative controls only). */
export interface ScriptOverrides {
  readonly acquire?: string
  readonly extend?: string
  readonly release?: string
  /** The shared-lock/semaphore acquisition (ACQUIRE_HOLDER). */
  readonly acquireHolder?: string
  /** The shared-lock/semaphore release (RELEASE_HOLDER). */
  readonly releaseHolder?: string
}
