import type { RedisAdapter } from '../adapters/adapter.js'
import { BackendError } from '../errors.js'
import type { AttemptResult } from '../scripts/index.js'
import { type AttemptRequest, type ReplicaAck, unsupportedReplicas } from './lock-backend.js'
import { ScriptRunner, toBackendError, WATCHDOG_SLACK_MS } from './script-runner.js'
import { SingleNodeBackend } from './single-node.js'

/**
 * An acquisition that counts only once `ack.replicas` replicas confirmed it (Redis
 * `WAIT` on the connection that wrote it). On a client with a pool of master connections (a Sentinel client)
 * the attempt and its WAIT go on one lent connection.
 */
export async function acquireConfirmed(
  backend: SingleNodeBackend,
  request: AttemptRequest,
): Promise<AttemptResult> {
  const { adapter } = backend
  const ack = request.ack as ReplicaAck
  if (!adapter.wait) {
    if (adapter.pinned) return acquirePinned(backend, adapter.pinned.bind(adapter), request)
    throw unsupportedReplicas('this client', ack.replicas)
  }
  const startedAt = performance.now()
  // Which connection the acquisition goes on: sent first, in order on the same
  // connection, and awaited only after WAIT.
  const idBefore = connectionId(adapter)
  const result = await backend.attempt(request)
  if (result.acquired) {
    await confirm(backend, request, ack, request.timeoutMs - (performance.now() - startedAt), idBefore)
  }
  return result
}

/**
 * {@link acquireConfirmed} on a pooled client: on one lent connection, so the WAIT
 * counts the acquisition's write. Waiting for the connection counts against
 * `timeoutMs`; once that is gone nothing is sent.
 */
async function acquirePinned(
  backend: SingleNodeBackend,
  pinned: NonNullable<RedisAdapter['pinned']>,
  request: AttemptRequest,
): Promise<AttemptResult> {
  const startedAt = performance.now()
  const { runner } = backend
  const onLent = async (conn: RedisAdapter): Promise<AttemptResult> => {
    const leftMs = request.timeoutMs - (performance.now() - startedAt)
    if (leftMs < 1)
      throw new BackendError('acquire', `no connection within ${Math.round(request.timeoutMs)} ms`)
    const lent = new SingleNodeBackend(new ScriptRunner(conn, runner.loaded), backend.scripts)
    return acquireConfirmed(lent, { ...request, timeoutMs: leftMs })
  }
  try {
    return await runner.bounded(pinned(onLent), request.timeoutMs + WATCHDOG_SLACK_MS, 'acquire')
  } catch (err) {
    backend.releaseQuietly({ keys: request.keys, token: request.token, publisherId: '', mode: request.mode })
    throw toBackendError('acquire', err)
  }
}

/**
 * Sends WAIT right after a successful acquisition, on the same connection: WAIT
 * counts the replicas that have every earlier write of this connection, the
 * acquisition included. Too few confirmations, an error or no reply within what is
 * left of the attempt's time: the acquisition is undone and this rejects, so a lock
 * a failover could lose is never reported acquired. Extensions are not confirmed:
 * see {@link SingleNodeBackend.extend}.
 */
async function confirm(
  backend: SingleNodeBackend,
  request: AttemptRequest,
  ack: ReplicaAck,
  leftMs: number,
  idBefore: Promise<unknown>,
): Promise<void> {
  const { adapter, runner } = backend
  const release = { keys: request.keys, token: request.token, publisherId: '', mode: request.mode }
  // The server's WAIT timeout never outlasts the attempt, so a short count comes back as such.
  const waitMs = Math.max(1, Math.min(ack.timeoutMs, Math.floor(leftMs)))
  let confirmed = 0
  try {
    if (!adapter.wait || leftMs < 1) throw new BackendError('acquire', 'no time left to wait for replicas')
    const waited = adapter.wait(ack.replicas, waitMs)
    const idAfter = connectionId(adapter)
    confirmed = await runner.bounded(waited, leftMs, 'acquire')
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
    backend.releaseQuietly(release)
    throw toBackendError('acquire', err)
  }
  if (confirmed >= ack.replicas) return
  // The master answers (only replicas lag): wait for the release, so the key is
  // gone from the master when the caller hears of the failure.
  await backend.release(release, Math.max(1000, ack.timeoutMs)).catch(() => {})
  throw new BackendError(
    'acquire',
    `only ${confirmed} of ${ack.replicas} replicas confirmed the acquisition within ${waitMs} ms (replicaTimeoutMs ${ack.timeoutMs}); the acquisition was undone`,
  )
}

/**
 * The adapter's connection id, or null when it has none or Redis refuses `CLIENT ID`
 * (an ACL without it): the reconnect check in {@link confirm} is then skipped.
 * Never rejects.
 */
function connectionId(adapter: RedisAdapter): Promise<unknown> {
  const ask = adapter.connectionId
  if (!ask) return Promise.resolve(null)
  return ask.call(adapter).then(
    (id) => id,
    (err: unknown) => (adapter.isReplyError(err) ? null : Symbol('connection id unknown')),
  )
}
