import type { Cell } from './cell.js'
import { type FaultKind, planFaults, runNemesis } from './nemesis.js'
import { deriveSeed, mulberry32 } from './prng.js'
import { runScenario, type ScenarioResult, type SoakContext } from './scenario.js'

/**
 * The main run, in two phases so each has a clear contract:
 *
 * - A: every fault except holder pauses. The lock must keep mutual exclusion and the
 *   non-atomic counter must lose no update.
 * - B: the same plus holders paused longer than their lease (SIGSTOP, a GC pause) and
 *   one Redis restart without persistence. A paused holder may act on a lock it
 *   lost, which the fenced store must reject; lost counter updates are expected
 *   and only reported; overlaps across the restart are reported apart.
 */
export interface PhaseSpec {
  name: string
  title: string
  kinds: FaultKind[]
  requireNoLostUpdates: boolean
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
]

export const LIFETIME_MS = 300
const WORKERS = 5

export interface PhaseResult {
  spec: PhaseSpec
  result: ScenarioResult
  plan: ReturnType<typeof planFaults>
}

export async function runPhase(ctx: SoakContext, spec: PhaseSpec, loadMs: number): Promise<PhaseResult> {
  const plan = planFaults(
    mulberry32(deriveSeed(ctx.seed, `nemesis:${spec.name}`)),
    spec.kinds,
    loadMs,
    LIFETIME_MS,
  )
  const result = await runScenario(
    ctx,
    {
      run: spec.name,
      keys: ['k1', 'k2', 'k3'],
      // Two long holders (6 to 14 rounds, ~0.3 to 0.8 s: faults on them outlast the
      // lease, so losses happen) and three short ones (frequent handoffs).
      workers: Array.from({ length: WORKERS }, (_, i) =>
        i < 2
          ? { variant: 'correct' as const, minRounds: 6, maxRounds: 14 }
          : { variant: 'correct' as const, maxRounds: 6 },
      ),
      lifetimeMs: LIFETIME_MS,
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
