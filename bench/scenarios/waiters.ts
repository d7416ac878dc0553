// Scenario 6: what a waiting crowd costs Redis. Waiters in several processes on ONE
// key; every command their ioredis clients send is counted (and, where it matters,
// time-stamped on process.hrtime.bigint(), the monotonic clock all processes share).
//   a. a key held (and auto-extended) by another process: requests/s of the crowd;
//   b. acquire → hold 5 ms → release loops: attempts per acquisition;
//   c. the holder SIGKILLed: attempts in the 50 ms after its key expires.
// Our waiters call `locker.acquire(key, { retryTimeoutMs: null })`, everything else at
// the defaults (retryIntervalMs 500). redis-semaphore's Mutex (retryInterval 10 ms) can
// run side by side as context.
import { createHash } from 'node:crypto'
import { Locker } from 'async-redis-lock'
import { Redis } from 'ioredis'
import { connectClient, createAdapter, type Held, type LibraryName } from '../adapters.js'
import { errorText, finish, type Msg, sleep, sleepUntil, startWorker, type Worker, within } from '../child.js'
import { type ServerProbe, serverDelta } from '../redis.js'
import { fmt, type Section, table } from '../report.js'
import { addCounts, sumCounts } from '../stats.js'
import type { WorkerIo } from '../worker.js'

/** The libraries this scenario can drive (ours, and one polling peer for context). */
export const WAITER_LIBS: readonly LibraryName[] = ['async-redis-lock', 'redis-semaphore']

/** Command classes that try to take the key. */
const SET_NX = 'SET NX'
const ACQUIRE_SCRIPT = 'acquire script'

type Mode = 'wait' | 'loop'

/** A worker of this scenario: one role, many jobs (one per phase), so processes are reused. */
interface WorkerParams {
  readonly role: 'holder' | 'crowd'
  readonly port: number
}

interface HolderJob {
  readonly lib: LibraryName
  readonly key: string
  readonly lifetimeMs: number
}

interface CrowdJob {
  readonly lib: LibraryName
  readonly key: string
  readonly count: number
  readonly mode: Mode
  /** Loop mode: how long each acquisition is held. */
  readonly holdMs: number
  readonly lifetimeMs: number
  /** redis-semaphore's acquireTimeout (it has no "wait forever"). */
  readonly budgetMs: number
  /** Keep the send time of every attempt (scenario c). */
  readonly stampAttempts: boolean
}

