/**
 * `npm run soak`: the bounded soak of issue 4. Prints the seed first and last;
 * `SEED=<n> npm run soak` replays the same fault plan. Exits 0 only if the main
 * run shows no violation and no lost update where none is allowed, and every
 * negative control is caught while our variant stays clean under the same faults.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { startRedis } from '../helpers/redis-server.js'
import { runControls } from './controls.js'
import { monoMs } from './log.js'
import { PHASES, type PhaseResult, runPhase } from './main-run.js'
import { seedFromEnv } from './prng.js'
import { printReport, type SoakReport, writeReport } from './report.js'
import type { SoakContext } from './scenario.js'

/** Load per main-run phase (A and B); the quorum phase Q has its own, shorter one. */
const PHASE_LOAD_MS = Number(process.env.SOAK_PHASE_MS ?? 27_000)
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url))
/**
 * While working on the harness: `SOAK_ONLY=S,N,sem-over-limit` runs only those phases
 * and controls. Such a run is marked partial and never passes (nor overwrites the results).
 */
const ONLY = process.env.SOAK_ONLY?.split(',').filter((x) => x !== '')
const selected = (name: string): boolean => ONLY === undefined || ONLY.includes(name)

function failures(phases: readonly PhaseResult[], report: Pick<SoakReport, 'controls'>): string[] {
  const out: string[] = []
  for (const { spec, result } of phases) {
    const c = result.check
    if (c.overlaps > 0) {
      // Enough to start from when only CI's output is left (the logs stay on that machine).
      const seen = c.examples
        .slice(0, 3)
        .map(
          (o) =>
            `${o.key}: worker ${o.a.w} ${o.a.kind} ${o.a.start}-${o.a.end} ms and worker ${o.b.w} ${o.b.kind} ${o.b.start}-${o.b.end} ms (${o.overlapMs} ms)`,
        )
      out.push(`phase ${spec.name}: ${c.overlaps} overlapping valid grants; ${seen.join('; ')}`)
    }
    if (c.overLimit > 0) {
      out.push(`phase ${spec.name}: ${c.overLimit} semaphore grants beyond the limit of ${c.semaphoreLimit}`)
    }
    if (spec.requireNoTornReads && c.tornReads > 0) {
      out.push(`phase ${spec.name}: ${c.tornReads} shared grants saw the counter change under their hold`)
    }
    // Fences are built on the server's clock: on one Redis they increase across
    // restarts too. On a quorum they are the granting majority's largest, reported only.
    if ((spec.nodeCount ?? 1) === 1 && c.fenceOrder.violations > 0) {
      out.push(`phase ${spec.name}: ${c.fenceOrder.violations} pairs of grants with fences out of order`)
    }
    if (spec.minShared !== undefined && c.maxShared < spec.minShared) {
      out.push(
        `phase ${spec.name}: at most ${c.maxShared} shared holders at once (needs ${spec.minShared}): the phase proved nothing about shared holds`,
      )
    }
    if (spec.minPermits !== undefined && c.maxPermits < spec.minPermits) {
      out.push(
        `phase ${spec.name}: at most ${c.maxPermits} permits at once (needs ${spec.minPermits}): the phase never reached the limit`,
      )
    }
    if (c.deadOnArrival > 0)
      out.push(`phase ${spec.name}: ${c.deadOnArrival} grants returned already expired`)
    if (spec.requireNoLostUpdates && c.counter.lostUpdates > 0) {
      out.push(`phase ${spec.name}: ${c.counter.lostUpdates} lost counter updates`)
    }
    if (c.grants === 0) out.push(`phase ${spec.name}: no grant at all; the soak measured nothing`)
    for (const e of result.harnessErrors) out.push(`harness: ${e}`)
  }
  for (const ctl of report.controls) {
    if (!ctl.caught) out.push(`control ${ctl.name}: NOT CAUGHT`)
    if (!ctl.correctClean)
      out.push(`control ${ctl.name}: our variant showed violations under the same faults`)
    for (const e of [...ctl.broken.harnessErrors, ...ctl.correct.harnessErrors]) out.push(`harness: ${e}`)
  }
  return out
}

async function main(): Promise<number> {
  const began = monoMs()
  const seed = seedFromEnv()
  const command = `SEED=${seed} npm run soak`
  console.log(`soak seed ${seed} (replay: ${command})`)
  const logDir = mkdtempSync(path.join(os.tmpdir(), `async-redis-lock-soak-${seed}-`))
  // The store is never faulted: what it holds at the end is the ground truth.
  const storeServer = await startRedis()
  const store = new Redis(storeServer.url)
  const ctx: SoakContext = { seed, logDir, store, storeUrl: storeServer.url }
  let report: SoakReport
  try {
    const phases: PhaseResult[] = []
    for (const spec of PHASES.filter((p) => selected(p.name))) {
      // SOAK_PHASE_MS shortens every phase, the quorum one included.
      const loadMs = Math.min(spec.loadMs ?? PHASE_LOAD_MS, PHASE_LOAD_MS)
      console.log(`phase ${spec.name} (${spec.title}): ${loadMs / 1000} s of load`)
      phases.push(await runPhase(ctx, spec, loadMs))
    }
    console.log('negative controls')
    const controls = await runControls(ctx, selected)
    const failed = failures(phases, { controls })
    if (ONLY !== undefined) failed.push(`partial run (SOAK_ONLY=${ONLY.join(',')})`)
    report = {
      seed,
      command,
      passed: failed.length === 0,
      failures: failed,
      wallSeconds: (monoMs() - began) / 1000,
      logDir,
      phases,
      controls,
    }
  } finally {
    store.disconnect()
    await storeServer.stop()
  }
  printReport(report)
  writeReport(report, ONLY === undefined ? RESULTS_DIR : path.join(logDir, 'results'))
  for (const f of report.failures) console.log(`FAIL: ${f}`)
  if (report.passed && process.env.SOAK_KEEP_LOGS !== '1') rmSync(logDir, { recursive: true, force: true })
  else console.log(`logs kept in ${logDir}`)
  console.log(
    `soak ${report.passed ? 'PASSED' : 'FAILED'} in ${report.wallSeconds.toFixed(1)} s; seed ${seed} (replay: ${command})`,
  )
  return report.passed ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err)
    console.log('soak FAILED: harness error')
    process.exit(2)
  },
)
