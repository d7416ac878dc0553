import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { killQuietly } from '../helpers/cleanup.js'
import type { Cell, Slot, WorkerSpec } from './cell.js'
import type { CheckResult } from './checker.js'
import { monoMs } from './log.js'
import { runScenario, type ScenarioOptions, type ScenarioResult, type SoakContext } from './scenario.js'
import { type HoldSpec, internalsFor, type Variant } from './variants.js'

/**
 * Negative controls: each runs a deliberately broken variant under the fault it
 * cannot survive, and then our correct variant under exactly the same driver. The
 * checker must flag the first (else the soak fails: a checker that cannot tell a
 * broken lock from ours proves nothing) and must find nothing in the second.
 */

const LIFETIME_MS = 300
const CONTROL_MS = 6_000
/** Load of the shared/semaphore controls: their defects need contention, not faults. */
const KIND_CONTROL_MS = Number(process.env.SOAK_KIND_CONTROL_MS ?? 3_000)
const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'

export interface ControlOutcome {
  name: string
  broken: ScenarioResult
  correct: ScenarioResult
  caught: boolean
  correctClean: boolean
  how: string
}

const base = (run: string, workers: WorkerSpec[]): ScenarioOptions => ({
  run,
  keys: ['k'],
  workers,
  lifetimeMs: LIFETIME_MS,
  extendIntervalMs: 100,
  retryTimeoutMs: 3000,
  maxRounds: 8,
  roundGapMs: 80,
  thinkMs: 20,
  durationMs: CONTROL_MS,
})

/** Waits (bounded) until some worker, or the given one, holds the key; polls its log. */
async function waitForHolder(cell: Cell, only?: Slot, timeoutMs = 1500): Promise<Slot | undefined> {
  const until = monoMs() + timeoutMs
  while (monoMs() < until) {
    const holders = cell.holders().filter((s) => only === undefined || s === only)
    if (holders[0]) return holders[0]
    await sleep(5)
  }
  return undefined
}

/** Runs `step` repeatedly until shortly before the load window closes. */
async function repeat(cell: Cell, reserveMs: number, step: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; monoMs() < cell.endAt - reserveMs; i++) await step(i)
}

/**
 * Control 1: release by plain DEL. Holders lose their lease while paused (SIGSTOP,
 * a GC pause) or partitioned (blackhole); their late release then deletes whoever
 * holds the key now, and a third worker walks in beside that holder.
 */
async function drivePlainDel(cell: Cell): Promise<void> {
  await repeat(cell, 1200, async (i) => {
    const holder = await waitForHolder(cell)
    if (!holder) return
    const ms = Math.round(1.4 * LIFETIME_MS)
    const pid = holder.worker.pid
    if (i % 2 === 0) {
      holder.paused = true
      cell.nemesisLog.write('fault-start', { kind: 'worker-pause', planned: i, w: holder.id, pid })
      killQuietly(pid, 'SIGSTOP')
      await sleep(ms)
      killQuietly(pid, 'SIGCONT')
      holder.paused = false
      cell.nemesisLog.write('fault-end', { kind: 'worker-pause', planned: i, w: holder.id, pid })
    } else {
      cell.nemesisLog.write('fault-start', { kind: 'proxy-blackhole', planned: i, w: holder.id })
      holder.proxy.setMode({ kind: 'blackhole' })
      await sleep(ms)
      holder.proxy.setMode({ kind: 'pass' })
      holder.proxy.resetAll()
      cell.nemesisLog.write('fault-end', { kind: 'proxy-blackhole', planned: i })
    }
    await sleep(300)
  })
}

/**
 * Control 2: deadlines on the wall clock. Worker 0 runs under libfaketime (its
 * monotonic clock untouched); while it holds the lock its wall clock steps back an
 * hour and its link to Redis goes dark for 2.5 leases. A wall-clock lock keeps
 * believing it holds; ours loses the lock at its monotonic deadline.
 */
function driveClockJump(timeFile: string) {
  return async (cell: Cell): Promise<void> => {
    const w0 = cell.slots[0] as Slot
    await repeat(cell, 1500, async (i) => {
      const holder = await waitForHolder(cell, w0)
      if (!holder) return
      writeFileSync(timeFile, '-1h\n')
      cell.nemesisLog.write('fault-start', { kind: 'clock-jump', planned: i, w: 0, jump: '-1h' })
      w0.proxy.setMode({ kind: 'blackhole' })
      await sleep(Math.round(2.5 * LIFETIME_MS))
      w0.proxy.setMode({ kind: 'pass' })
      w0.proxy.resetAll()
      // Back to the real time: a forward step, harmless for both variants.
      writeFileSync(timeFile, '+0\n')
      cell.nemesisLog.write('fault-end', { kind: 'clock-jump', planned: i })
      await sleep(400)
    })
  }
}

