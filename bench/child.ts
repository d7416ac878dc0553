// Worker processes and message passing. Every scenario runs its libraries in forked
// workers so a library that crashes or hangs costs one row, never the whole run.
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** Every message between orchestrator and worker: a type plus plain (structured-clone) data. */
export interface Msg {
  readonly type: string
  readonly [field: string]: unknown
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url))
const live = new Set<ChildProcess>()
let exitHookInstalled = false

/** Buffers incoming messages so callers can await the next one that matches. */
export class Mailbox {
  readonly #queue: Msg[] = []
  readonly #waiters: { match: (m: Msg) => boolean; resolve: (m: Msg) => void; reject: (e: Error) => void }[] =
    []
  #failure: Error | undefined
  #handler: ((m: Msg) => void) | undefined

  push(msg: Msg): void {
    if (this.#handler) {
      this.#handler(msg)
      return
    }
    const i = this.#waiters.findIndex((w) => w.match(msg))
    if (i === -1) {
      this.#queue.push(msg)
      return
    }
    const [w] = this.#waiters.splice(i, 1)
    w?.resolve(msg)
  }

  /** Hands every queued and future message to `handler` instead of queueing it. */
  divert(handler: (m: Msg) => void): void {
    this.#handler = handler
    for (const m of this.#queue.splice(0)) handler(m)
  }

  /** Rejects every pending and future wait: the other side is gone or broke. */
  fail(err: Error): void {
    this.#failure ??= err
    for (const w of this.#waiters.splice(0)) w.reject(err)
  }

  next(type: string, timeoutMs: number, where: (m: Msg) => boolean = () => true): Promise<Msg> {
    const match = (m: Msg) => m.type === type && where(m)
    const i = this.#queue.findIndex(match)
    if (i !== -1) return Promise.resolve(this.#queue.splice(i, 1)[0] as Msg)
    if (this.#failure) return Promise.reject(this.#failure)
    return new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.#waiters.indexOf(waiter)
        if (at !== -1) this.#waiters.splice(at, 1)
        reject(new Error(`no '${type}' message within ${timeoutMs} ms`))
      }, timeoutMs)
      const waiter = {
        match,
        resolve: (m: Msg) => {
          clearTimeout(timer)
          resolve(m)
        },
        reject: (e: Error) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      this.#waiters.push(waiter)
    })
  }
}

export interface Worker {
  readonly mailbox: Mailbox
  send(msg: Msg): void
  /** SIGKILLs the worker by its PID if it is still running. */
  kill(): void
  readonly exited: Promise<void>
}

/**
 * Forks `bench/worker.ts` with `task` and kills it after `hardTimeoutMs` whatever it
 * is doing. A worker reports a failure as an `error` message, which fails its mailbox.
 */
export function startWorker(task: Msg, hardTimeoutMs: number): Worker {
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on('exit', () => {
      for (const child of live) killQuietly(child)
    })
  }
  // BENCH_CPU_PROF=<dir>: every worker writes a V8 CPU profile there (NODE_OPTIONS refuses --cpu-prof).
  const prof = process.env.BENCH_CPU_PROF
  const child = fork(WORKER, [], {
    execArgv: ['--import', 'tsx', '--expose-gc', ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [])],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  live.add(child)
  const mailbox = new Mailbox()
  child.on('message', (m: Msg) => {
    if (m.type === 'error') mailbox.fail(new Error(String(m.message)))
    else mailbox.push(m)
  })
  const timer = setTimeout(() => {
    mailbox.fail(new Error(`worker killed after ${hardTimeoutMs} ms (hung?)`))
    killQuietly(child)
  }, hardTimeoutMs)
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      live.delete(child)
      mailbox.fail(new Error(`worker exited (code ${code}, signal ${signal})`))
      resolve()
    })
  })
  child.on('error', (err) => mailbox.fail(err))
  child.send({ type: 'task', task })
  return {
    mailbox,
    send: (msg) => {
      if (child.connected) child.send(msg)
    },
    kill: () => killQuietly(child),
    exited,
  }
}

function killQuietly(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  try {
    process.kill(child.pid, 'SIGKILL')
  } catch {}
}

/** Waits for the worker's exit, killing it if it lingers. */
export async function finish(worker: Worker, graceMs = 3000): Promise<void> {
  const timer = setTimeout(() => worker.kill(), graceMs)
  await worker.exited
  clearTimeout(timer)
}

/** Resolves at a `process.hrtime.bigint()` instant (shared by every process on the machine). */
export function sleepUntil(at: bigint): Promise<void> {
  const ms = Number(at - process.hrtime.bigint()) / 1e6
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Rejects when `p` does not settle within `ms`: a hung library becomes an error. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)
    p.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (e: unknown) => {
        clearTimeout(timer)
        reject(e)
      },
    )
  })
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
