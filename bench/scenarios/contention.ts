// Scenario 3: N contenders on ONE key, split across two processes, for a fixed window.
// Every acquisition is stamped with process.hrtime.bigint() (CLOCK_MONOTONIC, shared
// by all processes on the machine), so both processes' records merge into one timeline.
import { budgetNote, createAdapter, type Hold, isPeer, type LibraryName } from '../adapters.js'
import { errorText, finish, type Msg, sleep, sleepUntil, startWorker, type Worker, within } from '../child.js'
import { clientCounts, installCounting } from '../counting.js'
import { type ServerProbe, serverDelta } from '../redis.js'
import { fmt, type Section, table } from '../report.js'
import { diffCounts, jain, msBetween, percentile, sumCounts } from '../stats.js'
import type { WorkerIo } from '../worker.js'

export interface ContentionConfig {
  readonly contenders: number
  readonly csMs: number
}

export interface ContendParams {
  readonly port: number
  readonly lib: LibraryName
  /** How the key is held (issue 13); undefined = exclusive. */
  readonly hold?: Hold | undefined
  readonly key: string
  readonly count: number
  readonly idBase: number
  readonly csMs: number
  readonly budgetMs: number
  readonly drainMs: number
}

export interface ContenderRecord {
  readonly id: number
  readonly acquiredAt: bigint[]
  readonly waitMs: number[]
  readonly releasedAt: bigint[]
}

export interface ContentionResult {
  lib: LibraryName
  contenders: number
  csMs: number
  error?: string
  acquisitions: number
  acquisitionsPerSec: number
  handoffsPerSec: number
  waitP50Ms: number
  waitP99Ms: number
  jain: number
  clientRequestsPerAcq: number
  serverCallsPerAcq: number
  clientByCommand: Record<string, number>
  /** INFO commandstats delta per command, script-internal calls included. */
  serverByCommand: Record<string, number>
  nodeCpuS: number
  redisCpuS: number
  failures: number
  overlaps: number
  lost: number
}

export async function contendWorker(task: Msg, io: WorkerIo): Promise<void> {
  const p = task.params as ContendParams
  installCounting()
  const adapter = await createAdapter(p.lib, {
    port: p.port,
    lifetimeMs: 2000,
    waitBudgetMs: p.budgetMs,
    hold: p.hold,
  })
  for (let i = 0; i < 20; i++) await adapter.release(await adapter.acquire(`${p.key}:warm:${p.idBase}`))
  await io.send({ type: 'ready' })
  const go = await io.mailbox.next('go', 60_000)
  const startAt = go.startAt as bigint
  const endAt = go.endAt as bigint
  await sleepUntil(startAt)
  const c0 = clientCounts()
  const cpu0 = process.cpuUsage()
  let window: { counts: Record<string, number>; cpuS: number } | undefined
  const stop = sleepUntil(endAt).then(() => {
    const cpu = process.cpuUsage(cpu0)
    window = { counts: diffCounts(c0, clientCounts()), cpuS: (cpu.user + cpu.system) / 1e6 }
  })
  let failures = 0
  const records: ContenderRecord[] = []
  const loop = async (id: number) => {
    const rec: ContenderRecord = { id, acquiredAt: [], waitMs: [], releasedAt: [] }
    records.push(rec)
    while (process.hrtime.bigint() < endAt) {
      const t0 = process.hrtime.bigint()
      let held: Awaited<ReturnType<typeof adapter.acquire>>
      try {
        held = await adapter.acquire(p.key)
      } catch {
        // Should not happen with the long budgets; back off so a broken library cannot spin.
        failures++
        await sleep(10)
        continue
      }
      const t1 = process.hrtime.bigint()
      rec.acquiredAt.push(t1)
      rec.waitMs.push(msBetween(t0, t1))
      if (p.csMs > 0) await sleep(p.csMs)
      rec.releasedAt.push(process.hrtime.bigint())
      await adapter.release(held).catch(() => failures++)
    }
  }
  const loops = Promise.all(Array.from({ length: p.count }, (_, i) => loop(p.idBase + i)))
  // Waiters still queued at the end get a bounded time to finish; they do not count.
  const drained = await within(loops, Number(endAt - startAt) / 1e6 + p.drainMs, 'drain').then(
    () => true,
    () => false,
  )
  await stop
  await io.send({
    type: 'result',
    records,
    failures,
    lost: adapter.lost(),
    drained,
    counts: window?.counts ?? {},
    cpuS: window?.cpuS ?? 0,
    strays: io.strays,
  })
  if (drained) await within(adapter.close(), 3000, 'close').catch(() => {})
}

