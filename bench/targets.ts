// The targets of issue 3, checked against the measurements of async-redis-lock.
import { isPeer } from './adapters.js'
import { fmt, type Verdict } from './report.js'
import type { ContentionResult } from './scenarios/contention.js'
import type { HandoffResult } from './scenarios/handoff.js'
import type { HeldResult } from './scenarios/held.js'
import type { LibThroughput } from './scenarios/throughput.js'
import { oursOf, type WaitersResults } from './scenarios/waiters.js'

const OURS = 'async-redis-lock'

export function verdicts(data: Record<string, unknown>): Verdict[] {
  const out: Verdict[] = []
  const check = (target: string, measured: string, pass: boolean | undefined) =>
    out.push({ target, measured, pass })

  const unc = data.uncontended as LibThroughput[] | undefined
  if (unc) {
    const ours = unc.find((r) => r.lib === OURS && !r.error)
    const raw = unc.find((r) => r.lib === 'raw' && !r.error)
    const ratio = ours && raw ? ours.ratioToRaw : Number.NaN
    check(
      'uncontended cycles/s ≥ 0.95 × raw floor',
      `${fmt(ratio, 3)} × raw (${fmt(ours?.cyclesPerSec ?? Number.NaN, 0)} vs ${fmt(raw?.cyclesPerSec ?? Number.NaN, 0)})`,
      Number.isFinite(ratio) ? ratio >= 0.95 : undefined,
    )
  }

  const handoff = data.handoff as HandoffResult[] | undefined
  if (handoff) {
    const ho = handoff.find((r) => r.lib === OURS && !r.error)
    const floor = handoff.find((r) => r.lib === 'raw-pubsub' && !r.error)
    const ctx = (f: (r: HandoffResult) => number) => (floor ? ` (pub/sub floor ${fmt(f(floor), 3)} ms)` : '')
    check(
      'handoff p50 ≤ 1 ms',
      `${fmt(ho?.p50Ms ?? Number.NaN, 3)} ms${ctx((r) => r.p50Ms)}`,
      ho ? ho.p50Ms <= 1 : undefined,
    )
    check(
      'handoff p99 ≤ 5 ms',
      `${fmt(ho?.p99Ms ?? Number.NaN, 3)} ms${ctx((r) => r.p99Ms)}`,
      ho ? ho.p99Ms <= 5 : undefined,
    )
  }

  const cont = data.contention as ContentionResult[] | undefined
  if (cont) {
    const at = (n: number, cs: number) => cont.filter((r) => r.contenders === n && r.csMs === cs && !r.error)
    const rows = at(32, 1)
    const ours = rows.find((r) => r.lib === OURS)
    const peers = rows.filter((r) => isPeer(r.lib))
    const best = peers.reduce<ContentionResult | undefined>(
      (b, r) => (b === undefined || r.handoffsPerSec > b.handoffsPerSec ? r : b),
      undefined,
    )
    const ratio = ours && best ? ours.handoffsPerSec / best.handoffsPerSec : Number.NaN
    check(
      '32 contenders, 1 ms: handoffs/s ≥ 3 × best peer',
      `${fmt(ratio, 2)} × (${fmt(ours?.handoffsPerSec ?? Number.NaN, 1)} vs ${best?.lib ?? '–'} ${fmt(best?.handoffsPerSec ?? Number.NaN, 1)})`,
      Number.isFinite(ratio) ? ratio >= 3 : undefined,
    )
    check(
      '32 contenders, 1 ms: ≤ 6 Redis commands per acquisition (top-level requests)',
      fmt(ours?.clientRequestsPerAcq ?? Number.NaN, 2),
      ours ? ours.clientRequestsPerAcq <= 6 : undefined,
    )
    check(
      '… same, counting script-internal calls (INFO commandstats)',
      fmt(ours?.serverCallsPerAcq ?? Number.NaN, 2),
      ours ? ours.serverCallsPerAcq <= 6 : undefined,
    )
    for (const cs of [0, 1]) {
      const r = at(32, cs).find((x) => x.lib === OURS)
      check(
        `Jain ≥ 0.9 at 32 contenders, ${cs} ms`,
        fmt(r?.jain ?? Number.NaN, 3),
        r ? r.jain >= 0.9 : undefined,
      )
    }
  }

  const held = data.held as HeldResult[] | undefined
  if (held) {
    const ours = held.find((r) => r.lib === OURS && Number.isFinite(r.clientRequestsPerSec))
    const peers = held.filter((r) => isPeer(r.lib) && !r.error)
    const bestReq = Math.min(...peers.map((r) => r.clientRequestsPerSec))
    const bestCpu = Math.min(...peers.map((r) => r.nodeCpuS))
    const reqRatio = ours ? ours.clientRequestsPerSec / bestReq : Number.NaN
    const cpuRatio = ours ? ours.nodeCpuS / bestCpu : Number.NaN
    check(
      'held locks: client requests/s ≤ 1/20 of best peer',
      `${fmt(ours?.clientRequestsPerSec ?? Number.NaN, 1)}/s = ${fmt(reqRatio, 4)} × best peer (${fmt(bestReq, 1)}/s)`,
      Number.isFinite(reqRatio) ? reqRatio <= 1 / 20 : undefined,
    )
    check(
      'held locks: Node CPU ≤ 0.5 × best peer',
      `${fmt(ours?.nodeCpuS ?? Number.NaN, 3)} s = ${fmt(cpuRatio, 3)} × best peer (${fmt(bestCpu, 3)} s)`,
      Number.isFinite(cpuRatio) ? cpuRatio <= 0.5 : undefined,
    )
    check(
      'held locks: ≤ 1 KB heap per lock',
      `${fmt(ours?.heapBytesPerLock ?? Number.NaN, 0)} B`,
      ours ? ours.heapBytesPerLock <= 1024 : undefined,
    )
    const lost = ours ? ours.lostSignals + ours.lostReported + ours.missingKeys : Number.NaN
    check(
      'held locks: 0 lost',
      ours
        ? `${ours.lostSignals} signalled, ${ours.lostReported} reported, ${ours.missingKeys} keys missing`
        : '–',
      ours ? lost === 0 : undefined,
    )
  }

  const waiters = data.waiters as WaitersResults | undefined
  if (waiters) {
    const { held1, held5, loop, expiry } = oursOf(waiters)
    const peer = (processes: number) =>
      waiters.held.find((r) => r.lib === 'redis-semaphore' && r.processes === processes && !r.error)
    const heldRow = (r: typeof held1, processes: number, limit: number) => {
      const p = peer(processes)
      check(
        `waiters: 500 waiters in ${processes} process${processes === 1 ? '' : 'es'} on a held key: client requests/s ≤ ${limit}`,
        r
          ? `${fmt(r.requestsPerSec, 2)}/s (attempts ${fmt(r.attemptsPerSec, 2)}/s = ${fmt(r.attemptCommandsPerSec, 2)} attempt cmds/s)${
              p ? `; redis-semaphore ${fmt(p.requestsPerSec, 0)}/s` : ''
            }`
          : '–',
        r ? r.requestsPerSec <= limit : undefined,
      )
    }
    heldRow(held1, 1, 5)
    heldRow(held5, 5, 20)
    const maxPerAcq = loop ? loop.processes + 2 : Number.NaN
    check(
      `waiters: ${loop?.processes ?? 5} processes × ${loop ? loop.waiters / loop.processes : 20} looping: attempts per acquisition ≤ processes + 2`,
      loop
        ? `${fmt(loop.attemptsPerAcq, 2)} attempts/acq (${fmt(loop.attemptCommandsPerAcq, 2)} attempt cmds/acq) vs ≤ ${maxPerAcq}`
        : '–',
      loop ? loop.attemptsPerAcq <= maxPerAcq : undefined,
    )
    const maxBurst = expiry ? 2 * expiry.processes : Number.NaN
    check(
      `waiters: holder killed, ${expiry?.waiters ?? 500} waiters in ${expiry?.processes ?? 5} processes: attempts within 50 ms of the expiry ≤ 2 × processes`,
      expiry
        ? `worst of ${expiry.rounds.length}: ${expiry.maxAttempts50} attempts (${expiry.maxAttemptCommands50} attempt cmds), spread ${fmt(expiry.maxSpreadMs, 1)} ms vs ≤ ${maxBurst}`
        : '–',
      expiry ? expiry.maxAttempts50 <= maxBurst : undefined,
    )
  }
  return out
}
