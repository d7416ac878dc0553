/**
 * `async-redis-lock demo`: several processes contend for one lock; one is killed
 * while it holds it, and the lock frees itself when its lease runs out. The same
 * scenario as examples/demo.ts, shipped in the package so it runs from dist.
 *
 * @module
 */
import { type ChildProcess, fork, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BackendError } from '../errors.js'
import { Locker } from '../locker.js'
import { EXIT, parse } from './args.js'

/** Usage text of `demo`. */
export const DEMO_USAGE = `Usage: async-redis-lock demo

Runs 4 processes that contend for one lock; the first holder is killed with SIGKILL
and its lock frees itself when the lease runs out. Uses $REDIS_URL if set, otherwise
starts a throwaway redis-server (which must be on PATH) on a free loopback port.

Options:
  -h, --help   show this help`

/** The hidden command the demo's worker processes run. */
export const DEMO_WORKER = '__demo-worker'

const KEY = 'demo:nightly-report'
const LIFETIME_MS = 1500
const WORKERS = 4
const ROUNDS = 2

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Runs `demo`; resolves with the exit status. */
export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parse({ args: argv, strict: true, options: { help: { type: 'boolean', short: 'h' } } })
  if (values.help) {
    process.stdout.write(`${DEMO_USAGE}\n`)
    return EXIT.ok
  }
  const redis = await throwawayRedis()
  try {
    await runDemo(redis.url)
  } finally {
    redis.stop()
  }
  return EXIT.ok
}

async function runDemo(url: string): Promise<void> {
  const t0 = performance.now()
  const stamp = () => `${((performance.now() - t0) / 1000).toFixed(2).padStart(6)}s`
  console.log(`redis: ${url}`)
  console.log(`${WORKERS} processes want "${KEY}" (lease ${LIFETIME_MS} ms, extended in the background)\n`)
  let victimKilledAt = 0
  let victim: ChildProcess | undefined
  const children = Array.from({ length: WORKERS }, (_, i) => {
    // process.argv[1] is this CLI's main script, in dist or run through tsx.
    const child = fork(process.argv[1] as string, [DEMO_WORKER, String(i + 1), url], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    })
    child.on('message', (m: { event: string; fence?: string; waitedMs?: number }) => {
      const who = `worker ${i + 1} (pid ${child.pid})`
      if (m.event === 'acquired') {
        const after = victimKilledAt
          ? `, ${Math.round(performance.now() - victimKilledAt)} ms after the kill`
          : ''
        console.log(`${stamp()}  ${who} acquired, fence ${m.fence}, waited ${m.waitedMs} ms${after}`)
        victimKilledAt = 0
        // Kill the first holder mid critical section, while all others still want the lock.
        if (victim === undefined) {
          victim = child
          setTimeout(() => {
            console.log(`${stamp()}  killing ${who} with SIGKILL while it holds the lock`)
            child.kill('SIGKILL')
            victimKilledAt = performance.now()
          }, 200)
        }
      } else if (m.event === 'released') {
        console.log(`${stamp()}  ${who} released`)
      }
    })
    return new Promise<void>((resolve) => child.once('exit', () => resolve()))
  })
  await Promise.all(children)
  const locker = await Locker.fromUrl(url)
  try {
    const state = await locker.inspect(KEY)
    console.log(`\nall done; "${KEY}" is ${state.isHeld ? 'still held' : 'free'}, last fence ${state.fence}`)
  } finally {
    await locker.close()
  }
}

/** One contending process of the demo; reports to the parent over IPC. */
export async function demoWorker(argv: string[]): Promise<number> {
  const id = Number(argv[0])
  const url = argv[1] as string
  const send = (m: object) => process.send?.(m)
  const locker = await Locker.fromUrl(url, { lifetimeMs: LIFETIME_MS, retryTimeoutMs: null, fencing: true })
  for (let round = 0; round < ROUNDS; round++) {
    const asked = performance.now()
    const lock = await locker.acquire(KEY)
    send({ event: 'acquired', fence: String(lock.fence), waitedMs: Math.round(performance.now() - asked) })
    await sleep(300 + id * 50) // the critical section
    await lock.release()
    send({ event: 'released' })
  }
  await locker.close()
  process.disconnect?.()
  return EXIT.ok
}

/** `REDIS_URL` if set, else a private redis-server on a free loopback port. */
async function throwawayRedis(): Promise<{ url: string; stop(): void }> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop() {} }
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'async-redis-lock-demo-'))
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ]
  const server = spawn('redis-server', args, { stdio: 'ignore' })
  const stop = () => {
    server.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.once('exit', stop)
  const failed = new Promise<never>((_, reject) => {
    server.once('error', (err) =>
      reject(
        new BackendError(
          'connect',
          `could not start redis-server (${err.message}); install it or set REDIS_URL`,
        ),
      ),
    )
  })
  try {
    await Promise.race([failed, waitForPort(port)])
  } catch (err) {
    stop()
    throw err
  }
  return { url: `redis://127.0.0.1:${port}`, stop }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      // 6379 is where a real Redis usually lives: never start a throwaway one there.
      srv.close(() => (port === 6379 ? resolve(freePort()) : resolve(port)))
    })
  })
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 250; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.end()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await sleep(20)
  }
  throw new Error(`redis-server did not start on port ${port}`)
}