async function runOne(
  port: number,
  probe: ServerProbe,
  lib: LibraryName,
  cfg: ContentionConfig,
  windowMs: number,
  budgetMs: number,
): Promise<ContentionResult> {
  const key = `c:${lib}:${cfg.contenders}:${cfg.csMs}`
  const base = { port, lib, key, csMs: cfg.csMs, budgetMs, drainMs: 3000 }
  const run = await runContenders(probe, base, cfg.contenders, windowMs)
  return summarize(lib, cfg, windowMs, run.startAt, run.endAt, run.results, run.server)
}

/** What both contender processes reported over one window, and Redis's side of it. */
export interface ContendersRun {
  readonly startAt: bigint
  readonly endAt: bigint
  readonly results: Msg[]
  readonly server: ReturnType<typeof serverDelta>
}

/**
 * Starts `contenders` contenders on one key, half in each of two worker processes,
 * runs them over one window (same start instant for both) and collects their records.
 */
export async function runContenders(
  probe: ServerProbe,
  base: Omit<ContendParams, 'count' | 'idBase'>,
  contenders: number,
  windowMs: number,
  processes: 1 | 2 = 2,
): Promise<ContendersRun> {
  const each = contenders / processes
  const hard = windowMs + 60_000
  const workers: Worker[] = (processes === 1 ? [0] : [0, each]).map((idBase) =>
    startWorker({ type: 'contend', params: { ...base, count: each, idBase } }, hard),
  )
  try {
    await Promise.all(workers.map((w) => w.mailbox.next('ready', 30_000)))
    const startAt = process.hrtime.bigint() + 150_000_000n
    const endAt = startAt + BigInt(windowMs) * 1_000_000n
    for (const w of workers) w.send({ type: 'go', startAt, endAt })
    await sleepUntil(startAt)
    const s0 = await probe.snapshot()
    await sleepUntil(endAt)
    const server = serverDelta(s0, await probe.snapshot())
    const results = await Promise.all(workers.map((w) => w.mailbox.next('result', windowMs + 20_000)))
    return { startAt, endAt, results, server }
  } finally {
    await Promise.all(workers.map((w) => finish(w)))
  }
}

function summarize(
  lib: LibraryName,
  cfg: ContentionConfig,
  windowMs: number,
  startAt: bigint,
  endAt: bigint,
  results: Msg[],
  server: ReturnType<typeof serverDelta>,
): ContentionResult {
  const events: { at: bigint; id: number; releasedAt: bigint | undefined }[] = []
  const waits: number[] = []
  const perContender: number[] = []
  const counts: Record<string, number> = {}
  let failures = 0
  let lost = 0
  let cpuS = 0
  for (const r of results) {
    for (const rec of r.records as ContenderRecord[]) {
      let n = 0
      rec.acquiredAt.forEach((at, i) => {
        if (at < startAt || at > endAt) return
        n++
        waits.push(rec.waitMs[i] as number)
        events.push({ at, id: rec.id, releasedAt: rec.releasedAt[i] })
      })
      perContender.push(n)
    }
    for (const [name, c] of Object.entries(r.counts as Record<string, number>))
      counts[name] = (counts[name] ?? 0) + c
    failures += r.failures as number
    lost += r.lost as number
    cpuS += r.cpuS as number
  }
  events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))
  let handoffs = 0
  let overlaps = 0
  for (let i = 1; i < events.length; i++) {
    const prev = events[i - 1]
    const cur = events[i]
    if (!prev || !cur) continue
    if (cur.id !== prev.id) handoffs++
    // The next holder can only get the key after the previous one started releasing it.
    if (prev.releasedAt !== undefined && cur.at < prev.releasedAt) overlaps++
  }
  const seconds = windowMs / 1000
  const acq = events.length
  if (acq === 0) return failed(lib, cfg, `no acquisition in the window (${failures} failed acquires)`)
  return {
    lib,
    contenders: cfg.contenders,
    csMs: cfg.csMs,
    acquisitions: acq,
    acquisitionsPerSec: acq / seconds,
    handoffsPerSec: handoffs / seconds,
    waitP50Ms: percentile(waits, 50),
    waitP99Ms: percentile(waits, 99),
    jain: jain(perContender),
    clientRequestsPerAcq: sumCounts(counts) / acq,
    serverCallsPerAcq: server.calls / acq,
    clientByCommand: counts,
    serverByCommand: server.byCommand,
    nodeCpuS: cpuS,
    redisCpuS: server.cpuSeconds,
    failures,
    overlaps,
    lost,
  }
}

