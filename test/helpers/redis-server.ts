import { type ChildProcess, spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import { killQuietly, onProcessExit } from './cleanup.js'
import { sleep, withTimeout } from './wait.js'

export const LOOPBACK = '127.0.0.1'
// The developer's shared Redis lives here; tests must never bind, connect to or flush it.
const FORBIDDEN_PORT = 6379
const READY_TIMEOUT_MS = 10_000
const POLL_MS = 20
const STOP_GRACE_MS = 5_000
const START_ATTEMPTS = 3
const NOT_FOUND_MESSAGE =
  'redis-server not found on PATH: install it with `apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)'

export interface StartRedisOptions {
  /** Extra redis-server arguments, appended last so they can override the defaults. */
  args?: string[] | undefined
  /** Fixed port; by default a free ephemeral port is chosen. */
  port?: number | undefined
}

interface ExitInfo {
  code: number | null
  signal: NodeJS.Signals | null
}

interface Proc {
  child: ChildProcess
  pid: number
  output: OutputTail
  exit: ExitInfo | undefined
  exited: Promise<ExitInfo>
}

// Module-level registries so that an aborted test run still kills every redis-server and
// removes every temp dir (see cleanup.ts); processes leave the set when they exit.
const liveProcs = new Set<Proc>()
const liveDirs = new Set<string>()
const liveServers = new Set<RedisServer>()
onProcessExit(() => {
  for (const proc of liveProcs) killQuietly(proc.pid, 'SIGKILL')
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true })
})

/** Keeps only the end of redis-server's output: enough to explain a failed start. */
class OutputTail {
  #text = ''
  append(chunk: Buffer | string): void {
    this.#text = (this.#text + chunk.toString()).slice(-4_000)
  }
  get text(): string {
    return this.#text.trim() || '(no output)'
  }
}

/** Picks a free loopback port, never 6379. The port is released before returning, so callers must tolerate a lost race. */
export async function getFreePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
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
  throw new Error('could not find a free loopback port')
}

/** Opens a raw connection, writes `payload`, and returns the reply once `isComplete`; undefined on any failure. */
function rawExchange(
  port: number,
  payload: string,
  isComplete: (reply: string) => boolean,
  timeoutMs: number,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let reply = ''
    const socket = net.connect({ host: LOOPBACK, port })
    const finish = (value: string | undefined): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(value)
    }
    const timer = setTimeout(() => finish(undefined), timeoutMs)
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.write(payload))
    socket.on('data', (chunk: string) => {
      reply += chunk
      if (isComplete(reply)) finish(reply)
    })
    socket.on('error', () => finish(undefined))
    socket.on('close', () => finish(isComplete(reply) ? reply : undefined))
  })
}

async function spawnRedis(port: number, dir: string, extraArgs: readonly string[]): Promise<Proc> {
  const args = [
    ...['--port', String(port), '--bind', LOOPBACK, '--save', '', '--appendonly', 'no'],
    ...['--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'],
    ...extraArgs,
  ]
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const output = new OutputTail()
  child.stdout?.on('data', (chunk: Buffer) => output.append(chunk))
  child.stderr?.on('data', (chunk: Buffer) => output.append(chunk))
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'ENOENT' ? new Error(NOT_FOUND_MESSAGE, { cause: error }) : error)
    })
  })
  // Later 'error' events (e.g. a failed kill) must not become uncaught exceptions.
  child.on('error', () => {})
  const proc: Proc = {
    child,
    pid: child.pid!,
    output,
    exit: undefined,
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        proc.exit = { code, signal }
        liveProcs.delete(proc)
        resolve(proc.exit)
      })
    }),
  }
  liveProcs.add(proc)
  // Unreferenced so a test that forgets stop() lets its file finish; the exit hook then kills it.
  child.unref()
  for (const stream of [child.stdout, child.stderr]) (stream as net.Socket | null)?.unref()
  return proc
}

class RedisStartError extends Error {
  constructor(
    message: string,
    readonly addressInUse = false,
  ) {
    super(message)
    this.name = 'RedisStartError'
  }
}

async function waitUntilReady(proc: Proc, port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (proc.exit) {
      const { code, signal } = proc.exit
      const text = proc.output.text
      throw new RedisStartError(
        `redis-server on port ${port} exited early (code ${code}, signal ${signal}). Output tail:\n${text}`,
        /address already in use/i.test(text),
      )
    }
    const pong = await rawExchange(port, 'PING\r\n', (reply) => reply.includes('\r\n'), 500)
    if (pong?.startsWith('+PONG')) {
      // A PONG alone could come from a foreign process that grabbed the port first; only
      // our own pid proves the tests will talk to the server they control.
      const info = await rawExchange(port, 'INFO server\r\n', (r) => /process_id:\d+\r\n/.test(r), 1_000)
      if (info?.match(/process_id:(\d+)/)?.[1] === String(proc.pid)) return
    }
    await sleep(POLL_MS)
  }
  throw new RedisStartError(
    `redis-server on port ${port} did not answer PING within ${READY_TIMEOUT_MS} ms. Output tail:\n${proc.output.text}`,
  )
}

