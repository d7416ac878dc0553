// Scenario 10 (issue 13): 10,000 held permits (5,000 semaphore keys of `limit: 2`, both
// permits of each taken), every one its own lease kept alive by the library's own
// extension, against 10,000 held mutexes of ours and the same permits held with
// redis-semaphore's Semaphore. Scenario 5's holder process, in interleaved rounds.
import type { LibraryName } from '../adapters.js'
import { errorText } from '../child.js'
import type { Hold } from '../lock-adapter.js'
import type { ServerProbe } from '../redis.js'
import { fmt, type Section, table } from '../report.js'
import { type HeldResult, measureHeld } from './held.js'
import {
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

export interface PermitsHeldParams {
  readonly port: number
  readonly libs: readonly LibraryName[]
  /** Holders in all (permits, shared holders or mutexes). */
  readonly count: number
  /** Semaphore limit = holders per key for the permit and shared rows. */
  readonly perKey: number
  readonly holdMs: number
  readonly lifetimeMs: number
  readonly rounds: number
}

export interface PermitHeldResult {
  lib: LibraryName
  label: string
  hold: Hold
  keys: number
  error?: string
  rounds: HeldResult[]
  /** Means over rounds (rates per second of the hold window). */
  nodeCpuMsPerSec: number
  redisCpuMsPerSec: number
  clientRequestsPerSec: number
  serverCallsPerSec: number
  heapBytesPerLock: number
  acquireSeconds: number
  /** Summed over rounds: must be 0. */
  lostSignals: number
  lostReported: number
  missingKeys: number
  /** Redis calls per second per command (mean over rounds), script-internal calls included. */
  serverPerSec: Record<string, number>
  /** Median over rounds of this row ÷ our 10,000 mutexes in the same round. */
  nodeCpuToMutex: number
  redisCpuToMutex: number
}

export async function runPermitsHeld(
  probe: ServerProbe,
  p: PermitsHeldParams,
): Promise<{ section: Section; results: PermitHeldResult[] }> {
  const variants = pick([oursPermit(p.perKey), oursMutex, oursShared, peerPermit(p.perKey)], p.libs)
  const rounds = new Map<string, HeldResult[]>(variants.map((v) => [v.label, []]))
  const errors = new Map<string, string>()
  for (let r = 0; r < p.rounds; r++) {
    for (const [i, v] of variants.entries()) {
      if (errors.has(v.label)) continue
      try {
        const res = await measureHeld(probe, {
          port: p.port,
          lib: v.lib,
          count: p.count,
          holdMs: p.holdMs,
          lifetimeMs: p.lifetimeMs,
          hold: v.hold,
          perKey: v.hold.kind === 'exclusive' ? 1 : p.perKey,
          prefix: `hp:${i}`,
        })
        if (res.error) errors.set(v.label, res.error)
        rounds.get(v.label)?.push(res)
      } catch (err) {
        errors.set(v.label, errorText(err))
      }
    }
  }
  const seconds = p.holdMs / 1000
  const mutexRounds = rounds.get(oursMutex.label) ?? []
  const results: PermitHeldResult[] = variants.map((v) => {
    const rs = rounds.get(v.label) ?? []
    const error = errors.get(v.label)
    const mean = (f: (r: HeldResult) => number) => rs.reduce((a, r) => a + f(r), 0) / rs.length
    const sum = (f: (r: HeldResult) => number) => rs.reduce((a, r) => a + f(r), 0)
    return {
      lib: v.lib,
      label: v.label,
      hold: v.hold,
      keys: v.hold.kind === 'exclusive' ? p.count : Math.ceil(p.count / p.perKey),
      ...(error === undefined ? {} : { error }),
      rounds: rs,
      nodeCpuMsPerSec: mean((r) => (r.nodeCpuS * 1000) / seconds),
      redisCpuMsPerSec: mean((r) => (r.redisCpuS * 1000) / seconds),
      clientRequestsPerSec: mean((r) => r.clientRequestsPerSec),
      serverCallsPerSec: mean((r) => r.serverCallsPerSec),
      heapBytesPerLock: mean((r) => r.heapBytesPerLock),
      acquireSeconds: mean((r) => r.acquireSeconds),
      lostSignals: sum((r) => r.lostSignals),
      lostReported: sum((r) => r.lostReported),
      missingKeys: sum((r) => r.missingKeys),
      serverPerSec: meanByCommand(rs, seconds),
      nodeCpuToMutex: roundRatio(rs, mutexRounds, (r) => r.nodeCpuS),
      redisCpuToMutex: roundRatio(rs, mutexRounds, (r) => r.redisCpuS),
    }
  })
  return { section: render(p, results, variantNotes(variants)), results }
}

function meanByCommand(rounds: readonly HeldResult[], seconds: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of rounds)
    for (const [name, n] of Object.entries(r.serverByCommand ?? {}))
      out[name] = (out[name] ?? 0) + n / seconds / rounds.length
  return out
}

