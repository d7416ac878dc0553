import type { Cell } from './cell.js'
import { type FaultKind, planFaults, runNemesis } from './nemesis.js'
import { deriveSeed, mulberry32 } from './prng.js'
import { runScenario, type ScenarioResult, type SoakContext } from './scenario.js'

/**
 * The main run, in phases so each has a clear contract:
 *
 * - A: every fault except holder pauses. The lock must keep mutual exclusion and the
 *   non-atomic counter must lose no update.
 * - B: the same plus holders paused longer than their lease (SIGSTOP, a GC pause) and
 *   one Redis restart without persistence. A paused holder may act on a lock it
 *   lost, which the fenced store must reject; lost counter updates are expected
 *   and only reported; overlaps across the restart are reported apart.
 * - Q: a Redlock quorum of 3 independent masters, each worker reaching each one
 *   through its own proxy; faults hit one node (paused, or killed and restarted
 *   empty) or one worker's link to one node at a time, plus holder pauses and kills.
 *   One node faulted at a time is inside the contract: no overlap at all, restarts
 *   included. Lost counter updates are only reported (holders are paused).
 */
export interface PhaseSpec {
  name: string
  title: string
  kinds: FaultKind[]
  requireNoLostUpdates: boolean
  /** Lock nodes: 1 by default, 3 for the quorum phase. */
  nodeCount?: number
  lifetimeMs?: number
  /** Load of this phase, when not the main-run default. */
  loadMs?: number
  /** Cards per fault kind in the nemesis deck, where not the default. */
  weights?: Partial<Record<FaultKind, number>>
}

const COMMON: FaultKind[] = [
  'redis-pause',
  'worker-kill',
  'proxy-delay',
  'proxy-blackhole',
  'drop-replies',
  'reset-after-request',
  'pubsub-kill',
]

export const PHASES: PhaseSpec[] = [
  { name: 'A', title: 'faults, no holder pauses', kinds: COMMON, requireNoLostUpdates: true },
  {
    name: 'B',
    title: 'faults + holder pauses + restart',
    kinds: [...COMMON, 'worker-pause', 'redis-restart'],
    requireNoLostUpdates: false,
  },
  {
    name: 'Q',
    title: 'quorum, one node faulted at a time',
    kinds: [
      'node-pause',
      'node-restart',
      'worker-kill',
      'worker-pause',
      'proxy-delay',
      'proxy-blackhole',
      'drop-replies',
      'reset-after-request',
      'pubsub-kill',
    ],
    requireNoLostUpdates: false,
    nodeCount: 3,
    // A little longer than the main run's: every operation is a parallel round trip
    // to three nodes, each bounded by a tenth of the lease.
    lifetimeMs: 400,
    loadMs: Number(process.env.SOAK_QUORUM_MS ?? 20_000),
    // A shorter phase: fewer holder pauses leave room for the node faults it is about.
    weights: { 'worker-pause': 1 },
  },
]

export const LIFETIME_MS = 300
const WORKERS = 5

export interface PhaseResult {
  spec: PhaseSpec
  result: ScenarioResult
  plan: ReturnType<typeof planFaults>
}

export async function runPhase(ctx: SoakContext, spec: PhaseSpec, loadMs: number): Promise<PhaseResult> {
  const lifetimeMs = spec.lifetimeMs ?? LIFETIME_MS
  const plan = planFaults(
    mulberry32(deriveSeed(ctx.seed, `nemesis:${spec.name}`)),
    spec.kinds,
    loadMs,
    lifetimeMs,
    spec.weights,
  )
  const result = await runScenario(
    ctx,
    {
      run: spec.name,
      nodeCount: spec.nodeCount ?? 1,
      keys: ['k1', 'k2', 'k3'],
      // Two long holders (6 to 14 rounds, ~0.3 to 0.8 s: faults on them outlast the
      // lease, so losses happen) and three short ones (frequent handoffs).
      workers: Array.from({ length: WORKERS }, (_, i) =>
        i < 2
          ? { variant: 'correct' as const, minRounds: 6, maxRounds: 14 }
          : { variant: 'correct' as const, maxRounds: 6 },
      ),
      lifetimeMs,
      extendIntervalMs: 100,
      retryTimeoutMs: 3000,
      maxRounds: 8,
      roundGapMs: 80,
      thinkMs: 30,
      durationMs: loadMs,
    },
    (cell: Cell) => runNemesis(cell, plan),
  )
  return { spec, result, plan }
}
