/**
 * `async-redis-lock run`: runs a command while holding a lock.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { constants } from 'node:os'
import { AcquireTimeoutError } from '../errors.js'
import type { Lock } from '../lock.js'
import { Locker } from '../locker.js'
import { defaultUrl, EXIT, MIN_LIFETIME_MS, parse, parseDuration, parseLimit, UsageError } from './args.js'
import { startStatusLine } from './status.js'

/** Usage text of `run`. */
export const RUN_USAGE = `Usage: async-redis-lock run --key KEY [--shared | --limit N] [options] -- COMMAND [ARGS...]

Acquires the lock KEY, runs COMMAND while its lease is kept extended, releases it
when COMMAND exits and exits with COMMAND's status.

Options:
  --key KEY          lock key (required)
  --shared           hold KEY as a reader: any number of --shared runs go together,
                     never beside a plain run of KEY (the writer; a waiting writer goes
                     before new readers)
  --limit N          hold one of N permits of KEY: at most N runs with --limit N at once
                     across the fleet (N a whole number >= 1; every run of KEY must use the same N)
  --url URL          Redis URL (default: $REDIS_URL or redis://127.0.0.1:6379)
  --lifetime DUR     lease length; how long a crashed holder blocks others (default 30s)
  --wait DUR         how long to wait for the lock (default 10s)
  --no-wait          one attempt only; exit 75 at once if the lock is held
  --grace DUR        after the lock is lost: SIGTERM, then SIGKILL after DUR (default 5s)
  --fence-env NAME   acquire with fencing; pass the lock's fencing token to COMMAND in env var NAME
  --quiet            no status line and no messages except errors
  -h, --help         show this help

Durations: 500ms, 30s, 2m, 1h, or a plain number of milliseconds.
SIGINT, SIGTERM and SIGHUP are forwarded to COMMAND.
One key, one kind: a run on a KEY held as another kind (a semaphore with another
--limit; a semaphore's KEY without --limit, or the reverse) exits 64 at once,
without starting COMMAND.`

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

/** How the key is held: the acquire options `shared` / `limit`, none for an exclusive lock. */
type Kind = { shared: true } | { limit: number } | Record<string, never>

interface RunOptions {
  key: string
  kind: Kind
  url: string
  lifetimeMs: number
  waitMs: number
  graceMs: number
  fenceEnv: string | undefined
  quiet: boolean
  command: string[]
}

