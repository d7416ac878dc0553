// The targets of issue 3, checked against the measurements of async-redis-lock.
import { isPeer } from './adapters.js'
import { fmt, type Verdict } from './report.js'
import type { ContentionResult } from './scenarios/contention.js'
import type { HandoffResult } from './scenarios/handoff.js'
import type { HeldResult } from './scenarios/held.js'
import { rowOf } from './scenarios/permits.js'
import type { PermitContentionResult } from './scenarios/permits-contention.js'
import type { PermitHandoffResult } from './scenarios/permits-handoff.js'
import type { PermitHeldResult } from './scenarios/permits-held.js'
import type { SplitResult } from './scenarios/permits-split.js'
import { splitHolders } from './scenarios/permits-split.js'
import type { PermitThroughput } from './scenarios/permits-uncontended.js'
import type { LibThroughput } from './scenarios/throughput.js'
import { oursOf, type WaitersResults } from './scenarios/waiters.js'

const OURS = 'async-redis-lock'

export function verdicts(data: Record<string, unknown>): Verdict[] {
  const out: Verdict[] = []
  const check = (target: string, measured: string, pass: boolean | undefined) =>
    out.push({ target, measured, pass })

  /** Checks our cycles/s against the raw floor of the same rows; returns both rows. */
  const versusRaw = (rows: LibThroughput[], target: string, atLeast: number) => {
    const ours = rows.find((r) => r.lib === OURS && !r.error)
    const raw = rows.find((r) => r.lib === 'raw' && !r.error)
    const ratio = ours && raw ? ours.ratioToRaw : Number.NaN
    check(
      `${target}cycles/s ≥ ${atLeast} × raw floor`,
      `${fmt(ratio, 3)} × raw (${fmt(ours?.cyclesPerSec ?? Number.NaN, 0)} vs ${fmt(raw?.cyclesPerSec ?? Number.NaN, 0)})`,
      Number.isFinite(ratio) ? ratio >= atLeast : undefined,
    )
    return { ours, raw }
  }

  const unc = data.uncontended as LibThroughput[] | undefined
  if (unc) versusRaw(unc, 'uncontended ', 0.95)

  // Issue 14: 64 loops on one Locker beat the raw floor by coalescing a tick's writes.
  const conc = data.concurrent as LibThroughput[] | undefined
  if (conc) {
    const { ours, raw } = versusRaw(conc, '64 concurrent loops: ', 1.3)
    const cpu = ours && raw ? ours.nodeCpuUsPerCycle / raw.nodeCpuUsPerCycle : Number.NaN
    check(
      '64 concurrent loops: Node CPU per cycle ≤ 0.9 × raw floor',
      `${fmt(cpu, 2)} × raw (${fmt(ours?.nodeCpuUsPerCycle ?? Number.NaN, 1)} vs ${fmt(raw?.nodeCpuUsPerCycle ?? Number.NaN, 1)} µs)`,
      Number.isFinite(cpu) ? cpu <= 0.9 : undefined,
    )
    const peers = conc.filter((r) => isPeer(r.lib) && !r.error)
    const best = peers.reduce<LibThroughput | undefined>(
      (b, r) => (b && b.cyclesPerSec >= r.cyclesPerSec ? b : r),
      undefined,
    )
    check(
      '64 concurrent loops: ahead of every peer',
      best
        ? `${fmt((ours?.cyclesPerSec ?? Number.NaN) / best.cyclesPerSec, 3)} × the best peer (${best.lib})`
        : 'no peer measured',
      ours && best ? ours.cyclesPerSec > best.cyclesPerSec : undefined,
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
  permitVerdicts(data, check)
  return out
}

type Check = (target: string, measured: string, pass: boolean | undefined) => void
const PEER = 'redis-semaphore'
const nan = Number.NaN
const known = (x: number) => (Number.isFinite(x) ? true : undefined)

/** Issue 13: semaphores and shared locks (scenarios 7–11). */
function permitVerdicts(data: Record<string, unknown>, check: Check): void {
  const unc = data['permits-uncontended'] as PermitThroughput[] | undefined
  if (unc) {
    const ours = rowOf(unc, OURS, 'semaphore')
    const peer = rowOf(unc, PEER, 'semaphore')
    const ratio = ours?.ratioToPeer ?? nan
    check(
      'uncontended permit cycle: cycles/s ahead of redis-semaphore Semaphore',
      `${fmt(ratio, 3)} × (${fmt(ours?.cyclesPerSec ?? nan, 0)} vs ${fmt(peer?.cyclesPerSec ?? nan, 0)} cycles/s)`,
      known(ratio) && ratio > 1,
    )
    const mutex = rowOf(unc, OURS, 'exclusive')
    const c = mutex?.clientPerCycle ?? {}
    const set = c.set ?? 0
    const evalsha = c.evalsha ?? 0
    const total = mutex?.clientRequestsPerCycle ?? nan
    check(
      'uncontended mutex unchanged: one SET NX PX + one release script per cycle',
      mutex ? `${fmt(set, 2)} SET + ${fmt(evalsha, 2)} EVALSHA = ${fmt(total, 2)} requests/cycle` : '–',
      mutex
        ? Math.abs(set - 1) < 0.01 && Math.abs(evalsha - 1) < 0.01 && Math.abs(total - 2) < 0.01
        : undefined,
    )
  }

  const cont = data['permits-contention'] as PermitContentionResult[] | undefined
  if (cont) {
    const ours = rowOf(cont, OURS, 'semaphore')
    const peer = rowOf(cont, PEER, 'semaphore')
    const ratio = ours && peer ? ours.acquisitionsPerSec / peer.acquisitionsPerSec : nan
    const n = ours?.contenders ?? peer?.contenders ?? 32
    const limit = ours?.hold.kind === 'semaphore' ? ours.hold.limit : 4
    check(
      `${n} contenders on limit ${limit}: acquisitions/s ahead of redis-semaphore`,
      `${fmt(ratio, 2)} × (${fmt(ours?.acquisitionsPerSec ?? nan, 1)} vs ${fmt(peer?.acquisitionsPerSec ?? nan, 1)})`,
      known(ratio) && ratio > 1,
    )
    const one = (lib: string) => cont.find((r) => r.lib === lib && r.processes === 1 && !r.error)
    const [ours1, peer1] = [one(OURS), one(PEER)]
    if (ours1 && peer1) {
      const r1 = ours1.acquisitionsPerSec / peer1.acquisitionsPerSec
      check(
        `${n} contenders on limit ${limit} in one process: acquisitions/s ahead of redis-semaphore`,
        `${fmt(r1, 2)} × (${fmt(ours1.acquisitionsPerSec, 1)} vs ${fmt(peer1.acquisitionsPerSec, 1)}), Jain ${fmt(ours1.jain, 3)}`,
        r1 > 1,
      )
    }
    check(
      `${n} contenders on limit ${limit}: Jain ≥ 0.9`,
      `${fmt(ours?.jain ?? nan, 3)} (redis-semaphore ${fmt(peer?.jain ?? nan, 3)})`,
      ours ? ours.jain >= 0.9 : undefined,
    )
    check(
      `${n} contenders on limit ${limit}: never more than ${limit} holders at once, none lost`,
      ours ? `max ${ours.maxHolders} at once, ${ours.lost} lost, ${ours.failures} failed` : '–',
      ours ? ours.maxHolders <= limit && ours.lost === 0 && ours.failures === 0 : undefined,
    )
  }

  const ho = data['permits-handoff'] as PermitHandoffResult[] | undefined
  if (ho) {
    const ours = rowOf(ho, OURS, 'semaphore')
    const mutex = rowOf(ho, OURS, 'exclusive')
    const peer = rowOf(ho, PEER, 'semaphore')
    const toMutex = ours && mutex ? ours.p50Ms / mutex.p50Ms : nan
    check(
      'permit handoff p50 ≤ 1.2 × our mutex handoff p50 (same run)',
      `${fmt(toMutex, 3)} × (${fmt(ours?.p50Ms ?? nan, 3)} vs ${fmt(mutex?.p50Ms ?? nan, 3)} ms; per-round median ${fmt(ours?.p50ToMutex ?? nan, 3)} ×)`,
      known(toMutex) && toMutex <= 1.2,
    )
    const toPeer = ours && peer ? ours.p50Ms / peer.p50Ms : nan
    check(
      'permit handoff p50 ahead of redis-semaphore',
      `${fmt(ours?.p50Ms ?? nan, 3)} vs ${fmt(peer?.p50Ms ?? nan, 3)} ms (p99 ${fmt(ours?.p99Ms ?? nan, 2)} vs ${fmt(peer?.p99Ms ?? nan, 2)})`,
      known(toPeer) && toPeer < 1,
    )
  }

  const held = data['permits-held'] as PermitHeldResult[] | undefined
  if (held) {
    const ours = rowOf(held, OURS, 'semaphore')
    const peer = rowOf(held, PEER, 'semaphore')
    const mutex = rowOf(held, OURS, 'exclusive')
    for (const [what, f, toMutex] of [
      ['Node CPU', (r: PermitHeldResult) => r.nodeCpuMsPerSec, (r: PermitHeldResult) => r.nodeCpuToMutex],
      ['Redis CPU', (r: PermitHeldResult) => r.redisCpuMsPerSec, (r: PermitHeldResult) => r.redisCpuToMutex],
    ] as const) {
      const ratio = ours && mutex ? toMutex(ours) : nan
      check(
        `10,000 held permits: ${what} ≤ 1.5 × 10,000 held mutexes`,
        `${fmt(ratio, 2)} × (${fmt(ours ? f(ours) : nan, 1)} vs ${fmt(mutex ? f(mutex) : nan, 1)} ms/s)`,
        known(ratio) && ratio <= 1.5,
      )
      const toPeer = ours && peer ? f(ours) / f(peer) : nan
      check(
        `10,000 held permits: ${what} ahead of redis-semaphore`,
        `${fmt(toPeer, 3)} × (${fmt(ours ? f(ours) : nan, 1)} vs ${fmt(peer ? f(peer) : nan, 1)} ms/s)`,
        known(toPeer) && toPeer < 1,
      )
    }
    const lost = ours ? ours.lostSignals + ours.lostReported + ours.missingKeys : nan
    check(
      '10,000 held permits: 0 lost',
      ours
        ? `${ours.lostSignals} signalled, ${ours.lostReported} reported, ${ours.missingKeys} keys missing`
        : '–',
      ours ? lost === 0 : undefined,
    )
  }

  const split = data['permits-split'] as SplitResult | undefined
  if (split?.ours) {
    const { peer, ours } = splitHolders(split)
    const rejected = split.ours.limitRejected?.code === 'ERR_LOCK_INVALID_ARGUMENT'
    check(
      `quorum of 3, limit ${split.limit}, split {1,2} {1,3} {2,3}: never more than the limit (ours rejects limit > 1 on a quorum)`,
      `ours: limit ${split.limit} ${rejected ? 'rejected (ERR_LOCK_INVALID_ARGUMENT)' : 'NOT rejected'}, limit 1 under the split: ${fmt(ours, 0)} holder(s); redis-semaphore RedlockSemaphore: ${fmt(peer, 0)} holders at once`,
      split.ours.error ? undefined : rejected && ours <= 1,
    )
  }
}