/** Per-process command counts and attempt times, filled by the ioredis hook below. */
interface CommandLog {
  readonly counts: Record<string, number>
  /** Send times (ms, shared monotonic clock) of SET NX commands. */
  readonly setTimes: number[]
  /** Send times of acquire-script calls (EVAL/EVALSHA of our acquire script). */
  readonly scriptTimes: number[]
  stamp: boolean
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6

/**
 * Wraps `Redis.prototype.sendCommand` (every ioredis client of the process, the
 * library's subscriber connection included) and classifies each command: SET … NX,
 * our acquire script (recognised by its source when first sent with EVAL, then by
 * its SHA in EVALSHA), our release script, other scripts, or the command's name.
 */
function installCommandLog(): CommandLog {
  const log: CommandLog = { counts: {}, setTimes: [], scriptTimes: [], stamp: false }
  const seen = new WeakSet<object>()
  const shas = new Map<string, string>()
  type Cmd = { name: string; args: unknown[] }
  const proto = Redis.prototype as unknown as {
    sendCommand(this: Redis, command: Cmd, stream?: unknown): unknown
  }
  const original = proto.sendCommand
  const classify = (c: Cmd): string => {
    const name = c.name.toLowerCase()
    const first = String(c.args[0] ?? '')
    if (name === 'set' && c.args.some((a) => String(a).toUpperCase() === 'NX')) return SET_NX
    if (name === 'eval') {
      const kind = /'APPEND'/.test(first)
        ? ACQUIRE_SCRIPT
        : /PUBLISH/.test(first)
          ? 'release script'
          : 'other script'
      shas.set(createHash('sha1').update(first).digest('hex'), kind)
      return kind
    }
    if (name === 'evalsha') return shas.get(first.toLowerCase()) ?? 'other script'
    return name.toUpperCase()
  }
  proto.sendCommand = function (this: Redis, command, stream) {
    // A command parked in the offline queue passes here again when it is flushed.
    if (!seen.has(command)) {
      seen.add(command)
      const kind = classify(command)
      log.counts[kind] = (log.counts[kind] ?? 0) + 1
      if (log.stamp && kind === SET_NX) log.setTimes.push(nowMs())
      if (log.stamp && kind === ACQUIRE_SCRIPT) log.scriptTimes.push(nowMs())
    }
    return original.call(this, command, stream)
  }
  return log
}

/** acquire-until-got and release, for our library and the peer. */
interface Crowd {
  acquire(): Promise<Held>
  release(h: Held): Promise<void>
  close(): Promise<void>
}

/** A fresh client and Locker (or peer adapter) per job. */
async function crowdOf(port: number, p: CrowdJob): Promise<Crowd> {
  if (p.lib === 'async-redis-lock') {
    const client = await connectClient(port)
    const locker = new Locker(client, { lifetimeMs: p.lifetimeMs })
    type L = Awaited<ReturnType<Locker['acquire']>>
    return {
      acquire: async () => (await locker.acquire(p.key, { retryTimeoutMs: null })) as unknown as Held,
      release: async (h) => void (await (h as unknown as L).release()),
      close: async () => {
        await locker.close().catch(() => {})
        client.disconnect()
      },
    }
  }
  const adapter = await createAdapter(p.lib, { port, lifetimeMs: p.lifetimeMs, waitBudgetMs: p.budgetMs })
  return {
    acquire: () => adapter.acquire(p.key),
    release: (h) => adapter.release(h),
    close: () => adapter.close(),
  }
}

/** Runs jobs until a `job` message without params (or until killed). */
export async function waitersWorker(task: Msg, io: WorkerIo): Promise<void> {
  const w = task.params as WorkerParams
  const log = w.role === 'crowd' ? installCommandLog() : undefined
  for (;;) {
    const m = await io.mailbox.next('job', 600_000)
    if (m.job === null) return
    if (log) await crowd(w.port, m.job as CrowdJob, log, io)
    else await holder(w.port, m.job as HolderJob, io)
    await io.send({ type: 'idle' })
  }
}

/** Takes the key with the library's own auto-extension and keeps it until told (or killed). */
async function holder(port: number, p: HolderJob, io: WorkerIo): Promise<void> {
  const adapter = await createAdapter(p.lib, { port, lifetimeMs: p.lifetimeMs })
  const h = await adapter.acquire(p.key)
  await io.send({ type: 'held', redisKey: adapter.redisKey(p.key) })
  await io.mailbox.next('finish', 600_000)
  await adapter.release(h).catch(() => {})
  await within(adapter.close(), 5000, 'close').catch(() => {})
}

async function crowd(port: number, p: CrowdJob, log: CommandLog, io: WorkerIo): Promise<void> {
  const strays0 = io.strays.length
  log.stamp = false
  log.setTimes.length = 0
  log.scriptTimes.length = 0
  const c = await crowdOf(port, p)
  await io.send({ type: 'ready' })
  const go = await io.mailbox.next('go', 60_000)
  await sleepUntil(go.startAt as bigint)
  let errors = 0
  let firstError = ''
  let stop = false
  const acquiredAt: number[] = []
  /** Wait mode: locks got stay held (a dropped Lock would be released when collected). */
  const kept: Held[] = []
  const failed = (err: unknown) => {
    if (stop) return // closing at the end of the job ends every wait
    errors++
    firstError ||= errorText(err)
  }
  const loops: Promise<void>[] = []
  if (p.mode === 'wait') {
    for (let i = 0; i < p.count; i++) {
      c.acquire().then((h) => {
        acquiredAt.push(nowMs())
        kept.push(h)
      }, failed)
    }
  } else {
    const loop = async () => {
      while (!stop) {
        let h: Held
        try {
          h = await c.acquire()
        } catch (err) {
          failed(err)
          await sleep(10)
          continue
        }
        acquiredAt.push(nowMs())
        await sleep(p.holdMs)
        await c.release(h).catch(failed)
      }
    }
    for (let i = 0; i < p.count; i++) loops.push(loop())
  }
  await sleepUntil(go.countFrom as bigint)
  const from = nowMs()
  const c0 = { ...log.counts }
  const cpu0 = process.cpuUsage()
  log.stamp = p.stampAttempts
  await io.mailbox.next('finish', 600_000)
  const to = nowMs()
  const cpu = process.cpuUsage(cpu0)
  log.stamp = false
  stop = true
  const counts: Record<string, number> = {}
  for (const [k, n] of Object.entries(log.counts)) if (n - (c0[k] ?? 0) > 0) counts[k] = n - (c0[k] ?? 0)
  const strays = io.strays.slice(strays0)
  await io.send({
    type: 'result',
    from,
    to,
    counts,
    cpuS: (cpu.user + cpu.system) / 1e6,
    acquiredAt: acquiredAt.filter((t) => t >= from && t <= to),
    setTimes: log.setTimes,
    scriptTimes: log.scriptTimes,
    errors,
    firstError: firstError || (strays[0] ? `unhandled: ${strays[0]}` : ''),
  })
  // Held locks are released and waits end with the Locker (peer: its client).
  await within(c.close(), 5000, 'close').catch(() => {})
  await within(Promise.all(loops), 5000, 'loops').catch(() => {})
  kept.length = 0
}

// ---------------------------------------------------------------- orchestrator side

export interface WaitersParams {
  /** a: settle, then count for this long (ms). */
  readonly heldSettleMs: number
  readonly heldWindowMs: number
  /** b: loop window. */
  readonly loopSettleMs: number
  readonly loopWindowMs: number
  /** c: rounds (fresh processes each) and settle before the kill. */
  readonly expiryRounds: number
  readonly expirySettleMs: number
  /** Shorter windows for the polling peer (its rates are high; the counts are not small). */
  readonly peerWindowMs: number
  /** Run the peer at all. */
  readonly peers: boolean
}

interface Layout {
  readonly processes: number
  readonly perProcess: number
}

interface CrowdReport {
  from: number
  to: number
  counts: Record<string, number>
  cpuS: number
  acquiredAt: number[]
  setTimes: number[]
  scriptTimes: number[]
  errors: number
  firstError: string
}

export interface HeldKeyResult {
  lib: LibraryName
  processes: number
  waiters: number
  error?: string
  windowS: number
  /** Every command the waiters' clients sent, per second. */
  requestsPerSec: number
  /** SET NX per second: each attempt of ours (and of the peer) begins with exactly one. */
  attemptsPerSec: number
  /** SET NX + acquire-script calls per second. */
  attemptCommandsPerSec: number
  attemptsPerSecByProcess: number[]
  byCommand: Record<string, number>
  /** INFO commandstats delta over the window: all clients (holder too), script-internal calls included. */
  serverCallsPerSec: number
  nodeCpuS: number
  /** Waiters that got the key although it was held (must be 0), and acquire errors. */
  acquired: number
  errors: number
}

export interface LoopResult {
  lib: LibraryName
  processes: number
  waiters: number
  holdMs: number
  error?: string
  windowS: number
  acquisitions: number
  acquisitionsPerSec: number
  attemptsPerAcq: number
  attemptCommandsPerAcq: number
  requestsPerAcq: number
  serverCallsPerAcq: number
  /** Share of acquisitions whose holder was in another process than the previous one. */
  crossProcessShare: number
  byCommand: Record<string, number>
  errors: number
}

export interface ExpiryRound {
  /** ms from the kill to the key's expiry (the lease the holder had left). */
  leaseLeftMs: number
  /** SET NX sent in [expiry, expiry + 50 ms). */
  attempts50: number
  /** SET NX + acquire-script calls in the same window. */
  attemptCommands50: number
  /** First to last SET NX of that window, ms. */
  spreadMs: number
  /** Expiry → first SET NX after it, ms. */
  firstAfterMs: number
  /** Expiry → the winner's acquire resolving, ms. */
  acquiredAfterMs: number
  /** SET NX in the 50 ms before the expiry (still blocked by the dead holder's key). */
  attemptsBefore50: number
  /** Processes that sent at least one SET NX in the window. */
  processesAttempting: number
}

export interface ExpiryResult {
  lib: LibraryName
  processes: number
  waiters: number
  lifetimeMs: number
  error?: string
  rounds: ExpiryRound[]
  /** Worst round. */
  maxAttempts50: number
  maxAttemptCommands50: number
  maxSpreadMs: number
}

export interface WaitersResults {
  held: HeldKeyResult[]
  loop: LoopResult[]
  expiry: ExpiryResult[]
}

const HELD_LAYOUTS: readonly Layout[] = [
  { processes: 1, perProcess: 500 },
  { processes: 5, perProcess: 100 },
]
const LOOP_LAYOUT: Layout = { processes: 5, perProcess: 20 }
const LOOP_HOLD_MS = 5
const EXPIRY_LAYOUT: Layout = { processes: 5, perProcess: 100 }
const EXPIRY_LIFETIME_MS = 1000
const AFTER_EXPIRY_MS = 50
const START_DELAY_NS = 150_000_000n
/** The polling peer settles at once (it has no subscription to set up). */
const PEER_SETTLE_MS = 300

const ns = (ms: number) => BigInt(Math.round(ms * 1e6))

/** How long a pool worker may live: the whole scenario, with room to spare. */
const POOL_HARD_MS = 600_000

/**
 * Long-lived workers: crowd processes reused by every phase (a fresh client and
 * Locker per phase), one holder process replaced after it was killed. Starting Node
 * processes costs ~0.4 s each on the one bench core; reusing them keeps the scenario short.
 */
class Pool {
  #crowd: Worker[] = []
  #holder: Worker | undefined

