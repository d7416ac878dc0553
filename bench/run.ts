// Benchmark orchestrator (issue 3): `npm run bench [-- --quick] [-- --only a,b] [-- --libs x,y]`.
// Starts its own redis-server (pinned to core 0), runs every scenario in worker
// processes (pinned to core 1), prints Markdown tables and writes them to bench/results/.
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { FLOORS, LIBRARIES, LIBRARY_NOTES, type LibraryName } from './adapters.js'
import { watchInterference } from './interference.js'
import { busyShare, describeMachine, renderMachine, today } from './machine.js'
import { hasTaskset, ServerProbe, startRedis } from './redis.js'
import { fmt, renderSection, renderVerdicts, type Section } from './report.js'
import { runContention } from './scenarios/contention.js'
import { runHandoff } from './scenarios/handoff.js'
import { runHeld } from './scenarios/held.js'
import { runPermitsContention } from './scenarios/permits-contention.js'
import { runPermitsHandoff } from './scenarios/permits-handoff.js'
import { runPermitsHeld } from './scenarios/permits-held.js'
import { runPermitsSplit } from './scenarios/permits-split.js'
import { runPermitsUncontended } from './scenarios/permits-uncontended.js'
import { runThroughput } from './scenarios/throughput.js'
import { runWaiters } from './scenarios/waiters.js'
import { verdicts } from './targets.js'

const SCENARIOS = [
  'uncontended',
  'concurrent',
  // Issue 14: the same at 8 and 256 loops, so the curve around 64 is visible.
  'concurrent-8',
  'concurrent-256',
  'contention',
  'handoff',
  'held',
  'waiters',
  // Issue 13: semaphores and shared locks.
  'permits-uncontended',
  'permits-contention',
  'permits-handoff',
  'permits-held',
  'permits-split',
] as const

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    libs: { type: 'string' },
    /** Added to the result file names, so several filtered runs of a day keep their files. */
    tag: { type: 'string' },
  },
})
if (values.tag !== undefined && !/^[a-z0-9-]+$/.test(values.tag))
  throw new Error('--tag: a-z, 0-9 and - only')
const quick = values.quick === true
const only = new Set(values.only ? values.only.split(',') : SCENARIOS)
for (const s of only)
  if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s}`)
const libs = (values.libs ? values.libs.split(',') : LIBRARIES) as LibraryName[]
for (const l of libs)
  if (!(LIBRARIES as readonly string[]).includes(l)) throw new Error(`unknown library ${l}`)

// Re-run ourselves on core 1 so every worker we fork inherits it; Redis gets core 0.
const canPin = hasTaskset() && os.cpus().length >= 2
if (canPin && process.env.BENCH_PINNED !== '1') {
  const args = [...process.execArgv, ...process.argv.slice(1)]
  const r = spawnSync('taskset', ['-c', '1', process.execPath, ...args], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_PINNED: '1' },
  })
  process.exit(r.status ?? 1)
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130))

const P = quick
  ? {
      seq: { rounds: 2, roundMs: 300 },
      conc: { rounds: 1, roundMs: 300 },
      warmupMs: 100,
      window: 1000,
      samples: 40,
      capMs: 8000,
      held: 1000,
      holdMs: 3000,
      waiters: {
        heldSettleMs: 500,
        // Attempts come every 400–600 ms: a shorter window rounds the rate by ±1 attempt per process.
        heldWindowMs: 2500,
        loopSettleMs: 300,
        loopWindowMs: 1500,
        expiryRounds: 1,
        expirySettleMs: 600,
        peerWindowMs: 1000,
        peers: false,
      },
      permits: {
        limit: 4,
        contenders: 32,
        csMs: 1,
        handoffRounds: 1,
        heldPerKey: 2,
        heldRounds: 1,
      },
    }
  : {
      // Many short interleaved rounds: a burst of outside load spoils few of them.
      seq: { rounds: 8, roundMs: 750 },
      conc: { rounds: 4, roundMs: 1000 },
      warmupMs: 500,
      window: 5000,
      samples: 400,
      capMs: 25_000,
      held: 10_000,
      holdMs: 15_000,
      waiters: {
        heldSettleMs: 1000,
        heldWindowMs: 5000,
        loopSettleMs: 500,
        loopWindowMs: 5000,
        expiryRounds: 3,
        expirySettleMs: 1000,
        peerWindowMs: 1500,
        peers: true,
      },
      permits: {
        limit: 4,
        contenders: 32,
        csMs: 1,
        // Interleaved rounds: the permit/mutex ratios come from the same stretch of time.
        handoffRounds: 4,
        heldPerKey: 2,
        heldRounds: 2,
      },
    }

const busyBefore = await busyShare()
const started = Date.now()
const redis = await startRedis(canPin)
const probe = new ServerProbe(redis.port)
await probe.connect()
const scriptCallsCounted = await probe.countsScriptCalls()
const pinning = canPin ? 'redis-server on core 0, Node on core 1 (taskset)' : 'none'
const machine = describeMachine(await probe.version(), pinning, busyBefore)
const log = (s: string) =>
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0)}s] ${s}\n`)
log(`redis-server pid ${redis.pid} on ${redis.url}; ${quick ? 'quick' : 'full'} run`)

const sections: Section[] = []
const data: Record<string, unknown> = { machine, quick, params: P, scriptCallsCounted }
const interference: Record<string, number> = {}
data.otherCpuCores = interference

