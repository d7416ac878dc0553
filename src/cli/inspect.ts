/**
 * `async-redis-lock inspect` and `async-redis-lock release --force`.
 *
 * @module
 */
import { forceRelease, Locker } from '../locker.js'
import type { KeyInspection } from '../types.js'
import { defaultUrl, EXIT, parse, UsageError } from './args.js'

/** Usage text of `inspect`. */
export const INSPECT_USAGE = `Usage: async-redis-lock inspect KEY [--url URL] [--json]

Shows whether KEY is held, its kind (exclusive, shared or semaphore, with the
semaphore's limit), its holders with each one's remaining lease in ms (the token
of an exclusive holder only) and the last fencing token.

Options:
  --url URL    Redis URL (default: $REDIS_URL or redis://127.0.0.1:6379)
  --json       print one JSON object {key, isHeld, kind, limit, holders: [{remainingMs}],
               token, remainingMs, fence} (fence as a string: it is a 64-bit integer;
               token null unless KEY is held as an exclusive lock)
  -h, --help   show this help`

/** Usage text of `release`. */
export const RELEASE_USAGE = `Usage: async-redis-lock release KEY --force [--url URL]

Deletes a stuck lock whoever holds it, and prints what it removed. The holder is
not told until its next extension fails; use this only for a holder that is gone.
Exclusive locks only: a key held as a shared lock or a semaphore is refused (exit 64);
each of its holders' leases ends by itself within its lifetime once its process is gone.

Options:
  --force      required: confirms that you mean to break someone else's lock
  --url URL    Redis URL (default: $REDIS_URL or redis://127.0.0.1:6379)
  -h, --help   show this help`

/** Parses `KEY [--url] [extra flags]`; null means help was asked for. */
function parseKeyCommand(
  name: string,
  argv: string[],
  extra: { json?: { type: 'boolean' }; force?: { type: 'boolean' } },
): { key: string; url: string; json: boolean; force: boolean } | null {
  const { values, positionals } = parse({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: { url: { type: 'string' }, help: { type: 'boolean', short: 'h' }, ...extra },
  })
  if (values.help) return null
  if (positionals.length !== 1 || positionals[0] === '') {
    throw new UsageError(`${name} takes exactly one KEY; got ${positionals.length}`)
  }
  const flags = values as { json?: boolean; force?: boolean }
  return {
    key: positionals[0] as string,
    url: values.url ?? defaultUrl(),
    json: flags.json ?? false,
    force: flags.force ?? false,
  }
}

/** Holder lines shown by `inspect`; `--json` lists them all. */
const MAX_HOLDER_LINES = 20

/** How KEY is held, in words: `a semaphore with limit 3`. */
function kindText(s: KeyInspection): string {
  if (s.kind === 'semaphore') return `a semaphore with limit ${s.limit}`
  return s.kind === 'shared' ? 'a shared lock' : 'an exclusive lock'
}

/** `KEY: free (...)` or `KEY: held as KIND by N holders ..., fence F`: one line. */
function summary(s: KeyInspection): string {
  const fence = s.fence === null ? 'none' : String(s.fence)
  if (!s.isHeld) return `${s.key}: free (last fence ${fence})`
  const n = s.holders.length
  const holders = `${n} holder${n === 1 ? '' : 's'}`
  let who = holders
  if (s.kind === 'exclusive') who = `${holders} (token ${s.token})`
  else if (s.kind === 'semaphore' && s.limit !== null) {
    const free = Math.max(0, s.limit - n)
    who = `${holders} (${free} permit${free === 1 ? '' : 's'} free)`
  }
  return `${s.key}: held as ${kindText(s)} by ${who}, fence ${fence}`
}

function leaseText(ms: number | null): string {
  return ms === null ? 'no expiry' : `${ms} ms left`
}

/** The summary, then one line per holder (shortest lease first) with its remaining lease. */
function describeState(s: KeyInspection): string {
  const lines = [summary(s)]
  for (const [i, h] of s.holders.slice(0, MAX_HOLDER_LINES).entries()) {
    lines.push(`  holder ${i + 1}: ${leaseText(h.remainingMs)}`)
  }
  const more = s.holders.length - MAX_HOLDER_LINES
  if (more > 0) lines.push(`  ... and ${more} more (--json lists every holder)`)
  return lines.join('\n')
}

/** Runs `inspect`; resolves with the exit status. */
export async function inspectCommand(argv: string[]): Promise<number> {
  const opts = parseKeyCommand('inspect', argv, { json: { type: 'boolean' } })
  if (!opts) {
    process.stdout.write(`${INSPECT_USAGE}\n`)
    return EXIT.ok
  }
  const locker = await Locker.fromUrl(opts.url)
  try {
    const state = await locker.inspect(opts.key)
    if (opts.json) {
      const fence = state.fence === null ? null : String(state.fence)
      // Tokens of shared holders and permits are never shown (the library does not read them either).
      const token = state.kind === 'exclusive' ? state.token : null
      process.stdout.write(`${JSON.stringify({ ...state, token, fence })}\n`)
    } else {
      process.stdout.write(`${describeState(state)}\n`)
    }
    return EXIT.ok
  } finally {
    await locker.close()
  }
}

/** Runs `release --force`; resolves with the exit status. */
export async function releaseCommand(argv: string[]): Promise<number> {
  const opts = parseKeyCommand('release', argv, { force: { type: 'boolean' } })
  if (!opts) {
    process.stdout.write(`${RELEASE_USAGE}\n`)
    return EXIT.ok
  }
  if (!opts.force) {
    throw new UsageError(`release deletes '${opts.key}' whoever holds it: add --force to confirm`)
  }
  const locker = await Locker.fromUrl(opts.url)
  let state: KeyInspection
  let removed: boolean
  try {
    state = await locker.inspect(opts.key)
    if (state.isHeld && state.kind !== 'exclusive') {
      // A forced release compares the token it printed; holders' tokens are never read,
      // and a blind delete could remove a holder that joined after the inspection.
      const longest = state.holders.reduce((m, h) => Math.max(m, h.remainingMs ?? 0), 0)
      process.stderr.write(
        `async-redis-lock: release --force removes exclusive locks only; ${summary(state)}. Nothing removed: each holder's lease ends by itself within its lifetime once its process is gone (the longest has ${longest} ms left)\n`,
      )
      return EXIT.usage
    }
    if (!state.isHeld || state.token === null) {
      process.stdout.write(`${summary(state)}; nothing removed\n`)
      return EXIT.notFound
    }
    // Compare-and-delete on the token just read and about to be printed: a holder
    // that changed in between is not removed behind the operator's back.
    removed = await forceRelease(locker, opts.key, state.token)
  } finally {
    await locker.close()
  }
  if (!removed) {
    process.stdout.write(`${state.key}: owner changed or lock expired meanwhile; nothing removed\n`)
    return EXIT.notFound
  }
  const left = state.remainingMs === null ? 'no expiry' : `${state.remainingMs} ms left`
  process.stdout.write(
    `removed ${state.key}: token ${state.token}, ${left}, fence ${state.fence ?? 'none'}\n`,
  )
  return EXIT.ok
}
