// Scenario 9 (issue 13): permit handoff latency. The holder process holds every permit
// of a `limit` semaphore (limit − 1 kept for the whole run, one handed over per
// sample), a waiter in another process blocks on the key, the holder releases one
// permit: latency = the waiter's acquire resolving − just before that release().
// Scenario 4's holder/waiter machinery; our mutex's handoff runs in the same run, in
// interleaved rounds, since the target is relative to it.
import type { LibraryName } from '../adapters.js'
import { errorText } from '../child.js'
import type { Hold } from '../lock-adapter.js'
import { fmt, type Section, table } from '../report.js'
import { latencyStats, measureHandoff } from './handoff.js'
import {
  floor,
  OURS,
  oursMutex,
  oursPermit,
  PEER,
  peerPermit,
  pick,
  roundRatio,
  rowOf,
  variantNotes,
} from './permits.js'

export interface PermitsHandoffParams {
  readonly port: number
  readonly libs: readonly LibraryName[]
  readonly limit: number
  /** Target samples per row over all rounds. */
  readonly samples: number
  /** At most this long per row over all rounds. */
  readonly capMs: number
  readonly rounds: number
}

export interface PermitHandoffRound {
  samples: number
  pairs: number
  p50Ms: number
  p99Ms: number
}

export interface PermitHandoffResult {
  lib: LibraryName
  label: string
  hold: Hold
  error?: string
  rounds: PermitHandoffRound[]
  samples: number
  p50Ms: number
  p99Ms: number
  meanMs: number
  maxMs: number
  early: number
  /** Median over rounds of this row's p50 ÷ our mutex's p50 in the same round. */
  p50ToMutex: number
}

export async function runPermitsHandoff(
  p: PermitsHandoffParams,
): Promise<{ section: Section; results: PermitHandoffResult[] }> {
  const variants = pick([oursPermit(p.limit), oursMutex, peerPermit(p.limit), floor('raw-pubsub')], p.libs)
  const latencies = new Map<string, number[]>()
  const rounds = new Map<string, PermitHandoffRound[]>()
  const errors = new Map<string, string>()
  const earlyBy = new Map<string, number>()
  for (const v of variants) {
    latencies.set(v.label, [])
    rounds.set(v.label, [])
  }
  const perRound = Math.ceil(p.samples / p.rounds)
  const capPerRound = Math.ceil(p.capMs / p.rounds)
  for (let r = 0; r < p.rounds; r++) {
    for (const [i, v] of variants.entries()) {
      if (errors.has(v.label)) continue
      try {
        const res = await measureHandoff(p.port, v.lib, perRound, capPerRound, {
          hold: v.hold,
          fill: v.hold.kind === 'semaphore' ? v.hold.limit - 1 : 0,
          prefix: `ph:${i}:r${r}`,
        })
        latencies.get(v.label)?.push(...res.latencies)
        rounds
          .get(v.label)
          ?.push({ samples: res.samples, pairs: res.pairs, p50Ms: res.p50Ms, p99Ms: res.p99Ms })
        earlyBy.set(v.label, (earlyBy.get(v.label) ?? 0) + res.early)
      } catch (err) {
        errors.set(v.label, errorText(err))
      }
    }
  }
  const mutexRounds = rounds.get(oursMutex.label) ?? []
  const results: PermitHandoffResult[] = variants.map((v) => {
    const lat = latencies.get(v.label) ?? []
    const error = errors.get(v.label)
    const rs = rounds.get(v.label) ?? []
    return {
      lib: v.lib,
      label: v.label,
      hold: v.hold,
      ...(error === undefined ? {} : { error }),
      rounds: rs,
      ...latencyStats(lat),
      early: earlyBy.get(v.label) ?? 0,
      p50ToMutex: error === undefined ? roundRatio(rs, mutexRounds, (x) => x.p50Ms) : Number.NaN,
    }
  })
  return { section: render(p, results, variantNotes(variants)), results }
}

function render(p: PermitsHandoffParams, results: PermitHandoffResult[], notes: string): Section {
  const mutex = rowOf(results, OURS, 'exclusive')
  const peer = rowOf(results, PEER, 'semaphore')
  const rows = results.map((r) =>
    r.error
      ? [r.label, `ERROR: ${r.error}`, ...Array(8).fill('')]
      : [
          r.label,
          `${r.samples} (${r.rounds.map((x) => x.pairs).join('/')})`,
          fmt(r.p50Ms, 3),
          fmt(r.p99Ms, 3),
          fmt(r.meanMs, 2),
          fmt(r.maxMs, 2),
          mutex ? `${fmt(r.p50Ms / mutex.p50Ms, 3)} (${fmt(r.p50ToMutex, 3)})` : 'n/a',
          peer ? fmt(r.p50Ms / peer.p50Ms, 3) : 'n/a',
          String(r.early),
        ],
  )
  return {
    title: `9. Permit handoff latency: one of ${p.limit} permits released in one process → blocked waiter in another acquires`,
    notes: [
      `The holder process keeps ${p.limit - 1} permits of the key for the whole run and takes the ${p.limit}th before each sample, so the waiter blocks; it then releases that one permit. Mutex and floor rows hand over the whole key, as in scenario 4.`,
      `${p.rounds} interleaved rounds (every row once per round, fresh keys and worker processes each round), ≈ ${Math.ceil(p.samples / p.rounds)} samples per row per round, at most ${Math.ceil(p.capMs / p.rounds)} ms per row per round; percentiles over all samples of a row.`,
      'As in scenario 4: the release comes 10–60 ms (one pair) or 10–110 ms (4 pairs side by side, for rows whose first 10 handoffs have a median ≥ 20 ms) after the waiter called acquire; latency = waiter acquire resolved − holder just before release(), on the shared monotonic clock; no IPC during a handoff.',
      'p50 × our mutex = pooled p50 ÷ our mutex’s pooled p50 (in brackets: median over rounds of the same ratio per round). early = waiter resolved before the release started (must be 0).',
      `Rows: ${notes}; waiting budgets 30 s (retry delays at default).`,
    ],
    tables: [
      table(
        [
          'row',
          'samples (pairs per round)',
          'p50 ms',
          'p99 ms',
          'mean ms',
          'max ms',
          'p50 × our mutex',
          'p50 × redis-semaphore',
          'early',
        ],
        rows,
      ),
    ],
  }
}