/**
 * Control 3: no validity check after a slow acquire. Worker 0 reaches Redis through
 * a slow proxy and stalls its event loop for two leases whenever an acquire reply
 * says "acquired" (worker.ts), so the reply is processed after the lease ran out.
 * First, for 1.5 s, the proxy delay alone exceeds the lease: that is caught by the
 * acquire timeout (= the lease's validity) for both variants, before any check.
 */
async function driveSlowAcquire(cell: Cell): Promise<void> {
  const w0 = cell.slots[0] as Slot
  cell.nemesisLog.write('fault-start', { kind: 'proxy-delay', planned: 0, w: 0, delayMs: 200 })
  w0.proxy.setMode({ kind: 'delay', ms: 200 })
  await sleep(1500)
  cell.nemesisLog.write('fault-end', { kind: 'proxy-delay', planned: 0 })
  cell.nemesisLog.write('fault-start', { kind: 'proxy-delay', planned: 1, w: 0, delayMs: 50 })
  w0.proxy.setMode({ kind: 'delay', ms: 50 })
  await sleep(Math.max(0, cell.endAt - monoMs()))
  cell.nemesisLog.write('fault-end', { kind: 'proxy-delay', planned: 1 })
}

/** Control 3's first segment: what a proxy delay above the lease does on its own. */
function slowProxyNote(r: ScenarioResult): string {
  const seg = r.history.faults.find((f) => f.kind === 'proxy-delay')
  if (!seg) return ''
  const inSeg = (t: number): boolean => t >= seg.start && t <= seg.end
  const grants = r.history.grants.filter((g) => g.w === 0 && inSeg(g.start)).length
  const failed = r.history.attempts.filter(
    (a) => a.w === 0 && inSeg(a.endAt) && a.code === 'ERR_LOCK_BACKEND',
  ).length
  return `; while worker 0's proxy delay exceeded the lease (${r.run}): ${grants} grants, ${failed} acquire calls failed with ERR_LOCK_BACKEND (the attempt timeout is at most the lease's validity, so such a late reply never reaches the validity check; a timed-out attempt is retried within retryTimeoutMs, so the call may outlast the segment instead of failing)`
}

/** Any violation the checker knows: what the mutex controls must produce. */
const anyViolation = (b: CheckResult): boolean =>
  b.overlaps + b.deadOnArrival + b.counter.lostUpdates + b.overLimit + b.tornReads > 0

/** What a run held at most at once, for the controls of shared locks and semaphores. */
function heldNote(r: ScenarioResult): string {
  const c = r.check
  const parts: string[] = []
  if (c.maxShared > 0) parts.push(`at most ${c.maxShared} shared holders at once`)
  if (c.semaphoreLimit !== null)
    parts.push(`at most ${c.maxPermits} permits at once (limit ${c.semaphoreLimit})`)
  return parts.length > 0 ? `; ${r.run}: ${parts.join(', ')}` : ''
}

function verdict(
  name: string,
  broken: ScenarioResult,
  correct: ScenarioResult,
  caughtBy: (b: CheckResult) => boolean = anyViolation,
): ControlOutcome {
  const b = broken.check
  const c = correct.check
  const caught = caughtBy(b)
  const correctClean = c.overlaps === 0 && c.deadOnArrival === 0 && c.overLimit === 0 && c.tornReads === 0
  const kinds = b.overLimit + b.tornReads > 0 || b.maxShared > 0 || b.semaphoreLimit !== null
  const how = caught
    ? `${b.overlaps} overlapping valid grants, ${b.deadOnArrival} dead-on-arrival grants, ${b.counter.lostUpdates} lost updates, ${b.fenced.rejected} stale fenced writes rejected` +
      (kinds ? `, ${b.overLimit} permits beyond the limit, ${b.tornReads} torn reads` : '')
    : 'the checker saw nothing'
  const note =
    (name === 'skip-validity' ? slowProxyNote(broken) + slowProxyNote(correct) : '') +
    (kinds ? heldNote(broken) + heldNote(correct) : '')
  return { name, broken, correct, caught, correctClean, how: how + note }
}

