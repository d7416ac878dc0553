import type { ExtendRequest, ExtendStatus, LockBackend } from './lock-backend.js'
import { nodeTimeoutMs } from './quorum.js'

/**
 * Re-creates a lease's keys on the nodes of a quorum where they are missing (a node
 * restarted empty, or lost them in a failover), once a majority confirmed the
 * extension: no one else can hold a majority meanwhile, so the plain `SET NX` of an
 * acquisition takes nothing from anybody. Without it a lock held across
 * one-node-at-a-time restarts of every node would lose its majority at the last
 * restart. Late answers count too; a heal that fails changes nothing (the node had no
 * key of ours). A lease released (or lost and cleaned up) meanwhile is not healed:
 * its keys would be left behind with nobody to release them.
 */
export class Healer {
  /** Tokens released lately, with when to forget them. */
  readonly #released = new Map<string, number>()

  /** Notes that `token` is being released: its keys are never re-created from now on. */
  released(token: string): void {
    const now = performance.now()
    if (this.#released.size > 1000) {
      for (const [t, until] of this.#released) if (until <= now) this.#released.delete(t)
    }
    // Longer than any extension in flight can take to answer.
    this.#released.set(token, now + 60_000)
  }

  /** Heals, on each node as its answer to the batch comes, the leases a majority extended. */
  heal(
    nodes: readonly LockBackend[],
    batch: readonly ExtendRequest[],
    statuses: readonly (ExtendStatus | undefined)[],
    calls: readonly Promise<readonly (ExtendStatus | undefined)[]>[],
  ): void {
    for (const [n, call] of calls.entries()) {
      call.then(
        (onNode) => {
          for (const [i, lease] of batch.entries()) {
            if (statuses[i] !== 1 || onNode[i] !== 0) continue
            const { keys, token, lifetimeMs, mode } = lease
            // A release sent after this SET on the node's connection comes after it there.
            if (this.#wasReleased(token)) continue
            const timeoutMs = nodeTimeoutMs(lifetimeMs, lifetimeMs)
            // A shared holder is re-added as one (the holder script admits it only where no writer holds).
            // A heal that times out and lands late still belongs to a lease a majority holds: kept.
            nodes[n]
              ?.acquire({ keys, token, lifetimeMs, timeoutMs, fencing: false, mode, callerUndoes: true })
              .catch(() => {})
          }
        },
        () => {},
      )
    }
  }

  #wasReleased(token: string): boolean {
    const until = this.#released.get(token)
    return until !== undefined && until > performance.now()
  }
}