/** Runs one scenario, files its section and data, and notes any outside CPU load meanwhile. */
async function scenario(
  name: (typeof SCENARIOS)[number],
  title: string,
  run: () => Promise<{ section: Section; results: unknown }>,
): Promise<void> {
  if (!only.has(name)) return
  log(title)
  await probe.flush()
  const watch = watchInterference(redis.pid)
  const { section, results } = await run()
  const other = watch()
  interference[name] = other
  const flag = other > 0.1 ? ' — **busy neighbour: treat these numbers with care**' : ''
  const note = `Other processes on the machine used ${fmt(other, 2)} cores on average meanwhile${flag}.`
  sections.push({ ...section, notes: [...section.notes, note] })
  data[name] = results
}

try {
  // The plain raw floor cannot wait, the pub/sub floor only matters for handoff latency.
  const throughputLibs = libs.filter((l) => l !== 'raw-pubsub')
  const contenders = libs.filter((l) => !FLOORS.includes(l))
  const handoffLibs = libs.filter((l) => l !== 'raw')
  const port = redis.port
  const warmupMs = P.warmupMs
  await scenario('uncontended', '1. uncontended', () =>
    runThroughput({ name: 'uncontended', port, libs: throughputLibs, concurrency: 1, ...P.seq, warmupMs }),
  )
  for (const [name, loops] of [
    ['concurrent-8', 8],
    ['concurrent', 64],
    ['concurrent-256', 256],
  ] as const)
    await scenario(name, `2. ${loops} concurrent loops`, () =>
      runThroughput({ name, port, libs: throughputLibs, concurrency: loops, ...P.conc, warmupMs }),
    )
  const configs = [8, 32].flatMap((n) => [0, 1].map((csMs) => ({ contenders: n, csMs })))
  await scenario('contention', '3. contention', () =>
    runContention(port, probe, contenders, configs, P.window),
  )
  await scenario('handoff', '4. handoff latency', () => runHandoff(port, handoffLibs, P.samples, P.capMs))
  await scenario('held', '5. held locks', () => runHeld(port, probe, contenders, P.held, P.holdMs, 3000))
  await scenario('waiters', '6. waiting crowds', () => runWaiters(port, probe, contenders, P.waiters))
  const K = P.permits
  await scenario('permits-uncontended', '7. uncontended permits', () =>
    runPermitsUncontended({ port, libs, limit: K.limit, ...P.seq, warmupMs }),
  )
  await scenario('permits-contention', '8. permit contention', () =>
    runPermitsContention(probe, {
      port,
      libs,
      contenders: K.contenders,
      csMs: K.csMs,
      limit: K.limit,
      windowMs: P.window,
    }),
  )
  await scenario('permits-handoff', '9. permit handoff', () =>
    runPermitsHandoff({
      port,
      libs,
      limit: K.limit,
      samples: P.samples,
      capMs: P.capMs,
      rounds: K.handoffRounds,
    }),
  )
  await scenario('permits-held', '10. held permits', () =>
    runPermitsHeld(probe, {
      port,
      libs,
      count: P.held,
      perKey: K.heldPerKey,
      holdMs: P.holdMs,
      lifetimeMs: 3000,
      rounds: K.heldRounds,
    }),
  )
  await scenario('permits-split', '11. semaphore on a split quorum', () =>
    runPermitsSplit(libs, canPin, 2, 2000),
  )
} finally {
  probe.close()
  await redis.stop()
}
machine.busyAfter = await busyShare()

const judged = verdicts(data)
data.verdicts = judged
const markdown = [
  `# async-redis-lock benchmark${quick ? ' (quick)' : ''}`,
  renderMachine(machine),
  '## Libraries and how they are driven',
  libs.map((l) => `- **${l}**: ${LIBRARY_NOTES[l]}`).join('\n'),
  '- Every library: its own ioredis client (RESP3, ioredis defaults), lease 2000 ms (3000 ms in scenarios 5 and 10). The raw floor has no waiting or extension, so it appears in scenarios 1, 2 and 7 only.',
  `- Counting: on this Redis, INFO \`total_commands_processed\` ${
    scriptCallsCounted ? 'DOES' : 'does NOT'
  } count calls made inside Lua scripts (checked at start: one EVAL with three redis.call). ${
    scriptCallsCounted
      ? 'So top-level requests are counted client-side instead (every command an ioredis client of the library sends, SUBSCRIBE etc. included): "client req".'
      : 'Top-level requests are still counted client-side for consistency: "client req".'
  } "Redis calls" = INFO commandstats delta, which includes script-internal calls.`,
  ...sections.map(renderSection),
  '## Targets for async-redis-lock',
  renderVerdicts(judged),
  `_Total bench time ${((Date.now() - started) / 1000).toFixed(0)} s._`,
].join('\n\n')

process.stdout.write(`${markdown}\n`)
const dir = fileURLToPath(new URL('./results/', import.meta.url))
mkdirSync(dir, { recursive: true })
// Smoke and filtered runs get their own names and never replace the last full results.
const partial = values.only !== undefined || values.libs !== undefined || values.tag !== undefined
const tag = values.tag === undefined ? '' : `-${values.tag}`
const stem = `${today()}-${machine.host}${tag}${quick ? '-quick' : ''}${partial ? '-partial' : ''}`
const json = JSON.stringify(data, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)
writeFileSync(`${dir}${stem}.md`, `${markdown}\n`)
writeFileSync(`${dir}${stem}.json`, `${json}\n`)
const full = !quick && !partial
if (full) writeFileSync(`${dir}latest.md`, `${markdown}\n`)
log(`wrote bench/results/${stem}.md and .json${full ? ' and latest.md' : ''}`)
