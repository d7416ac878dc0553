#!/usr/bin/env node
/**
 * The `async-redis-lock` command: dispatches to a subcommand and maps every
 * outcome to a documented exit status. The library core never imports this.
 *
 * @module
 */
import { LockError } from '../errors.js'
import { EXIT, UsageError } from './args.js'
import { DEMO_USAGE, DEMO_WORKER, demoCommand, demoWorker } from './demo.js'
import { INSPECT_USAGE, inspectCommand, RELEASE_USAGE, releaseCommand } from './inspect.js'
import { RUN_USAGE, runCommand } from './run.js'

/** Top-level usage, with the exit status table. */
export const MAIN_USAGE = `Usage: async-redis-lock COMMAND [options]

Commands:
  run --key KEY [options] -- CMD [ARGS...]   run CMD while holding the lock KEY
      [--shared]                             ... as a reader (shared with other --shared runs)
      [--limit N]                            ... with one of N permits (at most N such runs at once)
  inspect KEY [--json]                       show whether KEY is held, its kind, holders and fence
  release KEY --force                        delete a stuck exclusive lock, whoever holds it
  demo                                       processes contending for one lock, one killed

Common options: --url URL (default: $REDIS_URL or redis://127.0.0.1:6379), -h/--help.
Run 'async-redis-lock COMMAND --help' for a command's options.

Exit status:
  0        success (run: CMD exited 0)
  1..125   run: CMD's own exit status
  1        release: nothing to remove (KEY free, or its owner changed meanwhile)
  64       bad usage (unknown flag, missing or bad argument, release without --force);
           run: KEY held as another kind; release: KEY is a shared lock or semaphore
  69       Redis unreachable or failing
  70       internal error
  75       run: lock not acquired within --wait (or at once with --no-wait); CMD not started
  76       run: lock lost while CMD ran; CMD got SIGTERM (SIGKILL after --grace)
  126/127  run: CMD could not be executed / was not found
  128+N    run: CMD was killed by signal N (or the wait was interrupted by signal N)`

const COMMANDS: Record<string, { run(argv: string[]): Promise<number>; usage: string }> = {
  run: { run: runCommand, usage: RUN_USAGE },
  inspect: { run: inspectCommand, usage: INSPECT_USAGE },
  release: { run: releaseCommand, usage: RELEASE_USAGE },
  demo: { run: demoCommand, usage: DEMO_USAGE },
}

/**
 * Runs the CLI with `argv` (without node and script); resolves with the exit status.
 * Never rejects: every failure becomes a message on stderr and a status.
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === DEMO_WORKER) return demoWorker(rest)
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    const out = name === undefined ? process.stderr : process.stdout
    out.write(`${MAIN_USAGE}\n`)
    return name === undefined ? EXIT.usage : EXIT.ok
  }
  const command = COMMANDS[name]
  if (!command) return usageError(`unknown command '${name}'`, MAIN_USAGE)
  try {
    return await command.run(rest)
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, command.usage)
    if (err instanceof LockError) {
      process.stderr.write(`async-redis-lock: ${err.message}\n`)
      if (err.code === 'ERR_LOCK_INVALID_ARGUMENT') return EXIT.usage
      if (err.code === 'ERR_LOCK_BACKEND' || err.code === 'ERR_LOCK_QUORUM') return EXIT.unavailable
      return EXIT.software
    }
    process.stderr.write(`async-redis-lock: ${(err as Error)?.stack ?? String(err)}\n`)
    return EXIT.software
  }
}

function usageError(message: string, usage: string): number {
  process.stderr.write(`async-redis-lock: ${message}\n\n${usage}\n`)
  return EXIT.usage
}

// Exit explicitly: a lingering handle (a reconnecting client) must not keep the
// process alive after the status is known.
main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  () => process.exit(EXIT.software),
)
