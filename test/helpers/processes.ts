import { type ChildProcess, spawn } from 'node:child_process'
import { killQuietly, onProcessExit } from './cleanup.js'

export interface WorkerExit {
  code: number | null
  signal: NodeJS.Signals | null
}

// Resolved once here so workers load tsx no matter which directory the test runs from.
const TSX_LOADER = import.meta.resolve('tsx')
const TAIL_CHARS = 2_000

const liveWorkers = new Set<Worker>()
onProcessExit(() => {
  for (const worker of liveWorkers) killQuietly(worker.pid, 'SIGKILL')
})

/** A Node child process running a TypeScript script, with its stdout split into lines. */
export class Worker {
  readonly pid: number
  /** Resolves once the process exited and its output was fully read, so stdoutLines() is complete. */
  readonly exited: Promise<WorkerExit>
  readonly #child: ChildProcess
  readonly #lines: string[] = []
  readonly #lineListeners = new Set<(line: string) => void>()
  readonly #exitListeners = new Set<() => void>()
  #partial = ''
  #stderr = ''
  #exit: WorkerExit | undefined

  constructor(child: ChildProcess) {
    if (child.pid === undefined) throw new Error('worker process failed to spawn')
    this.pid = child.pid
    this.#child = child
    child.on('error', (error) => {
      this.#stderr += `\n[spawn error] ${String(error)}`
    })
    child.stdout?.setEncoding('utf8')
    child.stdout?.on('data', (chunk: string) => this.#onStdout(chunk))
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-TAIL_CHARS)
    })
    this.exited = new Promise((resolve) => {
      // 'close' rather than 'exit': it fires after stdio is drained, so no line is missed.
      child.once('close', (code, signal) => {
        if (this.#partial) this.#emitLine(this.#partial)
        this.#partial = ''
        this.#exit = { code, signal }
        liveWorkers.delete(this)
        for (const listener of [...this.#exitListeners]) listener()
        resolve(this.#exit)
      })
    })
  }

  get exitInfo(): WorkerExit | undefined {
    return this.#exit
  }

  /** Returns false if the process had already exited. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.#exit) return false
    return this.#child.kill(signal)
  }

  /** Complete stdout lines received so far (a copy). */
  stdoutLines(): string[] {
    return [...this.#lines]
  }

  stderrText(): string {
    return this.#stderr
  }

  /**
   * Resolves with the first stdout line, already received or future, matching `predicate`.
   * Rejects on timeout or when the worker exits without printing it.
   */
  waitForLine(predicate: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const existing = this.#lines.find(predicate)
    if (existing !== undefined) return Promise.resolve(existing)
    return new Promise((resolve, reject) => {
      const fail = (reason: string): void => {
        cleanup()
        const stdout = this.#lines.slice(-20).join('\n') || '(none)'
        const stderr = this.#stderr.trim() || '(none)'
        reject(new Error(`worker ${this.pid}: ${reason}\nstdout tail:\n${stdout}\nstderr tail:\n${stderr}`))
      }
      const onLine = (line: string): void => {
        if (!predicate(line)) return
        cleanup()
        resolve(line)
      }
      const onExit = (): void => {
        const exit = this.#exit
        fail(`exited (code ${exit?.code}, signal ${exit?.signal}) before printing the awaited line`)
      }
      const timer = setTimeout(() => fail(`no matching stdout line within ${timeoutMs} ms`), timeoutMs)
      const cleanup = (): void => {
        clearTimeout(timer)
        this.#lineListeners.delete(onLine)
        this.#exitListeners.delete(onExit)
      }
      if (this.#exit) {
        fail('already exited')
        return
      }
      this.#lineListeners.add(onLine)
      this.#exitListeners.add(onExit)
    })
  }

  #onStdout(chunk: string): void {
    const parts = (this.#partial + chunk).split('\n')
    this.#partial = parts.pop() ?? ''
    for (const line of parts) this.#emitLine(line)
  }

  #emitLine(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    this.#lines.push(line)
    for (const listener of [...this.#lineListeners]) listener(line)
  }
}

/** Runs `node --import tsx scriptPath ...args`, inheriting the environment plus `env`. */
export function spawnWorker(
  scriptPath: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Worker {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, scriptPath, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const worker = new Worker(child)
  liveWorkers.add(worker)
  return worker
}