function failed(lib: LibraryName, cfg: ContentionConfig, error: string): ContentionResult {
  const nan = Number.NaN
  return {
    lib,
    ...cfg,
    error,
    acquisitions: 0,
    acquisitionsPerSec: nan,
    handoffsPerSec: nan,
    waitP50Ms: nan,
    waitP99Ms: nan,
    jain: nan,
    clientRequestsPerAcq: nan,
    serverCallsPerAcq: nan,
    clientByCommand: {},
    serverByCommand: {},
    nodeCpuS: nan,
    redisCpuS: nan,
    failures: 0,
    overlaps: 0,
    lost: 0,
  }
}

export async function runContention(
  port: number,
  probe: ServerProbe,
  libs: readonly LibraryName[],
  configs: readonly ContentionConfig[],
  windowMs: number,
): Promise<{ section: Section; results: ContentionResult[] }> {
  const budgetMs = windowMs + 25_000
  const results: ContentionResult[] = []
  for (const cfg of configs) {
    for (const lib of libs) {
      try {
        results.push(await runOne(port, probe, lib, cfg, windowMs, budgetMs))
      } catch (err) {
        results.push(failed(lib, cfg, errorText(err)))
      }
    }
  }
  return { section: render(results, configs, windowMs, budgetMs, libs), results }
}

function render(
  results: ContentionResult[],
  configs: readonly ContentionConfig[],
  windowMs: number,
  budgetMs: number,
  libs: readonly LibraryName[],
): Section {
  const tables = configs.map((cfg) => {
    const rows = results.filter((r) => r.contenders === cfg.contenders && r.csMs === cfg.csMs)
    const peers = rows.filter((r) => isPeer(r.lib) && !r.error)
    const best = Math.max(...peers.map((r) => r.handoffsPerSec))
    const body = rows.map((r) =>
      r.error
        ? [r.lib, `ERROR: ${r.error}`, ...Array(11).fill('')]
        : [
            r.lib,
            fmt(r.handoffsPerSec, 1),
            Number.isFinite(best) && best > 0 ? fmt(r.handoffsPerSec / best, 2) : 'n/a',
            fmt(r.acquisitionsPerSec, 1),
            fmt(r.waitP50Ms, 2),
            fmt(r.waitP99Ms, 1),
            fmt(r.jain, 3),
            fmt(r.clientRequestsPerAcq, 2),
            fmt(r.serverCallsPerAcq, 2),
            fmt(r.nodeCpuS, 2),
            fmt(r.redisCpuS, 2),
            String(r.failures),
            `${r.overlaps}/${r.lost}`,
          ],
    )
    return `**${cfg.contenders} contenders, ${cfg.csMs} ms critical section**\n\n${table(
      [
        'library',
        'handoffs/s',
        '× best peer',
        'acq/s',
        'wait p50 ms',
        'wait p99 ms',
        'Jain',
        'client req/acq',
        'Redis calls/acq',
        'Node CPU s',
        'Redis CPU s',
        'failed acq',
        'overlaps/lost',
      ],
      body,
    )}`
  })
  const losers = libs.filter((l) => results.some((r) => r.lib === l && r.lost > 0))
  const lossNotes = losers.map((l) => {
    const n = results.filter((r) => r.lib === l).reduce((a, r) => a + r.lost, 0)
    const why =
      l === 'redlock5'
        ? ' (redlock 5.0.0-beta.2 dates the lease from the FIRST attempt of acquire(), so a lock that waited longer than about the lease arrives already expired by its own accounting and using() aborts its signal)'
        : ''
    return `${l} signalled ${n} held locks as lost across the configurations${why}.`
  })
  return {
    title: '3. Contention: N contenders on one key, two processes',
    notes: [
      `Window ${windowMs} ms; contenders split half/half over two processes, each process one client (one Locker).`,
      'Each contender loops acquire → critical section (0 ms: none; 1 ms: `setTimeout(1)`) → release.',
      'handoff = an acquisition whose holder differs from the previous acquisition (merged by hrtime across processes).',
      'wait = from calling acquire to it resolving. Jain over per-contender acquisition counts.',
      'client req/acq = requests sent by both processes (counted in ioredis, incl. SUBSCRIBE) / acquisitions; Redis calls/acq = INFO commandstats delta incl. script-internal calls.',
      'overlaps = an acquisition before the previous holder started releasing (must be 0); lost = loss signals from the library.',
      ...lossNotes,
      `Changed from defaults so waiters keep trying through the window (retry delays stay at default): ${libs
        .map((l) => `${l}: ${budgetNote(l, budgetMs)}`)
        .join('; ')}.`,
    ],
    tables,
  }
}
