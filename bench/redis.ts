// The benchmark's own throwaway redis-server: never the shared one on 6379, only
// loopback, no persistence, its own temp dir, stopped by PID (also on a crash).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'

export const LOOPBACK = '127.0.0.1'
const FORBIDDEN_PORT = 6379
const READY_TIMEOUT_MS = 10_000

/** True when `taskset` is on PATH, so processes can be pinned to cores. */
export function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer()
      server.once('error', reject)
      server.listen(0, LOOPBACK, () => {
        const address = server.address()
        const chosen = typeof address === 'object' && address !== null ? address.port : 0
        server.close(() => resolve(chosen))
      })
    })
    if (port > 0 && port !== FORBIDDEN_PORT) return port
  }
  throw new Error('no free loopback port')
}

export interface BenchRedis {
  readonly port: number
  readonly url: string
  readonly pid: number
  readonly pinned: boolean
  stop(): Promise<void>
}

/** Starts redis-server (pinned to core 0 when `pin`) and waits until it is ours and answering. */
export async function startRedis(pin: boolean): Promise<BenchRedis> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'async-redis-lock-bench-'))
  const port = await freePort()
  const serverArgs = ['--port', String(port), '--bind', LOOPBACK, '--save', '', '--appendonly', 'no']
  serverArgs.push('--dir', dir, '--daemonize', 'no', '--loglevel', 'warning')
  const [cmd, args] = pin
    ? ['taskset', ['-c', '0', 'redis-server', ...serverArgs]]
    : ['redis-server', serverArgs]
  const child: ChildProcess = spawn(cmd as string, args as string[], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let alive = true
  void exited.then(() => {
    alive = false
  })
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
  const pid = child.pid as number
  // taskset execs redis-server in place, so the PID we spawned is redis-server's own.
  const killNow = () => {
    if (alive) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true })
  }
  process.on('exit', killNow)

  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    if (!alive) throw new Error(`redis-server exited early: ${stderr.trim()}`)
    const ownPid = await probePid(port)
    if (ownPid === pid) break
    if (Date.now() > deadline) {
      killNow()
      throw new Error(`redis-server on ${port} not ready within ${READY_TIMEOUT_MS} ms: ${stderr.trim()}`)
    }
    await new Promise((r) => setTimeout(r, 20))
  }

  return {
    port,
    url: `redis://${LOOPBACK}:${port}`,
    pid,
    pinned: pin,
    async stop() {
      if (alive) {
        process.kill(pid, 'SIGTERM')
        const timer = setTimeout(() => alive && process.kill(pid, 'SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
      process.off('exit', killNow)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The process_id the server on `port` reports, so a foreign server on the port is never used. */
async function probePid(port: number): Promise<number | undefined> {
  const client = new Redis({ host: LOOPBACK, port, lazyConnect: true, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    const info = (await client.info('server')) as string
    const m = /process_id:(\d+)/.exec(info)
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  } finally {
    client.disconnect()
  }
}

/** Server-side counters read from INFO; `calls` includes commands run inside scripts. */
export interface ServerSnapshot {
  readonly calls: Record<string, number>
  readonly totalCommandsProcessed: number
  readonly cpuSeconds: number
  readonly usedMemory: number
}

/** A separate connection that reads INFO; its own INFO calls are excluded from `calls`. */
export class ServerProbe {
  readonly client: Redis

  constructor(port: number) {
    this.client = new Redis({ host: LOOPBACK, port, lazyConnect: true })
    this.client.on('error', () => {})
  }

  async connect(): Promise<void> {
    await this.client.connect()
  }

  async snapshot(): Promise<ServerSnapshot> {
    const text = (await this.client.info('everything')) as string
    const calls: Record<string, number> = {}
    let total = 0
    let cpu = 0
    let mem = 0
    for (const line of text.split('\r\n')) {
      const cmd = /^cmdstat_([^:]+):calls=(\d+)/.exec(line)
      if (cmd && cmd[1] !== 'info') calls[cmd[1] as string] = Number(cmd[2])
      const kv = /^([a-z_]+):([\d.]+)$/.exec(line)
      if (!kv) continue
      if (kv[1] === 'total_commands_processed') total = Number(kv[2])
      if (kv[1] === 'used_cpu_user' || kv[1] === 'used_cpu_sys') cpu += Number(kv[2])
      if (kv[1] === 'used_memory') mem = Number(kv[2])
    }
    return { calls, totalCommandsProcessed: total, cpuSeconds: cpu, usedMemory: mem }
  }

  /**
   * Whether INFO's total_commands_processed also counts calls made inside scripts:
   * one EVAL making three calls adds 2 (the first INFO and the EVAL) or 5.
   */
  async countsScriptCalls(): Promise<boolean> {
    const a = await this.snapshot()
    await this.client.eval("redis.call('PING') redis.call('PING') return redis.call('PING')", 0)
    const b = await this.snapshot()
    return b.totalCommandsProcessed - a.totalCommandsProcessed >= 5
  }

  async version(): Promise<string> {
    const info = (await this.client.info('server')) as string
    return /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown'
  }

  async flush(): Promise<void> {
    await this.client.flushall()
  }

  close(): void {
    this.client.disconnect()
  }
}

/** Server-side difference between two snapshots. */
export function serverDelta(a: ServerSnapshot, b: ServerSnapshot) {
  let calls = 0
  const byCommand: Record<string, number> = {}
  for (const [name, n] of Object.entries(b.calls)) {
    const d = n - (a.calls[name] ?? 0)
    if (d > 0) {
      byCommand[name] = d
      calls += d
    }
  }
  return {
    /** All command executions, script-internal ones included (INFO excluded). */
    calls,
    byCommand,
    /** INFO's own counter; on Redis 7.0 it also counts script-internal calls. */
    totalCommandsProcessed: b.totalCommandsProcessed - a.totalCommandsProcessed,
    cpuSeconds: b.cpuSeconds - a.cpuSeconds,
    memoryBytes: b.usedMemory - a.usedMemory,
  }
}

export type ServerDelta = ReturnType<typeof serverDelta>
