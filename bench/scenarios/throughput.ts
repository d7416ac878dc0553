// Scenarios 1 and 2: acquire+release cycles without contention, one loop on fresh keys
// or 64 concurrent loops on distinct keys. All libraries run in one worker, in
// interleaved rounds (A B C … A B C), and each metric is the median over rounds, so
// slow drift (CPU clocks, allocator state) does not favour whoever ran first.
import {
  createAdapter,
  type Hold,
  isPeer,
  type LibraryName,
  type LockAdapter,
  type Variant,
} from '../adapters.js'
import { errorText, finish, type Msg, startWorker, within } from '../child.js'
import { clientCounts, excludeFromCounting, installCounting, socketWriteCount } from '../counting.js'
import { ServerProbe, serverDelta } from '../redis.js'
import { fmt, type Section, table } from '../report.js'
import { diffCounts, median, percentile, sumCounts } from '../stats.js'
import type { WorkerIo } from '../worker.js'

export interface ThroughputParams {
  readonly name: string
  readonly port: number
  readonly libs: readonly LibraryName[]
  /** Rows that hold keys other than exclusively (issue 13); default: each of `libs`, exclusive. */
  readonly variants?: readonly Variant[]
  /** 1: one sequential loop on a fresh key per cycle; more: that many loops, one key each. */
  readonly concurrency: number
  readonly rounds: number
  readonly roundMs: number
  readonly warmupMs: number
}

export interface Round {
  cycles: number
  seconds: number
  cyclesPerSec: number
  p50Ms: number
  p99Ms: number
  serverCalls: number
  /** INFO commandstats delta per command, script-internal calls included. */
  serverByCommand: Record<string, number>
  clientRequests: number
  clientByCommand: Record<string, number>
  /** TCP writes this process made (every client, the library's own connections included). */
  socketWrites: number
  nodeCpuS: number
  redisCpuS: number
  redisMemoryBytes: number
}

export interface LibThroughput {
  lib: LibraryName
  /** Row name: the library, or the library and how it holds (issue 13 scenarios). */
  label: string
  hold: Hold
  error?: string
  rounds: Round[]
  cyclesPerSec: number
  p50Ms: number
  p99Ms: number
  serverCallsPerCycle: number
  clientRequestsPerCycle: number
  socketWritesPerCycle: number
  nodeCpuUsPerCycle: number
  redisCpuUsPerCycle: number
  /** Redis memory still in use after the round, per cycle (state a lock leaves behind). */
  redisBytesPerCycle: number
  /** Median over rounds of cycles/s ÷ the raw floor's cycles/s in the same round. */
  ratioToRaw: number
}

const MAX_SAMPLES = 2_000_000

export async function throughputWorker(task: Msg, io: WorkerIo): Promise<void> {
  const p = task.params as ThroughputParams
  installCounting()
  const probe = new ServerProbe(p.port)
  excludeFromCounting(probe.client)
  await probe.connect()
  const variants = variantsOf(p)
  const adapters = new Map<string, LockAdapter>()
  const errors = new Map<string, string>()
  const rounds = new Map<string, Round[]>()
  for (const v of variants) {
    try {
      adapters.set(
        v.label,
        await within(
          createAdapter(v.lib, { port: p.port, lifetimeMs: 2000, hold: v.hold }),
          10_000,
          'connect',
        ),
      )
      rounds.set(v.label, [])
    } catch (err) {
      errors.set(v.label, errorText(err))
    }
  }
  const samples = new Float64Array(MAX_SAMPLES)
  const once = async (lib: string, tag: string, ms: number, record: boolean) => {
    const adapter = adapters.get(lib)
    if (!adapter || errors.has(lib)) return
    try {
      await probe.flush() // fresh-key loops leave fence marks; every round starts from an empty db
      // A young-generation collection: the previous library's garbage is not collected
      // on this one's time. Not a full one: V8 then drops the optimized code of the
      // functions, so every round would start interpreted and recompile its hot path
      // while it is measured (each hot function was optimized once per round, and a
      // 750 ms round of 5,000-8,000 cycles lost 12-20 % of its time to 2-5 ms stalls;
      // the library with the most JavaScript per cycle loses most).
      globalThis.gc?.({ type: 'minor' })
      const s0 = await probe.snapshot()
      const c0 = clientCounts()
      const w0 = socketWriteCount()
      const cpu0 = process.cpuUsage()
      const { cycles, seconds } = await within(
        cycleLoops(adapter, lib, p, tag, ms, samples),
        ms + 10_000,
        'round',
      )
      const cpu = process.cpuUsage(cpu0)
      const byCommand = diffCounts(c0, clientCounts())
      const socketWrites = socketWriteCount() - w0
      const server = serverDelta(s0, await probe.snapshot())
      if (!record) return
      const lat = samples.subarray(0, Math.min(cycles, MAX_SAMPLES))
      rounds.get(lib)?.push({
        cycles,
        seconds,
        cyclesPerSec: cycles / seconds,
        p50Ms: percentile(lat, 50),
        p99Ms: percentile(lat, 99),
        serverCalls: server.calls,
        serverByCommand: server.byCommand,
        clientRequests: sumCounts(byCommand),
        clientByCommand: byCommand,
        socketWrites,
        nodeCpuS: (cpu.user + cpu.system) / 1e6,
        redisCpuS: server.cpuSeconds,
        redisMemoryBytes: server.memoryBytes,
      })
    } catch (err) {
      errors.set(lib, errorText(err))
    }
  }
  globalThis.gc?.() // once, before anything is measured
  for (const v of variants) await once(v.label, 'warm', p.warmupMs, false)
  for (let r = 0; r < p.rounds; r++) for (const v of variants) await once(v.label, `r${r}`, p.roundMs, true)

  const results: LibThroughput[] = variants.map((v) =>
    summarize(v, rounds.get(v.label) ?? [], errors.get(v.label)),
  )
  for (const a of adapters.values()) await within(a.close(), 5000, 'close').catch(() => {})
  probe.close()
  await io.send({ type: 'result', results, strays: io.strays })
}

