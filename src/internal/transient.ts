import { LockError, QuorumError } from '../errors.js'

/**
 * Redis error codes after which the same request may well succeed soon: the server is
 * starting, failing over, migrating a slot, busy with a script, or out of memory. An
 * `acquire` rides them out (retrying within `retryTimeoutMs`).
 */
const TRANSIENT_CODES = new Set([
  'LOADING',
  'READONLY',
  'MASTERDOWN',
  'CLUSTERDOWN',
  'TRYAGAIN',
  'BUSY',
  'OOM',
  'MOVED',
  'ASK',
  'NOREPLICAS',
])

/**
 * Valkey GLIDE reports the codes it knows by its own kind names ("An error was
 * signalled by the server: - PermissionDenied: ..."): the Redis code each stands for.
 */
const GLIDE_KINDS: Readonly<Record<string, string>> = {
  BusyLoadingError: 'LOADING',
  ReadOnly: 'READONLY',
  MasterDown: 'MASTERDOWN',
  ClusterDown: 'CLUSTERDOWN',
  TryAgain: 'TRYAGAIN',
  Moved: 'MOVED',
  Ask: 'ASK',
  PermissionDenied: 'NOPERM',
  AuthenticationFailed: 'NOAUTH',
  ResponseError: 'ERR',
  NoScriptError: 'NOSCRIPT',
}

/** The Redis error code an error (or the error it wraps) starts with, if any. */
function replyCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e instanceof LockError) continue
    const glide = /^An error was signalled by the server: - (\w+)/.exec(e.message)?.[1]
    if (glide !== undefined) return GLIDE_KINDS[glide] ?? 'ERR'
    return /^([A-Z][A-Z_]+)\b/.exec(e.message)?.[1]
  }
  return undefined
}

/**
 * Whether `acquire` should try again after `err`. Transient: a lost or refused
 * connection, a reconnecting client, an attempt with no reply in time, a reply that
 * came after the lease's validity, too few replica confirmations, a quorum that could
 * not decide, and the Redis codes in {@link TRANSIENT_CODES}. Permanent (fail at once):
 * bad arguments, a closed Locker, and every other Redis error reply — WRONGTYPE, a
 * value that is not a lock, NOPERM, NOAUTH/WRONGPASS, a failed SELECT, an unknown
 * command.
 */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof LockError)) return false
  // A quorum that could not decide: worth retrying only if some node timed out or
  // failed transiently (every node answering NOPERM would fail the same way forever).
  if (err instanceof QuorumError) {
    return err.outcomes.some(
      (o) => o.outcome === 'timeout' || (o.outcome === 'error' && isTransient(o.error)),
    )
  }
  if (err.code !== 'ERR_LOCK_BACKEND') return false
  const code = replyCode(err.cause)
  if (code === undefined) return true // no Redis reply at all: the connection or a timeout
  return TRANSIENT_CODES.has(code)
}