  constructor(
    readonly port: number,
    readonly size: number,
  ) {}

  crowd(n: number): Worker[] {
    if (this.#crowd.length === 0) {
      this.#crowd = Array.from({ length: this.size }, () =>
        startWorker({ type: 'waiters', params: { role: 'crowd', port: this.port } }, POOL_HARD_MS),
      )
    }
    return this.#crowd.slice(0, n)
  }

  holder(): Worker {
    this.#holder ??= startWorker(
      { type: 'waiters', params: { role: 'holder', port: this.port } },
      POOL_HARD_MS,
    )
    return this.#holder
  }

  /** SIGKILLs the holder; the next phase gets a new one. */
  async killHolder(): Promise<void> {
    const h = this.#holder
    this.#holder = undefined
    h?.kill()
    await h?.exited
  }

  /** After a failed phase nobody knows what the workers are doing: kill them all. */
  async reset(): Promise<void> {
    const all = [...this.#crowd, ...(this.#holder ? [this.#holder] : [])]
    this.#crowd = []
    this.#holder = undefined
    for (const w of all) w.kill()
    await Promise.all(all.map((w) => w.exited))
  }

  async close(): Promise<void> {
    const all = [...this.#crowd, ...(this.#holder ? [this.#holder] : [])]
    this.#crowd = []
    this.#holder = undefined
    for (const w of all) w.send({ type: 'job', job: null })
    await Promise.all(all.map((w) => finish(w)))
  }
}

/** One phase: an optional holder job, the crowd jobs, the counting window. */
class Phase {
  readonly crowd: Worker[]
  holder: Worker | undefined
  redisKey: string

  constructor(
    readonly pool: Pool,
    layout: Layout,
    job: Omit<CrowdJob, 'count'>,
    holderLifetimeMs: number | undefined,
  ) {
    this.redisKey = job.key
    this.crowd = pool.crowd(layout.processes)
    if (holderLifetimeMs !== undefined) {
      this.holder = pool.holder()
      const holderJob: HolderJob = { lib: job.lib, key: job.key, lifetimeMs: holderLifetimeMs }
      this.holder.send({ type: 'job', job: holderJob })
    }
    for (const w of this.crowd) w.send({ type: 'job', job: { ...job, count: layout.perProcess } })
  }

  /** Waits for the holder to hold and every crowd process to be ready, then starts the crowd. */
  async start(settleMs: number): Promise<bigint> {
    // The holder first: a crowd ready before the key is held would just take it.
    const held = this.holder ? await this.holder.mailbox.next('held', 30_000) : undefined
    await Promise.all(this.crowd.map((w) => w.mailbox.next('ready', 30_000)))
    this.redisKey = (held?.redisKey as string | undefined) ?? this.redisKey
    const startAt = process.hrtime.bigint() + START_DELAY_NS
    const countFrom = startAt + ns(settleMs)
    for (const w of this.crowd) w.send({ type: 'go', startAt, countFrom })
    return countFrom
  }

  async killHolder(): Promise<void> {
    this.holder = undefined
    await this.pool.killHolder()
  }

  async finishCrowd(): Promise<CrowdReport[]> {
    for (const w of this.crowd) w.send({ type: 'finish' })
    const reports = await Promise.all(this.crowd.map((w) => w.mailbox.next('result', 30_000)))
    return reports as unknown as CrowdReport[]
  }

  /** Ends the phase: the holder releases, every job closes its client; a failed phase resets the pool. */
  async close(failed: boolean): Promise<void> {
    if (failed) return this.pool.reset()
    this.holder?.send({ type: 'finish' })
    const workers = [...this.crowd, ...(this.holder ? [this.holder] : [])]
    try {
      await Promise.all(workers.map((w) => w.mailbox.next('idle', 15_000)))
    } catch {
      await this.pool.reset()
    }
  }
}

/** Runs a phase and closes it, resetting the pool if anything went wrong. */
async function inPhase<T>(phase: Phase, run: (phase: Phase) => Promise<T>): Promise<T> {
  let failed = true
  try {
    const result = await run(phase)
    failed = false
    return result
  } finally {
    await phase.close(failed)
  }
}

const sumOf = (reports: CrowdReport[], kind: string) => reports.reduce((a, r) => a + (r.counts[kind] ?? 0), 0)
const mergeCounts = (reports: CrowdReport[]) => reports.reduce((a, r) => addCounts(a, r.counts), {})
/** The crowd's window: the longest process window (they start together; finish arrives ~together). */
const windowSeconds = (reports: CrowdReport[]) => Math.max(...reports.map((r) => r.to - r.from)) / 1000

async function runHeldKey(
  pool: Pool,
  probe: ServerProbe,
  lib: LibraryName,
  layout: Layout,
  settleMs: number,
  windowMs: number,
): Promise<HeldKeyResult> {
  const key = `w:held:${lib}:${layout.processes}`
  const job = {
    lib,
    key,
    mode: 'wait' as const,
    holdMs: 0,
    lifetimeMs: 2000,
    budgetMs: settleMs + windowMs + 20_000,
    stampAttempts: false,
  }
  return inPhase(new Phase(pool, layout, job, 2000), async (phase) => {
    const countFrom = await phase.start(settleMs)
    await sleepUntil(countFrom)
    const s0 = await probe.snapshot()
    await sleepUntil(countFrom + ns(windowMs))
    const server = serverDelta(s0, await probe.snapshot())
    const reports = await phase.finishCrowd()
    const seconds = windowSeconds(reports)
    const attemptsOf = (r: CrowdReport) => (r.counts[SET_NX] ?? 0) / ((r.to - r.from) / 1000)
    const byCommand = mergeCounts(reports)
    const errors = reports.reduce((a, r) => a + r.errors, 0)
    const firstError = reports.find((r) => r.firstError)?.firstError
    return {
      lib,
      processes: layout.processes,
      waiters: layout.processes * layout.perProcess,
      ...(firstError ? { error: firstError } : {}),
      windowS: seconds,
      requestsPerSec: sumCounts(byCommand) / seconds,
      attemptsPerSec: sumOf(reports, SET_NX) / seconds,
      attemptCommandsPerSec: (sumOf(reports, SET_NX) + sumOf(reports, ACQUIRE_SCRIPT)) / seconds,
      attemptsPerSecByProcess: reports.map(attemptsOf),
      byCommand,
      serverCallsPerSec: server.calls / (windowMs / 1000),
      nodeCpuS: reports.reduce((a, r) => a + r.cpuS, 0),
      acquired: reports.reduce((a, r) => a + r.acquiredAt.length, 0),
      errors,
    }
  })
}

async function runLoop(
  pool: Pool,
  probe: ServerProbe,
  lib: LibraryName,
  settleMs: number,
  windowMs: number,
): Promise<LoopResult> {
  const layout = LOOP_LAYOUT
  const job = {
    lib,
    key: `w:loop:${lib}`,
    mode: 'loop' as const,
    holdMs: LOOP_HOLD_MS,
    lifetimeMs: 2000,
    budgetMs: settleMs + windowMs + 20_000,
    stampAttempts: false,
  }
  return inPhase(new Phase(pool, layout, job, undefined), async (phase) => {
    const countFrom = await phase.start(settleMs)
    await sleepUntil(countFrom)
    const s0 = await probe.snapshot()
    await sleepUntil(countFrom + ns(windowMs))
    const server = serverDelta(s0, await probe.snapshot())
    const reports = await phase.finishCrowd()
    const seconds = windowSeconds(reports)
    const events = reports
      .flatMap((r, i) => r.acquiredAt.map((at) => ({ at, i })))
      .sort((a, b) => a.at - b.at)
    let cross = 0
    for (let k = 1; k < events.length; k++) if (events[k]?.i !== events[k - 1]?.i) cross++
    const acq = events.length
    const byCommand = mergeCounts(reports)
    const firstError = reports.find((r) => r.firstError)?.firstError
    // The server window is the orchestrator's; scale its calls to the crowd's acquisitions per second.
    const acqPerSec = acq / seconds
    return {
      lib,
      processes: layout.processes,
      waiters: layout.processes * layout.perProcess,
      holdMs: LOOP_HOLD_MS,
      ...(firstError ? { error: firstError } : {}),
      windowS: seconds,
      acquisitions: acq,
      acquisitionsPerSec: acqPerSec,
      attemptsPerAcq: sumOf(reports, SET_NX) / acq,
      attemptCommandsPerAcq: (sumOf(reports, SET_NX) + sumOf(reports, ACQUIRE_SCRIPT)) / acq,
      requestsPerAcq: sumCounts(byCommand) / acq,
      serverCallsPerAcq: server.calls / (windowMs / 1000) / acqPerSec,
      crossProcessShare: acq > 1 ? cross / (acq - 1) : Number.NaN,
      byCommand,
      errors: reports.reduce((a, r) => a + r.errors, 0),
    }
  })
}

/** Reads the key's remaining lease and turns it into an instant on the shared clock (ms). */
async function expiryInstant(probe: ServerProbe, key: string): Promise<number> {
  const t0 = nowMs()
  const pttl = Number(await probe.client.pttl(key))
  const t1 = nowMs()
  if (pttl < 0) throw new Error(`key ${key} has no lease to expire (PTTL ${pttl})`)
  // Redis answers whole ms (rounded down), read somewhere between t0 and t1.
  return (t0 + t1) / 2 + pttl + 0.5
}

async function runExpiryRound(
  pool: Pool,
  probe: ServerProbe,
  lib: LibraryName,
  round: number,
  settleMs: number,
): Promise<ExpiryRound> {
  const layout = EXPIRY_LAYOUT
  const job = {
    lib,
    key: `w:expiry:${lib}:${round}`,
    mode: 'wait' as const,
    holdMs: 0,
    lifetimeMs: EXPIRY_LIFETIME_MS,
    budgetMs: settleMs + 20_000,
    stampAttempts: true,
  }
  return inPhase(new Phase(pool, layout, job, EXPIRY_LIFETIME_MS), async (phase) => {
    const countFrom = await phase.start(settleMs)
    await sleepUntil(countFrom)
    const killedAt = nowMs()
    await phase.killHolder()
    // An extension already written to the socket still lands: read the TTL after it.
    await sleep(20)
    const expiry = await expiryInstant(probe, phase.redisKey)
    await sleepUntil(ns(expiry + AFTER_EXPIRY_MS + 250))
    const reports = await phase.finishCrowd()
    const end = expiry + AFTER_EXPIRY_MS
    const inWindow = (t: number) => t >= expiry && t < end
    const sets = reports.flatMap((r) => r.setTimes.filter(inWindow)).sort((a, b) => a - b)
    const scripts = reports.flatMap((r) => r.scriptTimes.filter(inWindow))
    const allAfter = reports.flatMap((r) => r.setTimes.filter((t) => t >= expiry))
    const wins = reports.flatMap((r) => r.acquiredAt.filter((t) => t >= expiry - 5))
    const firstError = reports.find((r) => r.firstError)?.firstError
    if (firstError) throw new Error(firstError)
    return {
      leaseLeftMs: expiry - killedAt,
      attempts50: sets.length,
      attemptCommands50: sets.length + scripts.length,
      spreadMs: sets.length > 0 ? (sets.at(-1) as number) - (sets[0] as number) : Number.NaN,
      firstAfterMs: allAfter.length > 0 ? Math.min(...allAfter) - expiry : Number.NaN,
      acquiredAfterMs: wins.length > 0 ? Math.min(...wins) - expiry : Number.NaN,
      attemptsBefore50: reports.reduce(
        (a, r) => a + r.setTimes.filter((t) => t >= expiry - AFTER_EXPIRY_MS && t < expiry).length,
        0,
      ),
      processesAttempting: reports.filter((r) => r.setTimes.some(inWindow)).length,
    }
  })
}

async function runExpiry(
  pool: Pool,
  probe: ServerProbe,
  lib: LibraryName,
  rounds: number,
  settleMs: number,
): Promise<ExpiryResult> {
  const base = {
    lib,
    processes: EXPIRY_LAYOUT.processes,
    waiters: EXPIRY_LAYOUT.processes * EXPIRY_LAYOUT.perProcess,
    lifetimeMs: EXPIRY_LIFETIME_MS,
  }
  const done: ExpiryRound[] = []
  try {
    for (let i = 0; i < rounds; i++) done.push(await runExpiryRound(pool, probe, lib, i, settleMs))
  } catch (err) {
    return { ...base, error: errorText(err), rounds: done, ...worst(done) }
  }
  return { ...base, rounds: done, ...worst(done) }
}

function worst(rounds: ExpiryRound[]) {
  const max = (f: (r: ExpiryRound) => number) => (rounds.length > 0 ? Math.max(...rounds.map(f)) : Number.NaN)
  return {
    maxAttempts50: max((r) => r.attempts50),
    maxAttemptCommands50: max((r) => r.attemptCommands50),
    maxSpreadMs: max((r) => (Number.isFinite(r.spreadMs) ? r.spreadMs : 0)),
  }
}

export async function runWaiters(
  port: number,
  probe: ServerProbe,
  libs: readonly LibraryName[],
  params: WaitersParams,
): Promise<{ section: Section; results: WaitersResults }> {
  const chosen = WAITER_LIBS.filter((l) => libs.includes(l) && (l === 'async-redis-lock' || params.peers))
  const results: WaitersResults = { held: [], loop: [], expiry: [] }
  const nan = Number.NaN
  const pool = new Pool(
    port,
    Math.max(...HELD_LAYOUTS.map((l) => l.processes), LOOP_LAYOUT.processes, EXPIRY_LAYOUT.processes),
  )
  try {
    // Ours first, then the peer: its polling load never precedes our measurements.
    for (const lib of chosen) {
      const peer = lib !== 'async-redis-lock'
      const heldWindowMs = peer ? params.peerWindowMs : params.heldWindowMs
      const heldSettleMs = peer ? Math.min(PEER_SETTLE_MS, params.heldSettleMs) : params.heldSettleMs
      for (const layout of HELD_LAYOUTS) {
        await probe.flush()
        try {
          results.held.push(await runHeldKey(pool, probe, lib, layout, heldSettleMs, heldWindowMs))
        } catch (err) {
          results.held.push({
            lib,
            processes: layout.processes,
            waiters: layout.processes * layout.perProcess,
            error: errorText(err),
            windowS: nan,
            requestsPerSec: nan,
            attemptsPerSec: nan,
            attemptCommandsPerSec: nan,
            attemptsPerSecByProcess: [],
            byCommand: {},
            serverCallsPerSec: nan,
            nodeCpuS: nan,
            acquired: 0,
            errors: 0,
          })
        }
      }
      await probe.flush()
      try {
        const loopWindowMs = peer ? params.peerWindowMs : params.loopWindowMs
        results.loop.push(await runLoop(pool, probe, lib, params.loopSettleMs, loopWindowMs))
      } catch (err) {
        results.loop.push({
          lib,
          processes: LOOP_LAYOUT.processes,
          waiters: LOOP_LAYOUT.processes * LOOP_LAYOUT.perProcess,
          holdMs: LOOP_HOLD_MS,
          error: errorText(err),
          windowS: nan,
          acquisitions: 0,
          acquisitionsPerSec: nan,
          attemptsPerAcq: nan,
          attemptCommandsPerAcq: nan,
          requestsPerAcq: nan,
          serverCallsPerAcq: nan,
          crossProcessShare: nan,
          byCommand: {},
          errors: 0,
        })
      }
      await probe.flush()
      results.expiry.push(
        await runExpiry(pool, probe, lib, peer ? 1 : params.expiryRounds, params.expirySettleMs),
      )
    }
  } finally {
    await pool.close()
  }
  return { section: render(results, params, libs), results }
}

const commandList = (counts: Record<string, number>, seconds: number, unit: string) =>
  Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${fmt(n / seconds, seconds === 1 ? 0 : 1)}${unit}`)
    .join(', ')

function render(r: WaitersResults, params: WaitersParams, libs: readonly LibraryName[]): Section {
  const heldRows = r.held.map((x) =>
    x.error && !Number.isFinite(x.requestsPerSec)
      ? [x.lib, String(x.processes), String(x.waiters), `ERROR: ${x.error}`, ...Array(7).fill('')]
      : [
          x.error ? `${x.lib} (${x.error})` : x.lib,
          String(x.processes),
          String(x.waiters),
          fmt(x.requestsPerSec, 1),
          fmt(x.attemptsPerSec, 1),
          fmt(x.attemptCommandsPerSec, 1),
          x.attemptsPerSecByProcess.map((v) => fmt(v, 2)).join(' / '),
          fmt(x.serverCallsPerSec, 1),
          fmt(x.nodeCpuS, 3),
          `${x.acquired}/${x.errors}`,
          commandList(x.byCommand, x.windowS, '/s'),
        ],
  )
  const loopRows = r.loop.map((x) =>
    x.error && x.acquisitions === 0
      ? [x.lib, `ERROR: ${x.error}`, ...Array(8).fill('')]
      : [
          x.error ? `${x.lib} (${x.error})` : x.lib,
          `${x.processes} × ${x.waiters / x.processes}`,
          String(x.acquisitions),
          fmt(x.acquisitionsPerSec, 1),
          fmt(x.attemptsPerAcq, 2),
          fmt(x.attemptCommandsPerAcq, 2),
          fmt(x.requestsPerAcq, 2),
          fmt(x.serverCallsPerAcq, 2),
          fmt(x.crossProcessShare * 100, 0),
          commandList(x.byCommand, x.acquisitions, '/acq').replaceAll('/acq', ''),
        ],
  )
  const expiryRows = r.expiry.flatMap((x) =>
    x.rounds.length === 0
      ? [[x.lib, '–', `ERROR: ${x.error ?? 'no round'}`, ...Array(7).fill('')]]
      : x.rounds.map((d, i) => [
          i === 0 && x.error ? `${x.lib} (then: ${x.error})` : x.lib,
          String(i + 1),
          fmt(d.leaseLeftMs, 0),
          String(d.attempts50),
          String(d.attemptCommands50),
          fmt(d.spreadMs, 2),
          String(d.processesAttempting),
          fmt(d.firstAfterMs, 2),
          fmt(d.acquiredAfterMs, 2),
          String(d.attemptsBefore50),
        ]),
  )
  const skipped = WAITER_LIBS.filter((l) => !libs.includes(l))
  return {
    title: '6. Waiting crowds on one key: Redis requests while held, attempts per handoff, after an expiry',
    notes: [
      'Our waiters: `locker.acquire(key, { retryTimeoutMs: null })` on one `Locker` (one ioredis client) per process, every other option at its default (retryIntervalMs 500, retried at 0.8–1.2 × that; a wait is also bounded by the holder’s TTL + 1 ms + up to 25 ms jitter). The holder is another process (`new Locker`, auto-extended). The crowd runs in 5 worker processes kept for the whole scenario (a layout with fewer uses the first ones), with a fresh ioredis client and `Locker` (or peer adapter) per phase and round, closed at its end.',
      `Counted client-side in ioredis (\`Redis.prototype.sendCommand\`) in the waiters’ processes only, subscriber connection included; the holder’s extensions are not in "req". **attempts = SET NX sent**: every attempt of ours at one key without fencing begins with one \`SET NX PX\`, followed (only when the key is held) by the acquire script, which tries SET NX again, reads the holder’s PTTL and marks it as waited for; so a failed attempt is 2 commands, a successful one 1. **attempt cmds** = SET NX + acquire-script calls (EVAL/EVALSHA, recognised by the script’s source and SHA). redis-semaphore: one SET NX per attempt, no script.`,
      `**a. Held key**: one holder process holds the key (lifetimeMs 2000, auto-extended); the waiters start together, settle ${params.heldSettleMs} ms, then are counted for ${params.heldWindowMs} ms${params.peers ? ` (redis-semaphore: ${Math.min(PEER_SETTLE_MS, params.heldSettleMs)} + ${params.peerWindowMs} ms)` : ''}. Redis calls/s = INFO commandstats delta over the window: all clients (holder included) and script-internal calls. acquired/errors must be 0/0. A process’s attempts come 400–600 ms apart, so a window counts ±1 attempt per process (±0.2 attempts/s over 5 s).`,
      `**b. Handoffs**: ${LOOP_LAYOUT.processes} processes × ${LOOP_LAYOUT.perProcess} waiters, each looping acquire → hold ${LOOP_HOLD_MS} ms (\`setTimeout\`) → release, settle ${params.loopSettleMs} ms, window ${params.loopWindowMs} ms${params.peers ? ` (redis-semaphore ${params.peerWindowMs} ms)` : ''}; per acquisition inside the window. cross-process % = acquisitions whose process differs from the previous acquisition’s (merged on the shared monotonic clock).`,
      `**c. Expiry**: ${EXPIRY_LAYOUT.processes} processes × ${EXPIRY_LAYOUT.perProcess} waiters wait on a key held by a holder process (lifetimeMs ${EXPIRY_LIFETIME_MS}, auto-extended); after ${params.expirySettleMs} ms the holder is SIGKILLed. Expiry instant = the key’s PTTL read 20 ms after the kill, on the shared clock (±1 ms). Attempts / cmds in 50 ms = SET NX (+ acquire scripts) sent in [expiry, expiry + 50 ms); spread = first to last of those SET NX; first/acquired = expiry → first SET NX after it / → the winner’s acquire resolving (the winner keeps the key). A fresh holder process per round; ${params.expiryRounds} round(s) for ours${params.peers ? ', 1 for redis-semaphore' : ''}.`,
      ...(params.peers ? [] : ['The peer (redis-semaphore) is skipped in the quick run.']),
      ...(skipped.length > 0 ? [`Not run (--libs): ${skipped.join(', ')}.`] : []),
    ],
    tables: [
      `**a. Held key: what the waiting crowd sends**\n\n${table(
        [
          'library',
          'processes',
          'waiters',
          'client req/s',
          'attempts/s',
          'attempt cmds/s',
          'attempts/s per process',
          'Redis calls/s',
          'Node CPU s',
          'acquired/errors',
          'req/s by command',
        ],
        heldRows,
      )}`,
      `**b. Acquire → hold ${LOOP_HOLD_MS} ms → release loops on one key**\n\n${table(
        [
          'library',
          'processes × waiters',
          'acquisitions',
          'acq/s',
          'attempts/acq',
          'attempt cmds/acq',
          'client req/acq',
          'Redis calls/acq',
          'cross-process %',
          'req/acq by command',
        ],
        loopRows,
      )}`,
      `**c. Holder SIGKILLed: attempts around its key’s expiry**\n\n${table(
        [
          'library',
          'round',
          'kill → expiry ms',
          'attempts in 50 ms',
          'attempt cmds in 50 ms',
          'spread ms',
          'processes attempting',
          'expiry → first attempt ms',
          'expiry → acquired ms',
          'attempts in 50 ms before',
        ],
        expiryRows,
      )}`,
    ],
  }
}

/** For the verdicts: our rows. */
export function oursOf(r: WaitersResults | undefined) {
  const ours = 'async-redis-lock'
  return {
    held1: r?.held.find((x) => x.lib === ours && x.processes === 1 && !x.error),
    held5: r?.held.find((x) => x.lib === ours && x.processes === 5 && !x.error),
    loop: r?.loop.find((x) => x.lib === ours && !x.error),
    expiry: r?.expiry.find((x) => x.lib === ours && !x.error && x.rounds.length > 0),
  }
}
