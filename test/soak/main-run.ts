import type { Cell, WorkerSpec } from './cell.js'
import { type FaultKind, planFaults, runNemesis } from './nemesis.js'
import { deriveSeed, mulberry32 } from './prng.js'
import { runScenario, type ScenarioResult, type SoakContext } from './scenario.js'
import type { HoldSpec } from './variants.js'

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
 *   empty after more than a lease: Redlock's delayed restart) or one worker's link
 *   to one node at a time, plus holder pauses and kills. One node faulted at a time
 *   is inside the contract: no overlap at all, restarts included. Lost counter
 *   updates are only reported (holders are paused).
 * - S: shared and exclusive acquisitions of one key (readers and writers) under
 *   phase A's faults. Never an exclusive grant beside any other; shared grants do
 *   overlap (at least two at once, or the phase proved nothing); writers' counter
 *   updates are not lost and no reader sees the counter change under its hold.
 * - N: permits of a `limit: 3` semaphore on one key under phase A's faults plus
 *   holder pauses. Never more than 3 valid permits at once, and 3 at once is reached.
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
  /** Fault kinds dealt first, so this (short) phase is sure to see them. */
  ensure?: FaultKind[]
  /** Lock keys (default k1, k2, k3). */
  keys?: string[]
  /** How every worker holds its keys (default: exclusive). */
  hold?: HoldSpec
  /** Shared holders' counter reads must never see a write land under their hold. */
  requireNoTornReads?: boolean
  /** The phase must have had this many valid shared grants of a key at once. */
  minShared?: number
  /** The phase must have had this many valid permits of its semaphore at once. */
  minPermits?: number
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
  {
    name: 'S',
    title: 'shared + exclusive on one key',
    kinds: COMMON,
    requireNoLostUpdates: true,
    requireNoTornReads: true,
    keys: ['doc'],
    // Readers outnumber writers, as where a readers/writer lock is worth having;
    // writers still come often enough that writer preference is exercised.
    hold: { kind: 'rw', sharedShare: 0.7 },
    minShared: 2,
    loadMs: Number(process.env.SOAK_KINDS_MS ?? 12_000),
    // A killed reader's or writer's hold must free itself: one kill at least.
    ensure: ['worker-kill'],
  },
  {
    name: 'N',
    title: 'semaphore, limit 3, one key',
    kinds: [...COMMON, 'worker-pause'],
    requireNoLostUpdates: false,
    keys: ['jobs'],
    hold: { kind: 'semaphore', limit: 3 },
    minPermits: 3,
    loadMs: Number(process.env.SOAK_KINDS_MS ?? 12_000),
    weights: { 'worker-pause': 2 },
    // A killed and a paused permit holder must lose only their own permits.
    ensure: ['worker-kill', 'worker-pause'],
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
    spec.ensure,
  )
  const result = await runScenario(
    ctx,
    {
      run: spec.name,
      nodeCount: spec.nodeCount ?? 1,
      keys: spec.keys ?? ['k1', 'k2', 'k3'],
      // Two long holders (6 to 14 rounds, ~0.3 to 0.8 s: faults on them outlast the
      // lease, so losses happen) and three short ones (frequent handoffs).
      workers: Array.from({ length: WORKERS }, (_, i): WorkerSpec => {
        const rounds = i < 2 ? { minRounds: 6, maxRounds: 14 } : { maxRounds: 6 }
        return { variant: 'correct', ...rounds, ...(spec.hold ? { hold: spec.hold } : {}) }
      }),
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