/** Runs acquire+release cycles until `ms` elapse; each cycle's latency goes into `samples`. */
async function cycleLoops(
  adapter: LockAdapter,
  label: string,
  p: ThroughputParams,
  tag: string,
  ms: number,
  samples: Float64Array,
): Promise<{ cycles: number; seconds: number }> {
  const start = performance.now()
  const deadline = start + ms
  let cycles = 0
  const loop = async (id: number) => {
    let i = 0
    while (performance.now() < deadline) {
      // Scenario 1 takes a fresh key every cycle; scenario 2 one key per loop.
      const key = p.concurrency === 1 ? `t:${label}:${tag}:${i++}` : `t:${label}:${id}`
      const t0 = performance.now()
      const held = await adapter.acquire(key)
      await adapter.release(held)
      const n = cycles++
      if (n < MAX_SAMPLES) samples[n] = performance.now() - t0
    }
  }
  await Promise.all(Array.from({ length: p.concurrency }, (_, id) => loop(id)))
  return { cycles, seconds: (performance.now() - start) / 1000 }
}

/** The rows a throughput run measures: its variants, or each library holding exclusively. */
function variantsOf(p: ThroughputParams): readonly Variant[] {
  return p.variants ?? p.libs.map((lib) => ({ label: lib, lib, hold: { kind: 'exclusive' } as const }))
}

function summarize(v: Variant, rounds: Round[], error: string | undefined): LibThroughput {
  const perCycle = (f: (r: Round) => number) => median(rounds.map((r) => f(r) / r.cycles))
  return {
    lib: v.lib,
    label: v.label,
    hold: v.hold,
    ...(error === undefined ? {} : { error }),
    rounds,
    cyclesPerSec: median(rounds.map((r) => r.cyclesPerSec)),
    p50Ms: median(rounds.map((r) => r.p50Ms)),
    p99Ms: median(rounds.map((r) => r.p99Ms)),
    serverCallsPerCycle: perCycle((r) => r.serverCalls),
    clientRequestsPerCycle: perCycle((r) => r.clientRequests),
    socketWritesPerCycle: perCycle((r) => r.socketWrites ?? Number.NaN),
    nodeCpuUsPerCycle: perCycle((r) => r.nodeCpuS * 1e6),
    redisCpuUsPerCycle: perCycle((r) => r.redisCpuS * 1e6),
    redisBytesPerCycle: perCycle((r) => r.redisMemoryBytes),
    ratioToRaw: Number.NaN,
  }
}

export async function runThroughput(
  p: ThroughputParams,
): Promise<{ section: Section; results: LibThroughput[] }> {
  const { results, strays } = await measureThroughput(p)
  return { section: render(p, results, strays), results }
}

