import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { holdersKey, releaseChannel } from '../../src/internal/keys.js'
import { Locker } from '../../src/locker.js'
import { killQuietly, onProcessExit } from '../helpers/cleanup.js'
import { Worker } from '../helpers/processes.js'
import { getFreePort, type RedisServer, startRedis } from '../helpers/redis-server.js'
import { sleep, waitFor } from '../helpers/wait.js'

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

/**
 * A command that appends `start ID <ms>` to `log`, runs until the file `go-ID` appears
 * (the test's gate), then appends `end ID <ms>` and exits 0 (3 if never let go).
 */
function gated(log: string, id: string): string[] {
  const go = join(dir, `go-${id}`)
  return nodeCmd(`const fs = require('node:fs'); const log = ${JSON.stringify(log)};
    fs.appendFileSync(log, 'start ${id} ' + Date.now() + '\\n');
    const until = Date.now() + 30000;
    const t = setInterval(() => {
      if (fs.existsSync(${JSON.stringify(go)})) {
        clearInterval(t); fs.appendFileSync(log, 'end ${id} ' + Date.now() + '\\n'); process.exit(0)
      }
      if (Date.now() > until) process.exit(3)
    }, 20)`)
}

/** Lets the gated command `id` finish. */
const letGo = (id: string): void => writeFileSync(join(dir, `go-${id}`), '')

/** The `start`/`end` lines of `log`, as times by command id. */
function spans(log: string): Map<string, { start?: number; end?: number }> {
  const out = new Map<string, { start?: number; end?: number }>()
  for (const line of read(log).trim().split('\n')) {
    const [what, id, at] = line.split(' ')
    if (id === undefined || (what !== 'start' && what !== 'end')) continue
    const span = out.get(id) ?? {}
    span[what] = Number(at)
    out.set(id, span)
  }
  return out
}

const started = (log: string, id: string): boolean => spans(log).get(id)?.start !== undefined