async function pair(
  ctx: SoakContext,
  name: string,
  broken: Variant,
  make: (variant: Variant, run: string) => ScenarioOptions,
  drive: (cell: Cell, variant: Variant) => Promise<void>,
  caughtBy?: (b: CheckResult) => boolean,
): Promise<ControlOutcome> {
  const b = await runScenario(ctx, make(broken, `${name}-broken`), (cell) => drive(cell, broken))
  const c = await runScenario(ctx, make('correct', `${name}-correct`), (cell) => drive(cell, 'correct'))
  return verdict(name, b, c, caughtBy)
}

/** No fault at all: the load window passes. For defects that contention alone exposes. */
async function contentionOnly(cell: Cell): Promise<void> {
  await sleep(Math.max(0, cell.endAt - monoMs()))
}

/**
 * The controls of shared locks and semaphores: logic errors in a script, which need
 * no fault, only holders that meet on a key. Short sections, little thinking, so the
 * key is busy throughout.
 */
function kindControl(run: string, variant: Variant, count: number, hold: HoldSpec): ScenarioOptions {
  const workers = Array.from({ length: count }, (): WorkerSpec => ({ variant, hold }))
  return { ...base(run, workers), maxRounds: 5, roundGapMs: 40, thinkMs: 10, durationMs: KIND_CONTROL_MS }
}

export async function runControls(
  ctx: SoakContext,
  selected: (name: string) => boolean = () => true,
): Promise<ControlOutcome[]> {
  const out: ControlOutcome[] = []
  // Built once here, so a control whose script edit no longer applies fails at once.
  for (const v of ['sem-over-limit', 'writer-beside-reader'] as const) if (selected(v)) internalsFor(v)
  if (selected('wall-clock') && !existsSync(FAKETIME_LIB)) {
    throw new Error(
      `libfaketime not found at ${FAKETIME_LIB}: install it with \`apt-get install -y faketime\``,
    )
  }
  if (selected('plain-del')) {
    out.push(
      await pair(
        ctx,
        'plain-del',
        'plain-del',
        (v, run) => base(run, [{ variant: v }, { variant: v }, { variant: v }, { variant: v }]),
        (cell) => drivePlainDel(cell),
      ),
    )
  }
  const timeFile = path.join(ctx.logDir, 'faketime-offset')
  const faketime = {
    LD_PRELOAD: FAKETIME_LIB,
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
    FAKETIME_NO_CACHE: '1',
    FAKETIME_TIMESTAMP_FILE: timeFile,
  }
  writeFileSync(timeFile, '+0\n')
  if (selected('wall-clock')) {
    out.push(
      await pair(
        ctx,
        'wall-clock',
        'wall-clock',
        (v, run) =>
          // Worker 0 holds long enough for its lease to run out on the server while it
          // still works: 10 to 16 rounds, roughly half a second to a second.
          base(run, [
            { variant: v, env: faketime, minRounds: 10, maxRounds: 16, roundGapMs: 60 },
            { variant: 'correct' },
            { variant: 'correct' },
          ]),
        driveClockJump(timeFile),
      ),
    )
  }
  if (selected('skip-validity')) {
    out.push(
      await pair(
        ctx,
        'skip-validity',
        'skip-validity',
        (v, run) => ({
          ...base(run, [
            // Attempts may wait (almost) the whole lease for a reply behind the slow proxy:
            // the default attempt timeout (a quarter of it) would give them up first.
            { variant: v, stallMs: 2 * LIFETIME_MS, attemptTimeoutMs: LIFETIME_MS - 10 },
            // The others pause between grants so the key is often free when worker 0,
            // behind its slow proxy, asks for it.
            { variant: 'correct', thinkMs: 250 },
            { variant: 'correct', thinkMs: 250 },
          ]),
          maxRounds: 4,
        }),
        (cell) => driveSlowAcquire(cell),
      ),
    )
  }
  if (selected('sem-over-limit')) {
    // Five workers on a limit of 3: the broken script lets a fourth in (a fifth is
    // still kept out, since then the holders exceed the limit).
    out.push(
      await pair(
        ctx,
        'sem-over-limit',
        'sem-over-limit',
        (v, run) => kindControl(run, v, 5, { kind: 'semaphore', limit: 3 }),
        contentionOnly,
        (b) => b.overLimit > 0,
      ),
    )
  }
  if (selected('writer-beside-reader')) {
    // Four workers, 60 % of acquisitions shared: writers keep arriving while readers hold.
    out.push(
      await pair(
        ctx,
        'writer-beside-reader',
        'writer-beside-reader',
        (v, run) => kindControl(run, v, 4, { kind: 'rw', sharedShare: 0.6 }),
        contentionOnly,
        (b) => b.overlaps > 0,
      ),
    )
  }
  return out
}
