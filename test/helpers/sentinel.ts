import { type ChildProcess, spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { killQuietly, onProcessExit } from './cleanup.js'
import { commandOnce, getFreePort, LOOPBACK, type RedisServer, startRedis } from './redis-server.js'
import { waitFor, withTimeout } from './wait.js'

export const MASTER_NAME = 'mymaster'

/** Starts a replica of `master` and waits until the master counts it as connected and in sync. */
export async function startReplica(master: RedisServer): Promise<RedisServer> {
  const replica = await startRedis({ args: ['--replicaof', master.host, String(master.port)] })
  await waitFor(
    async () => {
      const info = String(await replica.command('INFO', 'replication'))
      const masterInfo = String(await master.command('INFO', 'replication'))
      return (
        info.includes('master_link_status:up') && masterInfo.includes(`port=${replica.port},state=online`)
      )
    },
    { timeoutMs: 10_000, message: 'the replica to sync' },
  )
  return replica
}

/** A `redis-server --sentinel` child process watching one master, on a free loopback port. */
export class Sentinel {
  readonly host = LOOPBACK
  readonly port: number
  readonly #child: ChildProcess
  readonly #dir: string
  readonly #exited: Promise<void>
  readonly #unregister: () => void

  private constructor(port: number, child: ChildProcess, dir: string) {
    this.port = port
    this.#child = child
    this.#dir = dir
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()))
    const pid = child.pid as number
    this.#unregister = onProcessExit(() => {
      killQuietly(pid, 'SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    })
  }

  /**
   * Starts a sentinel monitoring the master at `masterPort` (quorum 2, down after 1 s).
   * Its config file lives in its own temp dir: sentinels rewrite it.
   */
  static async start(masterPort: number): Promise<Sentinel> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'async-redis-lock-sentinel-'))
    const port = await getFreePort()
    const conf = path.join(dir, 'sentinel.conf')
    await writeFile(
      conf,
      [
        `port ${port}`,
        `bind ${LOOPBACK}`,
        `dir ${dir}`,
        `sentinel monitor ${MASTER_NAME} ${LOOPBACK} ${masterPort} 2`,
        `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
        `sentinel failover-timeout ${MASTER_NAME} 5000`,
        '',
      ].join('\n'),
    )
    const child = spawn('redis-server', [conf, '--sentinel', '--loglevel', 'warning'], {
      stdio: 'ignore',
    })
    child.on('error', () => {})
    child.unref()
    const sentinel = new Sentinel(port, child, dir)
    try {
      await waitFor(async () => (await sentinel.command('PING')) === 'PONG', {
        timeoutMs: 10_000,
        message: `sentinel on port ${port} to answer`,
      })
    } catch (error) {
      await sentinel.stop()
      throw error
    }
    return sentinel
  }

  /** Runs one command over a fresh connection. */
  command(name: string, ...args: (string | number)[]): Promise<unknown> {
    return commandOnce(this.port, name, ...args)
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      killQuietly(this.#child.pid as number, 'SIGKILL')
      await withTimeout(this.#exited, 5_000).catch(() => {})
    }
    this.#unregister()
    await rm(this.#dir, { recursive: true, force: true })
  }
}
