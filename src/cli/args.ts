/**
 * Argument helpers shared by the CLI commands: exit statuses, usage errors and
 * human durations. Nothing here touches Redis.
 *
 * @module
 */
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { MAX_LIMIT } from '../options.js'

/**
 * The CLI's exit statuses. Values follow BSD sysexits(3) where one fits, so
 * shell scripts and supervisors can tell "busy, try later" from "broken".
 */
export const EXIT = {
  ok: 0,
  /** `release --force` found nothing to remove. */
  notFound: 1,
  /** Bad command line (EX_USAGE). */
  usage: 64,
  /** Redis unreachable or answered with an error (EX_UNAVAILABLE). */
  unavailable: 69,
  /** Unexpected internal error (EX_SOFTWARE). */
  software: 70,
  /** The lock was not acquired in time; the command was not started (EX_TEMPFAIL). */
  notAcquired: 75,
  /** The lock was lost while the command ran; it was terminated. */
  lockLost: 76,
  /** The command exists but could not be executed (as in the shell). */
  cannotExecute: 126,
  /** The command was not found (as in the shell). */
  commandNotFound: 127,
} as const

/** A command line the CLI cannot act on: reported with the usage text and status 64. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** The environment's Redis URL, or the local default. */
export function defaultUrl(): string {
  return process.env.REDIS_URL || 'redis://127.0.0.1:6379'
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** The longest delay a Node timer takes (as the library's own bound on durations). */
export const MAX_DURATION_MS = 2_147_483_647

/** The shortest lease the library accepts (`lifetimeMs` is an integer >= 10). */
export const MIN_LIFETIME_MS = 10

/**
 * Parses `500ms`, `30s`, `1.5s`, `2m`, `1h` or a plain number of milliseconds,
 * rounded to whole milliseconds, and checks it lies in `[min, MAX_DURATION_MS]`.
 * @throws UsageError for anything else, naming the flag.
 */
export function parseDuration(flag: string, text: string, min = 0): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (!match) {
    throw new UsageError(
      `--${flag}: expected a duration such as 500ms, 30s, 2m, 1h or plain ms; got '${text}'`,
    )
  }
  const ms = Math.round(Number(match[1]) * (UNITS[match[2] ?? 'ms'] ?? 1))
  if (ms < min) throw new UsageError(`--${flag}: must be at least ${min}ms; got '${text}'`)
  if (!(ms <= MAX_DURATION_MS)) {
    throw new UsageError(`--${flag}: must be at most ${MAX_DURATION_MS}ms (about 24.8 days); got '${text}'`)
  }
  return ms
}

/**
 * Parses `--limit`: a whole number of holders in `[1, MAX_LIMIT]`, in decimal digits.
 * @throws UsageError for anything else (0, negative, fractional, not a number), naming the flag.
 */
export function parseLimit(text: string): number {
  const trimmed = text.trim()
  if (!/^\d+$/.test(trimmed)) {
    throw new UsageError(`--limit: expected a whole number of holders (1 or more); got '${text}'`)
  }
  const limit = Number(trimmed)
  if (limit < 1) throw new UsageError(`--limit: must be at least 1; got '${text}'`)
  if (limit > MAX_LIMIT) throw new UsageError(`--limit: must be at most ${MAX_LIMIT}; got '${text}'`)
  return limit
}

/**
 * `parseArgs` in strict mode, with its TypeErrors (unknown flag, missing value)
 * turned into {@link UsageError}s so they exit 64 rather than crash.
 */
export function parse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config)
  } catch (err) {
    throw new UsageError(parseArgsMessage(err as NodeJS.ErrnoException, config.allowPositionals === true))
  }
}

/**
 * Node's message for an unknown option ends in an unbalanced quote (`as in '-- "--x"`)
 * and suggests `-- "--x"` even where `--` starts the command: say it in our own words.
 */
function parseArgsMessage(err: NodeJS.ErrnoException, allowPositionals: boolean): string {
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const option = /^Unknown option '(.*?)'(?:\.|$)/s.exec(err.message)?.[1]
    if (option !== undefined) {
      const hint = allowPositionals ? "; an argument that starts with '-' goes after '--'" : ''
      return `unknown option '${option}'${hint}`
    }
  }
  return err.message
}
