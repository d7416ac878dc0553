import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { releaseChannel } from '../../src/internal/keys.js'
import { killQuietly, onProcessExit } from '../helpers/cleanup.js'
import { Worker } from '../helpers/processes.js'
import { getFreePort, type RedisServer, startRedis } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

// The CLI is tested as users get it: the built dist/esm/cli/main.js, run by node.
const root = fileURLToPath(new URL('../../', import.meta.url))
const CLI = join(root, 'dist/esm/cli/main.js')
/** Another owner's token, in the stored format (`arl1.` and 22 base64url characters). */
const OTHER = `arl1.${'o'.repeat(22)}`
const STUCK = `arl1.${'s'.repeat(22)}`

const live = new Set<Worker>()
onProcessExit(() => {
  for (const w of live) killQuietly(w.pid, 'SIGKILL')
})

let server: RedisServer
let dir: string

/** Starts the CLI against the test Redis (never the shared one: REDIS_URL is always ours). */
function cli(args: string[], env: Record<string, string> = {}): Worker {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: dir,
    env: { ...process.env, REDIS_URL: server.url, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const worker = new Worker(child)
  live.add(worker)
  void worker.exited.then(() => live.delete(worker))
  return worker
}

async function status(worker: Worker): Promise<number | null> {
  const exit = await worker.exited
  return exit.code
}

/** A node one-liner as the command to run under the lock. */
function nodeCmd(code: string): string[] {
  return [process.execPath, '-e', code]
}

const read = (file: string): string => (existsSync(file) ? readFileSync(file, 'utf8') : '')

describe('command line', () => {
  before(async () => {
    if (!existsSync(CLI)) execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' })
    server = await startRedis()
    dir = mkdtempSync(join(tmpdir(), 'arl-cli-'))
  })
  after(async () => {
    for (const w of live) w.kill('SIGKILL')
    await server?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('concurrent runs on one key never overlap', async () => {
    const log = join(dir, 'overlap.log')
    const body = `const fs = require('node:fs'); const id = process.argv[1];
      fs.appendFileSync(${JSON.stringify(log)}, 'start ' + id + ' ' + Date.now() + '\\n');
      setTimeout(() => { fs.appendFileSync(${JSON.stringify(log)}, 'end ' + id + ' ' + Date.now() + '\\n') }, 250)`
    const runs = [1, 2, 3].map((id) =>
      cli(['run', '--key', 'overlap', '--wait', '20s', '--', ...nodeCmd(body), String(id)]),
    )
    for (const run of runs) assert.equal(await status(run), 0, run.stderrText())
    const events = read(log)
      .trim()
      .split('\n')
      .map((line) => line.split(' '))
    const spans = [1, 2, 3].map((id) => {
      const at = (kind: string) => Number(events.find((e) => e[0] === kind && e[1] === String(id))?.[2])
      return { start: at('start'), end: at('end') }
    })
    spans.sort((a, b) => a.start - b.start)
    for (let i = 1; i < spans.length; i++) {
      assert.ok(spans[i - 1]!.end <= spans[i]!.start, `overlap: ${JSON.stringify(spans)}`)
    }
  })

  test("the child's exit status is passed through", async () => {
    assert.equal(await status(cli(['run', '--key', 'st', '--', 'sh', '-c', 'exit 3'])), 3)
    assert.equal(await status(cli(['run', '--key', 'st', '--', 'sh', '-c', 'kill -KILL $$'])), 128 + 9)
  })

  test('not acquired: 75, and the command is never started', async () => {
    await server.command('SET', 'busy', OTHER, 'PX', 20_000)
    const marker = join(dir, 'started')
    const touch = nodeCmd(`require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x')`)
    const once = cli(['run', '--key', 'busy', '--no-wait', '--', ...touch])
    assert.equal(await status(once), 75)
    assert.match(once.stderrText(), /could not acquire 'busy'/)
    assert.equal(await status(cli(['run', '--key', 'busy', '--wait', '300ms', '--', ...touch])), 75)
    assert.equal(existsSync(marker), false)
  })

  test('a signal while waiting ends the wait without starting the command', async () => {
    await server.command('SET', 'held', OTHER, 'PX', 20_000)
    const marker = join(dir, 'never')
    const touch = nodeCmd(`require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x')`)
    const run = cli(['run', '--key', 'held', '--wait', '20s', '--', ...touch])
    // Waiting means subscribed to the key's release channel: interrupt only then.
    await waitFor(
      async () => {
        const reply = (await server.command('PUBSUB', 'NUMSUB', releaseChannel('held'))) as [string, number]
        return reply[1] >= 1
      },
      { timeoutMs: 10_000, message: 'the CLI to wait on the release channel' },
    )
    run.kill('SIGINT')
    assert.equal(await status(run), 128 + 2)
    assert.equal(existsSync(marker), false)
    assert.equal(await server.command('GET', 'held'), `${OTHER}!`, 'still held (and marked by the waiter)')
  })

  test('no status line when stderr is not a terminal', async () => {
    await server.command('SET', 'quiet', OTHER, 'PX', 20_000)
    const run = cli(['run', '--key', 'quiet', '--wait', '1600ms', '--', 'true'])
    assert.equal(await status(run), 75)
    assert.doesNotMatch(run.stderrText(), /waiting for|\r/)
  })

  test('demo runs from dist', async () => {
    const run = cli(['demo'])
    assert.equal(await status(run), 0, run.stderrText())
    const out = run.stdoutLines().join('\n')
    assert.match(out, /killing worker \d/)
    assert.match(out, /ms after the kill/)
    assert.match(out, /is free/)
  })

  test('lock lost: the child gets SIGTERM and the CLI exits 76', async () => {
    const out = join(dir, 'lost.log')
    const body = `const fs = require('node:fs');
      process.on('SIGTERM', () => { fs.appendFileSync(${JSON.stringify(out)}, 'TERM\\n'); process.exit(0) });
      fs.appendFileSync(${JSON.stringify(out)}, 'ready\\n'); setInterval(() => {}, 1000)`
    const run = cli(['run', '--key', 'lost', '--lifetime', '1s', '--grace', '2s', '--', ...nodeCmd(body)])
    await waitFor(() => read(out).includes('ready'), { timeoutMs: 10_000, message: 'child started' })
    assert.equal(await server.command('DEL', 'lost'), 1)
    assert.equal(await status(run), 76)
    assert.match(read(out), /TERM/)
    assert.match(run.stderrText(), /was lost/)
  })

  test('SIGKILL follows SIGTERM after --grace when the child ignores it', async () => {
    const out = join(dir, 'stubborn.log')
    const body = `process.on('SIGTERM', () => {}); require('node:fs').writeFileSync(${JSON.stringify(out)}, 'ready');
      setInterval(() => {}, 1000)`
    const run = cli([
      'run',
      '--key',
      'stubborn',
      '--lifetime',
      '1s',
      '--grace',
      '300ms',
      '--',
      ...nodeCmd(body),
    ])
    await waitFor(() => read(out) === 'ready', { timeoutMs: 10_000, message: 'child started' })
    await server.command('DEL', 'stubborn')
    assert.equal(await status(run), 76)
  })

  test('SIGTERM to the CLI is forwarded to the child, then the lock is released', async () => {
    const out = join(dir, 'fwd.log')
    const body = `const fs = require('node:fs');
      process.on('SIGTERM', () => { fs.appendFileSync(${JSON.stringify(out)}, 'TERM\\n'); process.exit(5) });
      fs.appendFileSync(${JSON.stringify(out)}, 'ready\\n'); setInterval(() => {}, 1000)`
    const run = cli(['run', '--key', 'fwd', '--', ...nodeCmd(body)])
    await waitFor(() => read(out).includes('ready'), { timeoutMs: 10_000, message: 'child started' })
    run.kill('SIGTERM')
    assert.equal(await status(run), 5)
    assert.match(read(out), /TERM/)
    assert.equal(await server.command('EXISTS', 'fwd'), 0)
  })

  test('--fence-env passes the fence to the child', async () => {
    const run = cli([
      'run',
      '--key',
      'fenced',
      '--fence-env',
      'MY_FENCE',
      '--',
      'sh',
      '-c',
      'echo "f=$MY_FENCE"',
    ])
    assert.equal(await status(run), 0)
    const line = await run.waitForLine((l) => l.startsWith('f='))
    const fence = line.slice(2)
    assert.match(fence, /^\d+$/)
    const inspected = cli(['inspect', 'fenced', '--json'])
    assert.equal(await status(inspected), 0)
    assert.equal(JSON.parse(inspected.stdoutLines()[0]!).fence, fence)
  })

  test('inspect --json and release --force', async () => {
    await server.command('SET', 'stuck', STUCK, 'PX', 60_000)
    const inspected = cli(['inspect', 'stuck', '--json'])
    assert.equal(await status(inspected), 0)
    const state = JSON.parse(inspected.stdoutLines().join('\n'))
    assert.equal(state.key, 'stuck')
    assert.equal(state.isHeld, true)
    assert.equal(state.token, STUCK)
    assert.ok(state.remainingMs > 50_000 && state.remainingMs <= 60_000)

    const refused = cli(['release', 'stuck'])
    assert.equal(await status(refused), 64)
    assert.match(refused.stderrText(), /--force/)
    assert.equal(await server.command('GET', 'stuck'), STUCK)

    const released = cli(['release', 'stuck', '--force'])
    assert.equal(await status(released), 0)
    assert.match(released.stdoutLines().join('\n'), new RegExp(`removed stuck: token ${STUCK}`))
    assert.equal(await server.command('EXISTS', 'stuck'), 0)
    assert.equal(await status(cli(['release', 'stuck', '--force'])), 1)

    const free = cli(['inspect', 'stuck'])
    assert.equal(await status(free), 0)
    assert.match(free.stdoutLines().join('\n'), /stuck: free/)
  })

  test('bad usage exits 64 with a message and the usage on stderr', async () => {
    const cases = [
      ['run', '--key', 'k', '--bogus', '--', 'true'],
      ['run', '--', 'true'],
      ['run', '--key', 'k'],
      ['run', '--key', 'k', '--wait', 'soon', '--', 'true'],
      ['run', '--key', 'k', '--wait', '1s', '--no-wait', '--', 'true'],
      ['inspect'],
      ['frobnicate'],
      [],
    ]
    for (const args of cases) {
      const run = cli(args)
      assert.equal(await status(run), 64, `${args.join(' ')}: ${run.stderrText()}`)
      assert.match(run.stderrText(), /Usage: async-redis-lock/, args.join(' '))
    }
    const help = cli(['run', '--help'])
    assert.equal(await status(help), 0)
    assert.match(help.stdoutLines().join('\n'), /--fence-env/)
  })

  test('a bad duration flag is reported by the flag, not the library option, and exits 64', async () => {
    const marker = join(dir, 'bad-duration.started')
    const cases: [string[], RegExp][] = [
      [['--lifetime', '5'], /--lifetime: must be at least 10ms; got '5'/],
      [['--lifetime', '0'], /--lifetime: must be at least 10ms; got '0'/],
      [['--wait', '600h'], /--wait: must be at most 2147483647ms/],
      [['--grace', '600h'], /--grace: must be at most 2147483647ms/],
    ]
    for (const [flags, message] of cases) {
      const run = cli([
        'run',
        '--key',
        'bad-duration',
        ...flags,
        '--',
        ...nodeCmd(`require('node:fs').writeFileSync(${JSON.stringify(marker)}, '')`),
      ])
      const label = flags.join(' ')
      assert.equal(await status(run), 64, `${label}: ${run.stderrText()}`)
      assert.match(run.stderrText(), message, label)
      assert.doesNotMatch(run.stderrText(), /lifetimeMs|retryTimeoutMs/, label)
      assert.match(run.stderrText(), /Usage: async-redis-lock run/, label)
    }
    assert.equal(existsSync(marker), false, 'the command must not have been started')
  })

  test('an unknown flag is named in a message with balanced quotes', async () => {
    for (const args of [
      ['run', '--bogus'],
      ['run', '--key', 'k', '--bogus', '--', 'true'],
      ['inspect', 'k', '-z'],
    ]) {
      const run = cli(args)
      assert.equal(await status(run), 64, run.stderrText())
      const line = run.stderrText().split('\n')[0] ?? ''
      assert.match(line, /^async-redis-lock: unknown option '(--bogus|-z)'/, line)
      assert.equal(line.split("'").length % 2, 1, `unbalanced ' in: ${line}`)
      assert.equal(line.split('"').length % 2, 1, `unbalanced " in: ${line}`)
    }
  })

  test('Redis unreachable exits 69 without starting the command', async () => {
    const port = await getFreePort()
    const run = cli(['run', '--key', 'k', '--url', `redis://127.0.0.1:${port}`, '--', 'true'])
    assert.equal(await status(run), 69)
    assert.match(run.stderrText(), /cannot connect/)
  })
})
