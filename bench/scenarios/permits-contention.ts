// Scenario 8 (issue 13): N contenders on ONE semaphore key (`limit` permits), half in
// each of two worker processes, each holding ~csMs per permit; scenario 3's contenders
// and timeline, judged for a semaphore: never more than `limit` holders at once.
import { budgetNote, type Hold, type LibraryName } from '../adapters.js'
import { errorText } from '../child.js'
import type { ServerProbe } from '../redis.js'
import { fmt, type Section, table } from '../report.js'
import { jain, percentile, sumCounts } from '../stats.js'
import type { ContenderRecord, ContendersRun } from './contention.js'
import { runContenders } from './contention.js'
import { OURS, oursMutex, oursPermit, PEER, peerPermit, perCommand, pick, variantNotes } from './permits.js'

export interface PermitsContentionParams {
  readonly port: number
  readonly libs: readonly LibraryName[]
  readonly contenders: number
  readonly csMs: number
  readonly limit: number
  readonly windowMs: number
}

export interface PermitContentionResult {
  lib: LibraryName
  label: string
  hold: Hold
  error?: string
  /** Contender processes: 2 (half each), or 1 (every contender in one process). */
  processes?: 1 | 2
  contenders: number
  csMs: number
  acquisitions: number
  acquisitionsPerSec: number
  waitP50Ms: number
  waitP99Ms: number
  jain: number
  /** Most holders at once, from the merged timeline (must be ≤ the limit; 1 for the mutex). */
  maxHolders: number
  /** Time-weighted mean of holders at once over the window. */
  meanHolders: number
  clientRequestsPerAcq: number
  serverCallsPerAcq: number
  clientByCommand: Record<string, number>
  serverByCommand: Record<string, number>
  nodeCpuS: number
  redisCpuS: number
  failures: number
  lost: number
}

export async function runPermitsContention(
  probe: ServerProbe,
  p: PermitsContentionParams,
): Promise<{ section: Section; results: PermitContentionResult[] }> {
  const variants = pick([oursPermit(p.limit), peerPermit(p.limit), oursMutex], p.libs)
  // The same semaphores with every contender in one process (one Locker, one client).
  const single = pick([oursPermit(p.limit), peerPermit(p.limit)], p.libs).map((v) => ({
    ...v,
    label: `${v.label}, one process`,
  }))
  const runs = [
    ...variants.map((v) => ({ ...v, processes: 2 as const })),
    ...single.map((v) => ({ ...v, processes: 1 as const })),
  ]
  const budgetMs = p.windowMs + 25_000
  const results: PermitContentionResult[] = []
  for (const [i, v] of runs.entries()) {
    try {
      await probe.flush()
      const base = {
        port: p.port,
        lib: v.lib,
        hold: v.hold,
        key: `pc:${i}`,
        csMs: p.csMs,
        budgetMs,
        drainMs: 3000,
      }
      const run = await runContenders(probe, base, p.contenders, p.windowMs, v.processes)
      results.push({ ...summarize(v.lib, v.label, v.hold, p, run), processes: v.processes })
    } catch (err) {
      results.push({ ...failed(v.lib, v.label, v.hold, p, errorText(err)), processes: v.processes })
    }
  }
  const notes = `${variantNotes(variants)}; waiting budgets: ${[OURS, PEER]
    .filter((l) => p.libs.includes(l))
    .map((l) => `${l}: ${budgetNote(l, budgetMs)}`)
    .join('; ')}`
  return { section: render(p, results, notes), results }
}

function summarize(
  lib: LibraryName,
  label: string,
  hold: Hold,
  p: PermitsContentionParams,
  run: ContendersRun,
): PermitContentionResult {
  const { startAt, endAt, results, server } = run
  const waits: number[] = []
  const perContender: number[] = []
  /** +1 at an acquisition, −1 just before its release: the holders' timeline. */
  const edges: { at: bigint; d: number }[] = []
  const counts: Record<string, number> = {}
  const spanNs = Number(endAt - startAt)
  let heldNs = 0
  let failures = 0
  let lost = 0
  let cpuS = 0
  let acquisitions = 0
  for (const r of results) {
    for (const rec of r.records as ContenderRecord[]) {
      let n = 0
      rec.acquiredAt.forEach((at, i) => {
        const rel = rec.releasedAt[i] ?? endAt
        edges.push({ at, d: 1 }, { at: rel, d: -1 })
        // This hold's overlap with the window, in ns from its start.
        const from = Number(at - startAt)
        const to = Number(rel - startAt)
        heldNs += Math.max(0, Math.min(to, spanNs) - Math.max(from, 0))
        if (at < startAt || at > endAt) return
        n++
        waits.push(rec.waitMs[i] as number)
      })
      perContender.push(n)
      acquisitions += n
    }
    for (const [name, c] of Object.entries(r.counts as Record<string, number>))
      counts[name] = (counts[name] ?? 0) + c
    failures += r.failures as number
    lost += r.lost as number
    cpuS += r.cpuS as number
  }
  // Releases first at equal instants: a release stamped at t frees the permit for an acquisition at t.
  edges.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.d - b.d))
  let holders = 0
  let maxHolders = 0
  for (const e of edges) {
    holders += e.d
    if (holders > maxHolders) maxHolders = holders
  }
  if (acquisitions === 0)
    return failed(lib, label, hold, p, `no acquisition in the window (${failures} failed acquires)`)
  const seconds = p.windowMs / 1000
  return {
    lib,
    label,
    hold,
    contenders: p.contenders,
    csMs: p.csMs,
    acquisitions,
    acquisitionsPerSec: acquisitions / seconds,
    waitP50Ms: percentile(waits, 50),
    waitP99Ms: percentile(waits, 99),
    jain: jain(perContender),
    maxHolders,
    meanHolders: heldNs / spanNs,
    clientRequestsPerAcq: sumCounts(counts) / acquisitions,
    serverCallsPerAcq: server.calls / acquisitions,
    clientByCommand: counts,
    serverByCommand: server.byCommand,
    nodeCpuS: cpuS,
    redisCpuS: server.cpuSeconds,
    failures,
    lost,
  }
}