function parseRun(argv: string[]): RunOptions | 'help' {
  // Everything after the first `--` belongs to the command, even its own flags.
  const sep = argv.indexOf('--')
  const own = sep === -1 ? argv : argv.slice(0, sep)
  const command = sep === -1 ? [] : argv.slice(sep + 1)
  const { values, positionals } = parse({
    args: own,
    strict: true,
    allowPositionals: true,
    options: {
      key: { type: 'string' },
      url: { type: 'string' },
      lifetime: { type: 'string' },
      wait: { type: 'string' },
      'no-wait': { type: 'boolean' },
      grace: { type: 'string' },
      'fence-env': { type: 'string' },
      shared: { type: 'boolean' },
      limit: { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) return 'help'
  if (positionals.length > 0) {
    throw new UsageError(`unexpected '${positionals[0]}': put the command after '--'`)
  }
  if (values.key === undefined || values.key === '') throw new UsageError('--key is required')
  if (command.length === 0) throw new UsageError("no command given: add '-- COMMAND [ARGS...]'")
  if (values.wait !== undefined && values['no-wait']) {
    throw new UsageError('--wait and --no-wait cannot be used together')
  }
  if (values.shared && values.limit !== undefined) {
    throw new UsageError(
      '--shared and --limit cannot be used together: a key is a shared lock or a semaphore',
    )
  }
  const kind: Kind =
    values.limit !== undefined ? { limit: parseLimit(values.limit) } : values.shared ? { shared: true } : {}
  const fenceEnv = values['fence-env']
  if (fenceEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(fenceEnv)) {
    throw new UsageError(`--fence-env: '${fenceEnv}' is not a valid environment variable name`)
  }
  // Durations are checked against the library's rules here, so that a bad value
  // is reported by its flag rather than by the library's option name (lifetimeMs).
  // The lease is extended every half of it, which is always less than the lease.
  return {
    key: values.key,
    kind,
    url: values.url ?? defaultUrl(),
    lifetimeMs: parseDuration('lifetime', values.lifetime ?? '30s', MIN_LIFETIME_MS),
    waitMs: values['no-wait'] ? 0 : parseDuration('wait', values.wait ?? '10s'),
    graceMs: parseDuration('grace', values.grace ?? '5s'),
    fenceEnv,
    quiet: values.quiet ?? false,
    command,
  }
}

/** The shell's convention for a child killed by a signal: 128 + its number. */
function signalStatus(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0)
}

/**
 * Runs `run`; resolves with the exit status.
 * @throws UsageError, or the library's errors (mapped to statuses by main).
 */
export async function runCommand(argv: string[]): Promise<number> {
  const opts = parseRun(argv)
  if (opts === 'help') {
    process.stdout.write(`${RUN_USAGE}\n`)
    return EXIT.ok
  }
  const o = opts
  const locker = await Locker.fromUrl(o.url, { lifetimeMs: o.lifetimeMs, fencing: o.fenceEnv !== undefined })
  try {
    const lock = await acquireWithStatus(locker, o)
    if (typeof lock === 'number') return lock
    return await supervise(lock, o)
  } finally {
    await locker.close().catch(() => {})
  }
}

/** Acquires, showing a status line while waiting; a number is the exit status to return instead. */
async function acquireWithStatus(locker: Locker, o: RunOptions): Promise<Lock | number> {
  // A signal while we wait must end the wait without ever starting the command.
  const stop = new AbortController()
  let caught: NodeJS.Signals | undefined
  const onSignal = (signal: NodeJS.Signals): void => {
    caught = signal
    stop.abort(new Error(`interrupted by ${signal}`))
  }
  for (const s of FORWARDED) process.on(s, onSignal)
  const status = o.quiet ? undefined : startStatusLine(locker, o.key)
  try {
    const lock =
      o.waitMs === 0
        ? await locker.tryAcquire(o.key, o.kind)
        : await locker.acquire(o.key, { ...o.kind, retryTimeoutMs: o.waitMs, signal: stop.signal })
    // A signal that raced with a successful attempt still means "do not start".
    if (lock && caught) {
      await lock.release().catch(() => {})
      return signalStatus(caught)
    }
    if (lock) return lock
  } catch (err) {
    if (caught) return signalStatus(caught)
    if (!(err instanceof AcquireTimeoutError)) throw err
  } finally {
    status?.stop()
    for (const s of FORWARDED) process.off(s, onSignal)
  }
  process.stderr.write(`async-redis-lock: ${notAcquired(o)}; command not started\n`)
  return EXIT.notAcquired
}

/** Why `run` gave up, in the words of the kind asked for. */
function notAcquired(o: RunOptions): string {
  const after = o.waitMs === 0 ? '' : ` after ${o.waitMs} ms`
  if ('limit' in o.kind) {
    const n = o.kind.limit
    const all = n === 1 ? 'its one permit is' : `all ${n} permits are`
    return `could not acquire '${o.key}' (a permit, limit ${n}): ${all} ${o.waitMs === 0 ? '' : 'still '}held${after}`
  }
  if ('shared' in o.kind) {
    const still = o.waitMs === 0 ? '' : 'still '
    return `could not acquire '${o.key}' (shared): ${still}held exclusively or a writer is waiting${after}`
  }
  return o.waitMs === 0
    ? `could not acquire '${o.key}': it is held`
    : `could not acquire '${o.key}': still held${after}`
}

/** Runs the command under the lock and turns its end into an exit status. */
async function supervise(lock: Lock, o: RunOptions): Promise<number> {
  const env = { ...process.env }
  if (o.fenceEnv) env[o.fenceEnv] = String(lock.fence)
  const [file, ...args] = o.command as [string, ...string[]]
  const child = spawn(file, args, { stdio: 'inherit', env })
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal)
  }
  for (const s of FORWARDED) process.on(s, forward)
  let lost = false
  let killTimer: NodeJS.Timeout | undefined
  const onLost = (): void => {
    lost = true
    const reason = (lock.signal.reason as Error | undefined)?.message ?? 'lock lost'
    process.stderr.write(`async-redis-lock: ${reason}; stopping the command (SIGTERM)\n`)
    child.kill('SIGTERM')
    // A command that ignores SIGTERM must not keep running unprotected for long.
    killTimer = setTimeout(() => child.kill('SIGKILL'), o.graceMs)
  }
  lock.signal.addEventListener('abort', onLost, { once: true })
  try {
    const end = await exitOf(child)
    if ('error' in end) {
      const code = end.error.code
      process.stderr.write(`async-redis-lock: cannot run '${file}': ${end.error.message}\n`)
      return code === 'ENOENT' ? EXIT.commandNotFound : EXIT.cannotExecute
    }
    if (lost) return EXIT.lockLost
    return end.signal ? signalStatus(end.signal) : (end.code ?? EXIT.software)
  } finally {
    clearTimeout(killTimer)
    lock.signal.removeEventListener('abort', onLost)
    for (const s of FORWARDED) process.off(s, forward)
    await lock.release().catch(() => {})
  }
}

type ChildEnd = { code: number | null; signal: NodeJS.Signals | null } | { error: NodeJS.ErrnoException }

function exitOf(child: ChildProcess): Promise<ChildEnd> {
  return new Promise((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolve({ error }))
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
}
