import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, writeSync } from 'node:fs'

/**
 * Milliseconds on CLOCK_MONOTONIC. `process.hrtime.bigint()` reads the same clock in
 * every process on the machine, so events of different workers, the nemesis and
 * the checker line up. Microsecond precision is plenty for a 300 ms lease.
 */
export function monoMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000
}

/** One log record: the time, who wrote it, what happened; the rest depends on `ev`. */
export interface LogEvent {
  t: number
  ev: string
  [field: string]: unknown
}

/**
 * Appends JSON lines with one synchronous write each, so everything logged before a
 * SIGKILL is on disk (in the page cache, which survives the process).
 */
export class SyncLog {
  readonly #fd: number
  readonly #fields: Record<string, unknown>

  constructor(path: string, fields: Record<string, unknown> = {}) {
    this.#fd = openSync(path, 'a')
    this.#fields = fields
  }

  /** Logs with the current time unless `t` is given (taken earlier, before the observation). */
  write(ev: string, data: Record<string, unknown> = {}, t = monoMs()): void {
    writeSync(this.#fd, `${JSON.stringify({ t, ev, ...this.#fields, ...data })}\n`)
  }

  close(): void {
    closeSync(this.#fd)
  }
}

/** Reads a whole JSON-lines log; a torn last line (a kill mid-write) is skipped. */
export function readLog(path: string): LogEvent[] {
  if (!existsSync(path)) return []
  const out: LogEvent[] = []
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line === '') continue
    try {
      out.push(JSON.parse(line) as LogEvent)
    } catch {
      // Only the very last line of a killed writer can be partial.
    }
  }
  return out
}

/** Incremental reader: returns the events appended since the previous call. */
export class LogTail {
  readonly #path: string
  #offset = 0
  #partial = ''

  constructor(path: string) {
    this.#path = path
  }

  read(): LogEvent[] {
    if (!existsSync(this.#path)) return []
    const fd = openSync(this.#path, 'r')
    let text = this.#partial
    try {
      const size = fstatSync(fd).size
      if (size <= this.#offset) return []
      const buf = Buffer.alloc(size - this.#offset)
      const n = readSync(fd, buf, 0, buf.length, this.#offset)
      this.#offset += n
      text += buf.subarray(0, n).toString('utf8')
    } finally {
      closeSync(fd)
    }
    const lines = text.split('\n')
    this.#partial = lines.pop() ?? ''
    const out: LogEvent[] = []
    for (const line of lines) {
      if (line === '') continue
      try {
        out.push(JSON.parse(line) as LogEvent)
      } catch {
        // Cannot happen with single-write appends; skipped rather than trusted.
      }
    }
    return out
  }
}
