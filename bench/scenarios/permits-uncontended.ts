// Scenario 7 (issue 13): one caller, acquire + release of a semaphore permit on a fresh
// key each cycle, side by side with redis-semaphore's Semaphore, our shared hold and our
// mutex (whose row must not move), in interleaved rounds in one worker (scenario 1's loop).
import type { LibraryName } from '../adapters.js'
import { fmt, type Section, table } from '../report.js'
import { median } from '../stats.js'
import {
  floor,
  OURS,
  oursMutex,
  oursPermit,
  oursShared,
  PEER,
  peerPermit,
  perCommand,
  pick,
  roundRatio,
  rowOf,
  variantNotes,
} from './permits.js'
import { type LibThroughput, measureThroughput, type Round } from './throughput.js'

export interface PermitsUncontendedParams {
  readonly port: number
  readonly libs: readonly LibraryName[]
  readonly limit: number
  readonly rounds: number
  readonly roundMs: number
  readonly warmupMs: number
}

export interface PermitThroughput extends LibThroughput {
  /** Median over rounds of cycles/s ÷ redis-semaphore Semaphore's cycles/s in the same round. */
  ratioToPeer: number
  /** Per-command requests per cycle (median over rounds), client side and Redis side. */
  clientPerCycle: Record<string, number>
  serverPerCycle: Record<string, number>
}

export async function runPermitsUncontended(
  p: PermitsUncontendedParams,
): Promise<{ section: Section; results: PermitThroughput[] }> {
  const variants = pick(
    [oursPermit(p.limit), peerPermit(p.limit), oursShared, oursMutex, floor('raw')],
    p.libs,
  )
  const { results: measured, strays } = await measureThroughput({
    name: 'permits-uncontended',
    port: p.port,
    libs: [],
    variants,
    concurrency: 1,
    rounds: p.rounds,
    roundMs: p.roundMs,
    warmupMs: p.warmupMs,
  })
  const peer = rowOf(measured, PEER, 'semaphore')
  const results: PermitThroughput[] = measured.map((r) => ({
    ...r,
    ratioToPeer: peer && !r.error ? roundRatio(r.rounds, peer.rounds, (x) => x.cyclesPerSec) : Number.NaN,
    clientPerCycle: perCycleByCommand(r.rounds, (x) => x.clientByCommand),
    serverPerCycle: perCycleByCommand(r.rounds, (x) => x.serverByCommand),
  }))
  return { section: render(p, results, strays, variantNotes(variants)), results }
}

/** Median over rounds of each command's count per cycle. */
function perCycleByCommand(rounds: readonly Round[], f: (r: Round) => Record<string, number>) {
  const names = new Set(rounds.flatMap((r) => Object.keys(f(r))))
  const out: Record<string, number> = {}
  for (const name of names) out[name] = median(rounds.map((r) => (f(r)[name] ?? 0) / r.cycles))
  return out
}

function render(
  p: PermitsUncontendedParams,
  results: PermitThroughput[],
  strays: string[],
  notes: string,
): Section {
  const raw = rowOf(results, 'raw', 'exclusive')
  const mutex = rowOf(results, OURS, 'exclusive')
  const rows = results.map((r) =>
    r.error
      ? [r.label, `ERROR: ${r.error}`, ...Array(9).fill('')]
      : [
          r.label,
          fmt(r.cyclesPerSec, 0),
          fmt(r.ratioToPeer, 3),
          raw ? fmt(r.ratioToRaw, 3) : 'n/a',
          fmt(r.p50Ms, 3),
          fmt(r.p99Ms, 3),
          fmt(r.clientRequestsPerCycle, 2),
          fmt(r.serverCallsPerCycle, 2),
          fmt(r.nodeCpuUsPerCycle, 1),
          fmt(r.redisCpuUsPerCycle, 1),
          fmt(r.redisBytesPerCycle, 0),
        ],
  )
  const cost = results
    .filter((r) => !r.error)
    .map((r) => [r.label, perCommand(r.clientPerCycle, 1), perCommand(r.serverPerCycle, 1)])
  return {
    title: `7. Uncontended permits: sequential acquire + release of a \`limit: ${p.limit}\` permit, fresh key each cycle`,
    notes: [
      `${p.rounds} interleaved rounds × ${p.roundMs} ms per row after a ${p.warmupMs} ms warm-up (one worker, all rows); every value is the median over rounds; × = median over rounds of the ratio to that row's same round.`,
      `Rows: ${notes}. Lease 2000 ms for every row; nothing else changed from the defaults.`,
      'Latency = one acquire + release cycle. client req = requests the library sent (counted in ioredis); Redis calls = INFO commandstats delta, script-internal calls included.',
      ...(mutex && raw
        ? [
            `Our mutex in this run: ${fmt(mutex.ratioToRaw, 3)} × raw (scenario 1 checks ≥ 0.95 × raw; an uncontended mutex is still one \`SET NX PX\` and one release script: ${perCommand(mutex.clientPerCycle, 1)} per cycle).`,
          ]
        : []),
      ...(strays.length > 0 ? [`Unhandled rejections in the worker: ${strays.slice(0, 3).join('; ')}`] : []),
    ],
    tables: [
      table(
        [
          'row',
          'cycles/s',
          '× redis-semaphore Semaphore',
          '× raw',
          'p50 ms',
          'p99 ms',
          'client req/cycle',
          'Redis calls/cycle',
          'Node CPU µs/cycle',
          'Redis CPU µs/cycle',
          'Redis mem B/cycle',
        ],
        rows,
      ),
      `**Cost of one acquire + release cycle, per command**\n\n${table(
        ['row', 'client requests per cycle', 'Redis calls per cycle (script-internal included)'],
        cost,
      )}`,
    ],
  }
}
