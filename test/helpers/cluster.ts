import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { getFreePort, LOOPBACK, type RedisServer, startRedis } from './redis-server.js'
import { sleep } from './wait.js'

const run = promisify(execFile)
const MASTERS = 3
const READY_TIMEOUT_MS = 20_000
const START_ATTEMPTS = 3

/** A local Redis Cluster of three masters with one replica each, owned by the current test file. */
export interface LocalCluster {
  /** Every node, in the order given to `redis-cli --cluster create` (masters first). */
  readonly nodes: readonly RedisServer[]
  /** Addresses for a cluster client's startup list. */
  readonly startupNodes: readonly { readonly host: string; readonly port: number }[]
  /** The node that serves `slot` as a master now (asked of the cluster, not assumed). */
  masterOf(slot: number): Promise<RedisServer>
  /** Stops every node (by PID) and removes their temp dirs. */
  stop(): Promise<void>
}

/** Starts one cluster-enabled redis-server; the port must be known up front to name its config file. */
async function startNode(): Promise<RedisServer> {
  for (let attempt = 1; ; attempt++) {
    const port = await getFreePort()
    // The bus port defaults to port + 10000, which overflows for high ephemeral ports.
    const busPort = await getFreePort()
    try {
      return await startRedis({
        port,
        args: [
          ...['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`],
          ...['--cluster-node-timeout', '2000', '--cluster-port', String(busPort)],
        ],
      })
    } catch (error) {
      // getFreePort releases its port before redis binds it; another process may win the race.
      if (attempt >= START_ATTEMPTS) throw error
    }
  }
}

/** `ok` once the node serves the cluster and, on a replica, its link to its master is up. */
async function clusterState(node: RedisServer): Promise<string | undefined> {
  try {
    const info = String(await node.command('CLUSTER', 'INFO'))
    const state = info.match(/cluster_state:(\w+)/)?.[1]
    const replication = String(await node.command('INFO', 'replication'))
    const link = replication.match(/master_link_status:(\w+)/)?.[1]
    return link === undefined || link === 'up' ? state : `${state} (link ${link})`
  } catch {
    return undefined
  }
}

/**
 * Starts six `redis-server` processes on free loopback ports (never 6379), joins them
 * into a cluster of three masters and three replicas, and waits until every node
 * reports `cluster_state:ok` and every replica's link to its master is up.
 */
export async function startCluster(): Promise<LocalCluster> {
  const nodes: RedisServer[] = []
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()))
  }
  try {
    nodes.push(...(await Promise.all(Array.from({ length: MASTERS * 2 }, () => startNode()))))
    const addresses = nodes.map((n) => `${LOOPBACK}:${n.port}`)
    await run(
      'redis-cli',
      ['--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'],
      {
        timeout: READY_TIMEOUT_MS,
      },
    )
    const deadline = Date.now() + READY_TIMEOUT_MS
    for (;;) {
      const states = await Promise.all(nodes.map(clusterState))
      if (states.every((s) => s === 'ok')) break
      if (Date.now() > deadline) throw new Error(`cluster not ready: ${states.join(', ')}`)
      await sleep(50)
    }
    return {
      nodes,
      startupNodes: nodes.map((n) => ({ host: LOOPBACK, port: n.port })),
      async masterOf(slot) {
        const ranges = (await nodes[0]!.command('CLUSTER', 'SLOTS')) as [number, number, [string, number]][]
        for (const [from, to, [, port]] of ranges) {
          const node = nodes.find((n) => n.port === Number(port))
          if (slot >= from && slot <= to && node) return node
        }
        throw new Error(`no master serves slot ${slot}`)
      },
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}