function failed(
  lib: LibraryName,
  label: string,
  hold: Hold,
  p: PermitsContentionParams,
  error: string,
): PermitContentionResult {
  const nan = Number.NaN
  return {
    lib,
    label,
    hold,
    error,
    contenders: p.contenders,
    csMs: p.csMs,
    acquisitions: 0,
    acquisitionsPerSec: nan,
    waitP50Ms: nan,
    waitP99Ms: nan,
    jain: nan,
    maxHolders: 0,
    meanHolders: nan,
    clientRequestsPerAcq: nan,
    serverCallsPerAcq: nan,
    clientByCommand: {},
    serverByCommand: {},
    nodeCpuS: nan,
    redisCpuS: nan,
    failures: 0,
    lost: 0,
  }
}

function render(p: PermitsContentionParams, results: PermitContentionResult[], notes: string): Section {
  // Each row against redis-semaphore's row with as many processes.
  const peerOf = (r: PermitContentionResult) =>
    results.find((x) => x.lib === PEER && x.hold.kind === 'semaphore' && x.processes === r.processes)
  const rows = results.map((r) => {
    const peer = peerOf(r)
    return r.error
      ? [r.label, `ERROR: ${r.error}`, ...Array(11).fill('')]
      : [
          r.label,
          fmt(r.acquisitionsPerSec, 1),
          peer ? fmt(r.acquisitionsPerSec / peer.acquisitionsPerSec, 2) : 'n/a',
          fmt(r.waitP50Ms, 2),
          fmt(r.waitP99Ms, 1),
          fmt(r.jain, 3),
          `${r.maxHolders} / ${fmt(r.meanHolders, 2)}`,
          fmt(r.clientRequestsPerAcq, 2),
          fmt(r.serverCallsPerAcq, 2),
          fmt(r.nodeCpuS, 2),
          fmt(r.redisCpuS, 2),
          `${r.failures}/${r.lost}`,
        ]
  })
  return {
    title: `8. Permit contention: ${p.contenders} contenders on one \`limit: ${p.limit}\` semaphore, ${p.csMs} ms held, two processes`,
    notes: [
      `Window ${p.windowMs} ms; contenders split half/half over two processes (one client, one Locker each), as in scenario 3; each loops acquire → \`setTimeout(${p.csMs})\` → release. Our mutex on one key runs the same loop for reference. Rows "one process": all ${p.contenders} contenders in one process (one client, one Locker), × the redis-semaphore row run the same way.`,
      'wait = from calling acquire to it resolving. Jain over per-contender acquisition counts.',
      `holders max / mean = most holders at once on the merged timeline (acquired … just before release; must be ≤ ${p.limit}, 1 for the mutex) / time-weighted mean over the window (${p.limit} = no permit ever idle).`,
      'client req/acq = requests sent by both processes (counted in ioredis, incl. SUBSCRIBE) / acquisitions; Redis calls/acq = INFO commandstats delta incl. script-internal calls.',
      `Rows: ${notes} (retry delays at default).`,
    ],
    tables: [
      table(
        [
          'row',
          'acq/s',
          '× redis-semaphore',
          'wait p50 ms',
          'wait p99 ms',
          'Jain',
          'holders max / mean',
          'client req/acq',
          'Redis calls/acq',
          'Node CPU s',
          'Redis CPU s',
          'failed/lost',
        ],
        rows,
      ),
      `**Per acquisition, per command**\n\n${table(
        ['row', 'client requests per acquisition', 'Redis calls per acquisition (script-internal included)'],
        results
          .filter((r) => !r.error)
          .map((r) => [
            r.label,
            perCommand(r.clientByCommand, r.acquisitions),
            perCommand(r.serverByCommand, r.acquisitions),
          ]),
      )}`,
    ],
  }
}