function render(p: PermitsHeldParams, results: PermitHeldResult[], notes: string): Section {
  const peer = rowOf(results, PEER, 'semaphore')
  const rows = results.map((r) =>
    r.rounds.length === 0
      ? [r.label, `ERROR: ${r.error ?? 'no round'}`, ...Array(11).fill('')]
      : [
          r.error ? `${r.label} (${r.error})` : r.label,
          r.keys.toLocaleString('en-US'),
          fmt(r.nodeCpuMsPerSec, 1),
          fmt(r.nodeCpuToMutex, 2),
          peer ? fmt(r.nodeCpuMsPerSec / peer.nodeCpuMsPerSec, 3) : 'n/a',
          fmt(r.redisCpuMsPerSec, 1),
          fmt(r.redisCpuToMutex, 2),
          peer ? fmt(r.redisCpuMsPerSec / peer.redisCpuMsPerSec, 3) : 'n/a',
          fmt(r.clientRequestsPerSec, 1),
          fmt(r.serverCallsPerSec, 1),
          fmt(r.heapBytesPerLock, 0),
          `${r.lostSignals}/${r.lostReported}/${r.missingKeys}`,
        ],
  )
  const mutex = rowOf(results, OURS, 'exclusive')
  return {
    title: `10. ${p.count.toLocaleString('en-US')} held permits for ${p.holdMs / 1000} s, ${p.lifetimeMs} ms lease: ${Math.ceil(p.count / p.perKey).toLocaleString('en-US')} keys of \`limit: ${p.perKey}\`, every permit taken`,
    notes: [
      `Each row in its own process (scenario 5's holder), holders acquired 100 at a time, then held; ${p.rounds} interleaved round${p.rounds === 1 ? '' : 's'} (every row once per round); values are means over rounds, rates over the hold window only.`,
      `Permit and shared rows: ${p.count.toLocaleString('en-US')} holders on ${Math.ceil(p.count / p.perKey).toLocaleString('en-US')} keys, ${p.perKey} per key (a semaphore of limit ${p.perKey} held full, each holder its own token and lease); the mutex row: ${p.count.toLocaleString('en-US')} keys.${mutex ? '' : ' (our mutex row did not run: no ratios.)'}`,
      `CPU ms/s = CPU time per second of the hold window: Node = process.cpuUsage() of the holding process, Redis = INFO used_cpu_user + used_cpu_sys. × our mutexes = median over rounds of the ratio to our ${p.count.toLocaleString('en-US')} mutexes in the same round.`,
      'client req/s = requests the library sent (counted in ioredis); Redis calls/s = INFO commandstats delta incl. script-internal calls; heap B/holder as scenario 5.',
      'lost = holders whose loss the library signalled / losses it reported / lock keys gone from Redis at the end of the window (all must be 0).',
      `Rows: ${notes}; auto-extension at each library’s default schedule for this lease.`,
    ],
    tables: [
      table(
        [
          'row',
          'keys',
          'Node CPU ms/s',
          '× our mutexes',
          '× redis-semaphore',
          'Redis CPU ms/s',
          '× our mutexes',
          '× redis-semaphore',
          'client req/s',
          'Redis calls/s',
          'heap B/holder',
          'lost',
        ],
        rows,
      ),
      `**Redis calls per second per 1,000 holders, per command (script-internal included)**\n\n${table(
        ['row', 'Redis calls/s per 1,000 holders'],
        results
          .filter((r) => r.rounds.length > 0)
          .map((r) => [r.label, perCommand(r.serverPerSec, p.count / 1000)]),
      )}`,
    ],
  }
}
