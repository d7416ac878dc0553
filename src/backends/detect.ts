import { adapterFor } from '../adapters/detect.js'
import { InvalidArgumentError } from '../errors.js'
import type { ScriptOverrides } from '../scripts/index.js'
import { ClusterBackend } from './cluster.js'
import type { LockBackend } from './lock-backend.js'
import { type QuorumNode, quorumBackendFor } from './quorum.js'
import { backendScripts, SingleNodeBackend } from './single-node.js'

/**
 * The backend for what the caller passed: a client of one node (or a Sentinel-managed
 * client), a Redis Cluster client, or an array of single-node clients of independent
 * masters (a quorum).
 * @param owned true when the Locker created the client (and so closes it).
 * @throws InvalidArgumentError for an unknown client, or a cluster client in a quorum.
 */
export function backendFor(client: unknown, owned: boolean, overrides: ScriptOverrides = {}): LockBackend {
  if (Array.isArray(client)) return quorumBackendFor(client, (c, i) => quorumNode(c, i, overrides))
  const adapter = adapterFor(client, owned)
  if (adapter.topology === 'cluster') return new ClusterBackend(adapter, overrides)
  return new SingleNodeBackend(adapter, backendScripts(overrides))
}

function quorumNode(client: unknown, index: number, overrides: ScriptOverrides): QuorumNode {
  const adapter = adapterFor(client, false)
  if (adapter.topology === 'cluster') {
    throw new InvalidArgumentError(
      'client',
      `client ${index} of the quorum is a Redis Cluster client: a quorum is made of independent masters, one single-node client each`,
    )
  }
  return new SingleNodeBackend(adapter, backendScripts(overrides))
}