/** Runs the rounds in one worker; ratios to the raw floor per round when it is among the rows. */
export async function measureThroughput(
  p: ThroughputParams,
): Promise<{ results: LibThroughput[]; strays: string[] }> {
  const variants = variantsOf(p)
  const expectedMs = (p.rounds * p.roundMs + p.warmupMs) * variants.length
  const worker = startWorker({ type: 'throughput', params: p }, expectedMs * 2 + 60_000)
  let results: LibThroughput[]
  let strays: string[] = []
  try {
    const m = await worker.mailbox.next('result', expectedMs * 2 + 60_000)
    results = m.results as LibThroughput[]
    strays = m.strays as string[]
  } catch (err) {
    results = variants.map((v) => ({ ...summarize(v, [], errorText(err)) }))
  }
  await finish(worker)
  // Ratios per round, then the median: a burst of outside load hits both sides of a
  // round's ratio alike far more often than it hits the same round of every library.
  const raw = results.find((r) => r.lib === 'raw' && !r.error)
  for (const r of results) {
    if (!raw || r.error) continue
    const ratios = r.rounds.flatMap((round, i) => {
      const base = raw.rounds[i]?.cyclesPerSec
      return base ? [round.cyclesPerSec / base] : []
    })
    r.ratioToRaw = median(ratios)
  }
  return { results, strays }
}

function render(p: ThroughputParams, results: LibThroughput[], strays: string[]): Section {
  const raw = results.find((r) => r.lib === 'raw' && !r.error)
  const ours = results.find((r) => r.lib === 'async-redis-lock' && !r.error)
  const best = results
    .filter((r) => isPeer(r.lib) && !r.error)
    .reduce<LibThroughput | undefined>((b, r) => (b && b.cyclesPerSec >= r.cyclesPerSec ? b : r), undefined)
  const versus =
    ours && best
      ? [
          `async-redis-lock = ${fmt(ours.cyclesPerSec / best.cyclesPerSec, 3)} × the best peer (${best.lib}, ${fmt(best.cyclesPerSec, 0)} cycles/s).`,
        ]
      : []
  const rows = results.map((r) =>
    r.error
      ? [r.lib, `ERROR: ${r.error}`, '', '', '', '', '', '', '', '', '', '']
      : [
          r.lib,
          fmt(r.cyclesPerSec, 0),
          raw ? fmt(r.ratioToRaw, 3) : 'n/a',
          fmt(r.p50Ms, 3),
          fmt(r.p99Ms, 3),
          fmt(r.clientRequestsPerCycle, 2),
          fmt(r.socketWritesPerCycle, 2),
          fmt(r.serverCallsPerCycle, 2),
          fmt(r.nodeCpuUsPerCycle, 1),
          raw ? fmt(r.nodeCpuUsPerCycle / raw.nodeCpuUsPerCycle, 2) : 'n/a',
          fmt(r.redisCpuUsPerCycle, 1),
          fmt(r.redisBytesPerCycle, 0),
        ],
  )
  const seq = p.concurrency === 1
  return {
    title: seq
      ? '1. Uncontended: sequential acquire + release, fresh key each cycle'
      : `2. ${p.concurrency} concurrent loops on distinct keys (one process)`,
    notes: [
      `${p.rounds} interleaved rounds × ${p.roundMs} ms per library after a ${p.warmupMs} ms warm-up; every value is the median over rounds; × raw = median over rounds of the ratio to the raw floor's same round. Before each round a young-generation GC (a full GC only once, before the warm-up: a full one discards V8's optimized code, and every round then measured recompilation).`,
      seq
        ? 'Latency = one acquire + release cycle.'
        : `Each loop reuses its own key; latency = one cycle of one loop with ${p.concurrency} in flight.`,
      'client req = requests the library sent (counted in ioredis); writes = TCP write calls the process made (one per `_write`/`_writev`, all connections); Redis calls = INFO commandstats delta, script-internal calls included.',
      'Redis mem B/cycle = used_memory growth over the round / cycles (keys a lock leaves behind, e.g. fence marks).',
      ...versus,
      ...(strays.length > 0 ? [`Unhandled rejections in the worker: ${strays.slice(0, 3).join('; ')}`] : []),
    ],
    tables: [
      table(
        [
          'library',
          'cycles/s',
          '× raw',
          'p50 ms',
          'p99 ms',
          'client req/cycle',
          'writes/cycle',
          'Redis calls/cycle',
          'Node CPU µs/cycle',
          'CPU × raw',
          'Redis CPU µs/cycle',
          'Redis mem B/cycle',
        ],
        rows,
      ),
    ],
  }
}