async function launchReady(port: number, dir: string, args: readonly string[]): Promise<Proc> {
  const proc = await spawnRedis(port, dir, args)
  try {
    await waitUntilReady(proc, port)
    return proc
  } catch (error) {
    killQuietly(proc.pid, 'SIGKILL')
    await withTimeout(proc.exited, STOP_GRACE_MS).catch(() => {})
    throw error
  }
}

/** A redis-server child process owned by the current test file. Create with {@link startRedis}. */
export class RedisServer {
  readonly host = LOOPBACK
  readonly port: number
  readonly url: string
  readonly args: readonly string[]
  readonly dir: string
  #proc: Proc
  #stopping: Promise<void> | undefined

  private constructor(port: number, dir: string, args: readonly string[], proc: Proc) {
    this.port = port
    this.url = `redis://${LOOPBACK}:${port}`
    this.dir = dir
    this.args = args
    this.#proc = proc
  }

  static async start(options: StartRedisOptions = {}): Promise<RedisServer> {
    if (options.port === FORBIDDEN_PORT) throw new Error('port 6379 is reserved for the shared Redis')
    const args = [...(options.args ?? [])]
    const dir = await mkdtemp(path.join(os.tmpdir(), 'async-redis-lock-test-'))
    liveDirs.add(dir)
    try {
      for (let attempt = 1; ; attempt++) {
        const port = options.port ?? (await getFreePort())
        try {
          const server = new RedisServer(port, dir, args, await launchReady(port, dir, args))
          liveServers.add(server)
          return server
        } catch (error) {
          // getFreePort releases the port before redis binds it, so another process may win it.
          const retryable =
            error instanceof RedisStartError && error.addressInUse && options.port === undefined
          if (!retryable || attempt >= START_ATTEMPTS) throw error
        }
      }
    } catch (error) {
      liveDirs.delete(dir)
      await rm(dir, { recursive: true, force: true })
      throw error
    }
  }

  /** Pid of the current process; changes after {@link restart}. */
  get pid(): number {
    return this.#proc.pid
  }

  get running(): boolean {
    return this.#proc.exit === undefined
  }

  /** SIGSTOP: connections stay open but nothing is answered, like a long GC pause or a frozen VM. */
  pause(): void {
    this.#signal('SIGSTOP')
  }

  resume(): void {
    this.#signal('SIGCONT')
  }

  /** SIGKILL (a crash: no shutdown, connections dropped) and wait for the process to exit. */
  async kill(): Promise<void> {
    const proc = this.#proc
    if (proc.exit) return
    killQuietly(proc.pid, 'SIGKILL')
    await withTimeout(proc.exited, STOP_GRACE_MS, `redis-server pid ${proc.pid} survived SIGKILL`)
  }

  /** Crash and start again on the same port and args with an empty dataset. */
  async restart(): Promise<void> {
    if (this.#stopping) throw new Error('cannot restart a stopped RedisServer')
    await this.kill()
    const proc = await launchReady(this.port, this.dir, this.args)
    if (this.#stopping) {
      // stop() ran while we were starting; it only knew about the old process.
      killQuietly(proc.pid, 'SIGKILL')
      throw new Error('RedisServer was stopped during restart')
    }
    this.#proc = proc
  }

  /** Graceful shutdown and temp dir removal. Safe to call repeatedly and on a killed server. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  /** Runs one command over a fresh connection (see {@link commandOnce}). */
  command(name: string, ...args: (string | number | Buffer)[]): Promise<unknown> {
    return commandOnce(this.port, name, ...args)
  }

  async #stop(): Promise<void> {
    liveServers.delete(this)
    const proc = this.#proc
    if (!proc.exit) {
      // A stopped (SIGSTOP) process would not act on SIGTERM until continued.
      killQuietly(proc.pid, 'SIGCONT')
      killQuietly(proc.pid, 'SIGTERM')
      try {
        await withTimeout(proc.exited, STOP_GRACE_MS)
      } catch {
        killQuietly(proc.pid, 'SIGKILL')
        await withTimeout(proc.exited, STOP_GRACE_MS, `redis-server pid ${proc.pid} survived SIGKILL`)
      }
    }
    await rm(this.dir, { recursive: true, force: true })
    liveDirs.delete(this.dir)
  }

  #signal(signal: NodeJS.Signals): void {
    if (this.#proc.exit)
      throw new Error(`cannot send ${signal}: redis-server on port ${this.port} is not running`)
    process.kill(this.#proc.pid, signal)
  }
}

export function startRedis(options?: StartRedisOptions): Promise<RedisServer> {
  return RedisServer.start(options)
}

/** Stops every server this process started and has not stopped yet, e.g. from a global `after`. */
export async function stopAllRedis(): Promise<void> {
  await Promise.all([...liveServers].map((server) => server.stop()))
}

/**
 * Runs one command on the server at 127.0.0.1:`port` over a fresh connection. A
 * short-lived client keeps no handles open between calls and needs no reconnect logic
 * across a server's kill()/restart().
 */
export async function commandOnce(
  port: number,
  name: string,
  ...args: (string | number | Buffer)[]
): Promise<unknown> {
  const client = new Redis({
    host: LOOPBACK,
    port,
    lazyConnect: true,
    enableReadyCheck: false,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  })
  client.on('error', () => {})
  try {
    await client.connect()
    return await client.call(name, ...args)
  } finally {
    client.disconnect()
  }
}