/** Resolves once `n` clients wait on the key's release channel (a waiting `run`). */
async function waiting(key: string, n = 1): Promise<void> {
  await waitFor(
    async () => {
      const reply = (await server.command('PUBSUB', 'NUMSUB', releaseChannel(key))) as [string, number]
      return reply[1] >= n
    },
    { timeoutMs: 10_000, message: `${n} CLI run(s) waiting for ${key}` },
  )
}

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

  test('run --limit 2: two run at once, a third waits (or exits 75 with --no-wait) until one ends', async () => {
    const log = join(dir, 'sem.log')
    const a = cli(['run', '--limit', '2', '--key', 'sem', '--', ...gated(log, 'semA')])
    const b = cli(['run', '--limit', '2', '--key', 'sem', '--', ...gated(log, 'semB')])
    await waitFor(() => started(log, 'semA') && started(log, 'semB'), {
      timeoutMs: 10_000,
      message: 'both permit holders running',
    })
    const marker = join(dir, 'sem.third')
    const touch = nodeCmd(`require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x')`)
    const busy = cli(['run', '--limit', '2', '--key', 'sem', '--no-wait', '--', ...touch])
    assert.equal(await status(busy), 75, busy.stderrText())
    assert.match(busy.stderrText(), /could not acquire 'sem' \(a permit, limit 2\): all 2 permits are held/)
    const timedOut = cli(['run', '--limit', '2', '--key', 'sem', '--wait', '300ms', '--', ...touch])
    assert.equal(await status(timedOut), 75, timedOut.stderrText())
    assert.equal(existsSync(marker), false, 'the third command must not have started')

    const c = cli(['run', '--limit', '2', '--key', 'sem', '--wait', '20s', '--', ...gated(log, 'semC')])
    await waiting('sem')
    await sleep(300)
    assert.equal(started(log, 'semC'), false, 'a third holder started beside two')
    letGo('semA')
    assert.equal(await status(a), 0, a.stderrText())
    await waitFor(() => started(log, 'semC'), { timeoutMs: 10_000, message: 'the third run to start' })
    letGo('semB')
    letGo('semC')
    for (const run of [b, c]) assert.equal(await status(run), 0, run.stderrText())
    const s = spans(log)
    const semA = s.get('semA')
    const semC = s.get('semC')
    assert.ok(semA?.end !== undefined && semC?.start !== undefined, JSON.stringify([...s]))
    assert.ok(semC.start >= semA.end, `C started before A ended: ${JSON.stringify([...s])}`)
    assert.equal(await server.command('EXISTS', 'sem', holdersKey('sem')), 0, 'the last holder out cleans up')
  })

  test('run --shared: two run at the same time', async () => {
    const log = join(dir, 'shared.log')
    // Each one runs until both have started: run one after the other, they would time out (exit 3).
    const both = nodeCmd(`const fs = require('node:fs'); const log = ${JSON.stringify(log)};
      fs.appendFileSync(log, 'start ' + process.argv[1] + ' ' + Date.now() + '\\n');
      const until = Date.now() + 20000;
      const t = setInterval(() => {
        const n = fs.readFileSync(log, 'utf8').split('\\n').filter((l) => l.startsWith('start ')).length;
        if (n >= 2) { clearInterval(t); fs.appendFileSync(log, 'end ' + process.argv[1] + ' ' + Date.now() + '\\n'); process.exit(0) }
        if (Date.now() > until) process.exit(3)
      }, 20)`)
    const runs = ['r1', 'r2'].map((id) =>
      cli(['run', '--shared', '--key', 'readers', '--wait', '20s', '--', ...both, id]),
    )
    for (const run of runs) assert.equal(await status(run), 0, run.stderrText())
    const s = spans(log)
    const r1 = s.get('r1')
    const r2 = s.get('r2')
    assert.ok(
      r1?.start !== undefined && r2?.start !== undefined && r1.end !== undefined && r2.end !== undefined,
    )
    assert.ok(r1.start <= r2.end && r2.start <= r1.end, `no overlap: ${JSON.stringify([...s])}`)
  })

  test('a plain run (the writer) waits for a run --shared, and exits 75 with --no-wait', async () => {
    const log = join(dir, 'rw.log')
    const reader = cli(['run', '--shared', '--key', 'rw', '--', ...gated(log, 'rwR')])
    await waitFor(() => started(log, 'rwR'), { timeoutMs: 10_000, message: 'the reader running' })
    const inspected = cli(['inspect', 'rw', '--json'])
    assert.equal(await status(inspected), 0)
    assert.equal(JSON.parse(inspected.stdoutLines().join('\n')).kind, 'shared')
    const busy = cli(['run', '--key', 'rw', '--no-wait', '--', 'true'])
    assert.equal(await status(busy), 75, busy.stderrText())
    const writer = cli(['run', '--key', 'rw', '--wait', '20s', '--', ...gated(log, 'rwW')])
    await waiting('rw')
    await sleep(300)
    assert.equal(started(log, 'rwW'), false, 'the writer started beside a reader')
    letGo('rwR')
    assert.equal(await status(reader), 0, reader.stderrText())
    await waitFor(() => started(log, 'rwW'), { timeoutMs: 10_000, message: 'the writer to start' })
    // While the writer holds the key, a reader does not get in.
    const lateReader = cli(['run', '--shared', '--key', 'rw', '--no-wait', '--', 'true'])
    assert.equal(await status(lateReader), 75, lateReader.stderrText())
    assert.match(lateReader.stderrText(), /could not acquire 'rw' \(shared\)/)
    letGo('rwW')
    assert.equal(await status(writer), 0, writer.stderrText())
    const s = spans(log)
    const r = s.get('rwR')
    const w = s.get('rwW')
    assert.ok(r?.end !== undefined && w?.start !== undefined && w.start >= r.end, JSON.stringify([...s]))
  })

  test('a bad --limit, or --shared with --limit, exits 64 naming the flag; the command is not started', async () => {
    const marker = join(dir, 'bad-limit.started')
    const touch = nodeCmd(`require('node:fs').writeFileSync(${JSON.stringify(marker)}, '')`)
    const cases: [string[], RegExp][] = [
      [['--limit', '0'], /--limit: must be at least 1; got '0'/],
      [['--limit', 'x'], /--limit: expected a whole number of holders \(1 or more\); got 'x'/],
      [['--limit', '1.5'], /--limit: expected a whole number of holders \(1 or more\); got '1\.5'/],
      [['--limit=-1'], /--limit: expected a whole number of holders \(1 or more\); got '-1'/],
      [['--limit', '1000001'], /--limit: must be at most 1000000; got '1000001'/],
      [['--shared', '--limit', '2'], /--shared and --limit cannot be used together/],
      [['--limit', '2', '--shared'], /--shared and --limit cannot be used together/],
      [['--limit'], /--limit/],
    ]
    for (const [flags, message] of cases) {
      const run = cli(['run', '--key', 'bad-limit', ...flags, '--', ...touch])
      const label = flags.join(' ')
      assert.equal(await status(run), 64, `${label}: ${run.stderrText()}`)
      const first = run.stderrText().split('\n')[0] ?? ''
      assert.match(first, message, label)
      assert.match(run.stderrText(), /Usage: async-redis-lock run/, label)
      assert.doesNotMatch(run.stderrText(), /ERR_LOCK|InvalidArgument/, label)
    }
    assert.equal(existsSync(marker), false, 'the command must not have been started')
    const help = cli(['run', '--help'])
    assert.equal(await status(help), 0)
    const text = help.stdoutLines().join('\n')
    assert.match(text, /--shared/)
    assert.match(text, /--limit N/)
  })

  test('one key, one kind: run on a key held as another kind exits 64 at once, command not started', async () => {
    const locker = await Locker.fromUrl(server.url)
    try {
      const permit = await locker.acquire('kinds', { limit: 2 })
      const marker = join(dir, 'kinds.started')
      const touch = nodeCmd(`require('node:fs').writeFileSync(${JSON.stringify(marker)}, '')`)
      const cases: [string[], string][] = [
        [['--limit', '3'], 'a semaphore with limit 3'],
        [['--shared'], 'a shared lock'],
        [[], 'an exclusive lock'],
      ]
      for (const [flags, wanted] of cases) {
        const run = cli(['run', '--key', 'kinds', '--wait', '20s', ...flags, '--', ...touch])
        assert.equal(await status(run), 64, `${flags.join(' ')}: ${run.stderrText()}`)
        assert.match(run.stderrText(), /"kinds" is held as a semaphore with limit 2/)
        assert.ok(run.stderrText().includes(`cannot be acquired as ${wanted}`), run.stderrText())
      }
      assert.equal(existsSync(marker), false)
      await permit.release()
    } finally {
      await locker.close()
    }
  })

  test('inspect shows the kind, the limit and every holder of a shared lock and a semaphore; never their tokens', async () => {
    const locker = await Locker.fromUrl(server.url)
    try {
      const readers = [
        await locker.acquire('doc', { shared: true, lifetimeMs: 60_000 }),
        await locker.acquire('doc', { shared: true, lifetimeMs: 30_000 }),
      ]
      const permits = [
        await locker.acquire('jobs', { limit: 3, lifetimeMs: 60_000 }),
        await locker.acquire('jobs', { limit: 3, lifetimeMs: 60_000 }),
      ]
      const writer = await locker.acquire('solo', { lifetimeMs: 60_000 })
      const tokens = [...readers, ...permits].map((l) => l.token)

      const doc = cli(['inspect', 'doc'])
      assert.equal(await status(doc), 0, doc.stderrText())
      const docLines = doc.stdoutLines()
      assert.match(docLines[0] ?? '', /^doc: held as a shared lock by 2 holders, fence none$/)
      assert.equal(docLines.length, 3, docLines.join('\n'))
      const docMs = docLines.slice(1).map((l) => Number(/^ {2}holder \d: (\d+) ms left$/.exec(l)?.[1]))
      assert.ok(docMs[0]! > 20_000 && docMs[0]! <= 30_000, docLines.join('\n'))
      assert.ok(docMs[1]! > 50_000 && docMs[1]! <= 60_000, docLines.join('\n'))

      const jobs = cli(['inspect', 'jobs'])
      assert.equal(await status(jobs), 0, jobs.stderrText())
      const jobLines = jobs.stdoutLines()
      assert.match(
        jobLines[0] ?? '',
        /^jobs: held as a semaphore with limit 3 by 2 holders \(1 permit free\), fence none$/,
      )
      assert.equal(
        jobLines.filter((l) => /^ {2}holder \d: \d+ ms left$/.test(l)).length,
        2,
        jobLines.join('\n'),
      )

      const solo = cli(['inspect', 'solo'])
      assert.equal(await status(solo), 0)
      assert.match(
        solo.stdoutLines()[0] ?? '',
        new RegExp(`^solo: held as an exclusive lock by 1 holder \\(token ${writer.token}\\)`),
      )
      assert.match(solo.stdoutLines()[1] ?? '', /^ {2}holder 1: \d+ ms left$/)

      for (const [key, kind, limit] of [
        ['doc', 'shared', null],
        ['jobs', 'semaphore', 3],
      ] as const) {
        const json = cli(['inspect', key, '--json'])
        assert.equal(await status(json), 0)
        const state = JSON.parse(json.stdoutLines().join('\n'))
        assert.equal(state.isHeld, true)
        assert.equal(state.kind, kind)
        assert.equal(state.limit, limit)
        assert.equal(state.token, null)
        assert.equal(state.holders.length, 2)
        for (const h of state.holders) assert.ok(h.remainingMs > 20_000 && h.remainingMs <= 60_000)
      }
      const soloInspected = cli(['inspect', 'solo', '--json'])
      assert.equal(await status(soloInspected), 0)
      const soloJson = JSON.parse(soloInspected.stdoutLines().join('\n'))
      assert.equal(soloJson.kind, 'exclusive')
      assert.equal(soloJson.limit, null)
      assert.equal(soloJson.holders.length, 1)
      assert.equal(soloJson.token, writer.token)
      for (const out of [docLines.join('\n'), jobLines.join('\n')]) {
        for (const token of tokens) assert.ok(!out.includes(token.slice(-22)), out)
      }

      // release --force is for exclusive locks only: refused, nothing removed.
      for (const key of ['doc', 'jobs']) {
        const refused = cli(['release', key, '--force'])
        assert.equal(await status(refused), 64, refused.stderrText())
        assert.match(refused.stderrText(), /release --force removes exclusive locks only/)
        assert.match(refused.stderrText(), /nothing removed/i)
        assert.equal(await server.command('ZCARD', holdersKey(key)), 2)
      }
      for (const l of [...readers, ...permits]) assert.equal(l.isHeld(), true)
      for (const l of [...readers, ...permits, writer]) await l.release()
    } finally {
      await locker.close()
    }
  })
})
