/**
 * The eviction check: once per Locker, in the background, each server's memory limit
 * and eviction policy are read, and one process warning is emitted when Redis may
 * evict lock keys. An evicted lock key is a lock that silently stops excluding: the
 * next acquirer gets it while its holder still believes it holds it.
 *
 * @module
 */
import type { Topology } from './adapters/adapter.js'
import { adapterFor } from './adapters/detect.js'
import { ScriptRunner } from './backends/script-runner.js'
import { MEMORY_POLICY, type MemoryPolicy } from './scripts/index.js'

/** The `code` of the warning (`node --disable-warning=ASYNC_REDIS_LOCK_EVICTION` silences it). */
export const EVICTION_WARNING_CODE = 'ASYNC_REDIS_LOCK_EVICTION'
/** The `name` of the warning (its type, as `process.emitWarning` calls it). */
export const WARNING_TYPE = 'AsyncRedisLockWarning'
/** How long the check waits for each server; a server that takes longer is not checked. */
export const EVICTION_CHECK_TIMEOUT_MS = 2000

/** A server the check reads: its script runner, and whether it is a cluster client's. */
export interface EvictionTarget {
  /** Runs the check's script on that server. */
  readonly runner: ScriptRunner
  /** `cluster` when only the node the client reaches is checked. */
  readonly topology: Topology
}

/** A server that may evict lock keys. */
export interface Evicting {
  /** Its position among the Locker's clients (a quorum's node number). */
  readonly index: number
  /** As the target's. */
  readonly topology: Topology
  /** What the server said. */
  readonly policy: MemoryPolicy
}

/**
 * True when the server may evict keys with a TTL: a memory limit and any policy but
 * `noeviction`. Lock keys always have a TTL, so every `volatile-*` policy evicts them
 * as readily as `allkeys-*` does.
 */
export function evicts(policy: MemoryPolicy): boolean {
  return policy.maxmemory > 0 && policy.policy !== 'noeviction'
}

/**
 * For a Locker: a function whose first call starts the check of `client` (what the
 * Locker was given: a client or a quorum's array) and whose later calls do nothing.
 * The check starts after the caller's synchronous work (the first acquisition's
 * command goes out first), never throws nor rejects, sends one script call per server
 * bounded by {@link EVICTION_CHECK_TIMEOUT_MS} (on an unref'd timer, so it never keeps
 * the process alive), and is skipped silently when refused (an ACL without INFO or
 * scripts, an unknown command), unanswered or without a connection.
 */
export function evictionCheck(client: unknown): () => void {
  let pending: unknown = client
  let started = false
  return () => {
    if (started) return
    started = true
    const target = pending
    pending = undefined // no reference to the client once the check is on its way
    queueMicrotask(() => {
      try {
        void warnIfEvicting(targetsFor(target), Array.isArray(target))
      } catch {
        // Not a client we can read (the Locker's constructor would have said so).
      }
    })
  }
}

/** One target per client: a script runner of its own over a borrowed (never closed) adapter. */
export function targetsFor(client: unknown): EvictionTarget[] {
  const clients: unknown[] = Array.isArray(client) ? client : [client]
  return clients.map((c) => {
    const adapter = adapterFor(c, false)
    return { runner: new ScriptRunner(adapter), topology: adapter.topology }
  })
}

/**
 * Reads every target's policy in parallel (each bounded by `timeoutMs`) and emits one
 * warning naming every server that may evict lock keys. Resolves the warning's text,
 * or undefined when there was nothing to warn about or nothing could be read; never
 * rejects.
 */
export async function warnIfEvicting(
  targets: readonly EvictionTarget[],
  quorum: boolean,
  timeoutMs: number = EVICTION_CHECK_TIMEOUT_MS,
): Promise<string | undefined> {
  try {
    const read = await Promise.allSettled(
      targets.map((t) => t.runner.call(MEMORY_POLICY, undefined, timeoutMs, 'inspect')),
    )
    const found: Evicting[] = []
    for (const [index, r] of read.entries()) {
      if (r.status === 'fulfilled' && evicts(r.value)) {
        found.push({ index, topology: targets[index]?.topology ?? 'single', policy: r.value })
      }
    }
    if (found.length === 0) return undefined
    const message = evictionWarning(found, quorum ? targets.length : 0)
    process.emitWarning(message, { type: WARNING_TYPE, code: EVICTION_WARNING_CODE })
    return message
  } catch {
    return undefined
  }
}

/** The warning's text for the servers `found`; `quorumSize` is 0 for a single client. */
export function evictionWarning(found: readonly Evicting[], quorumSize: number): string {
  const head =
    quorumSize > 0
      ? `${found.length} of the ${quorumSize} Redis nodes of this quorum may evict lock keys: ` +
        `${found.map((f) => `client ${f.index} (${[...identity(f.policy), settings(f.policy)].join(', ')})`).join('; ')}.`
      : found.map((f) => `The ${server(f)} may evict lock keys (${settings(f.policy)}).`).join(' ')
  const one = quorumSize === 0 || found.length === 1
  return (
    `${head} Every policy but noeviction evicts lock keys under memory pressure, volatile-* ones ` +
    'included (every lock key has a TTL). An evicted lock key is a free lock: another client ' +
    'acquires it while its holder still believes it holds it, and the holder finds out only at ' +
    "its next extension (loss reason 'deleted', or 'stolen'). Fix: set maxmemory-policy noeviction on " +
    `${one ? 'this server' : 'these servers'} (Redis then refuses new writes with an OOM error ` +
    'instead of dropping held locks), or keep the locks on a dedicated Redis with noeviction. ' +
    'See SAFETY.md, "Outside the contract".'
  )
}

/** `port 6380`, `Redis 7.0.15`: as much as the server told. */
function identity(policy: MemoryPolicy): string[] {
  const out: string[] = []
  if (policy.port !== undefined) out.push(`port ${policy.port}`)
  if (policy.version !== undefined) out.push(`Redis ${policy.version}`)
  return out
}

function server({ topology, policy }: Evicting): string {
  const at = policy.port === undefined ? '' : ` on port ${policy.port}`
  const version = policy.version === undefined ? '' : ` (Redis ${policy.version})`
  return topology === 'cluster'
    ? `Redis Cluster node${at}${version} that this client reached (the other nodes were not checked)`
    : `Redis server${at}${version}`
}

function settings(policy: MemoryPolicy): string {
  return `maxmemory ${policy.maxmemoryHuman}, maxmemory-policy ${policy.policy}`
}
