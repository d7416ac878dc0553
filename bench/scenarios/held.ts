// Scenario 5: many locks held at once, leases kept alive by each library's own
// extension mechanism. Measures what holding costs: Redis load, client requests,
// Node CPU and heap per held lock, and whether any lock was lost.
import { connectClient, createAdapter, type Held, type Hold, isPeer, type LibraryName } from '../adapters.js'
import { errorText, finish, type Msg, sleep, startWorker, within } from '../child.js'
import { clientCounts, excludeFromCounting, installCounting } from '../counting.js'
import { type ServerProbe, serverDelta } from '../redis.js'
import { fmt, type Section, table } from '../report.js'
import { diffCounts, sumCounts } from '../stats.js'
import type { WorkerIo } from '../worker.js'

export interface HeldParams {
  readonly port: number
  readonly lib: LibraryName
  readonly count: number
  readonly holdMs: number
  readonly lifetimeMs: number
  /** How the keys are held (issue 13); undefined = exclusive. */
  readonly hold?: Hold | undefined
  /** Holders per key (issue 13: permits of a semaphore, shared holders); default 1. */
  readonly perKey?: number | undefined
  /** Key prefix; default `h:<lib>`. */
  readonly prefix?: string | undefined
}

export interface HeldResult {
  lib: LibraryName
  error?: string
  acquireSeconds: number
  serverCallsPerSec: number
  clientRequestsPerSec: number
  clientByCommand: Record<string, number>
  /** INFO commandstats delta per command over the hold window, script-internal calls included. */
  serverByCommand: Record<string, number>
  nodeCpuS: number
  redisCpuS: number
  heapBytesPerLock: number
  lostSignals: number
  lostReported: number
  missingKeys: number
}

const CONCURRENCY = 100

/** Runs `fn` over 0..count-1 with at most CONCURRENCY in flight. */
async function pool(count: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async () => {
    while (next < count) await fn(next++)
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, lane))
}

function heapAfterGc(): number {
  // Two passes: the first may only schedule finalizers whose objects the second frees.
  globalThis.gc?.()
  globalThis.gc?.()
  return process.memoryUsage().heapUsed
}

export async function heldWorker(task: Msg, io: WorkerIo): Promise<void> {
  const p = task.params as HeldParams
  installCounting()
  const adapter = await createAdapter(p.lib, {
    port: p.port,
    lifetimeMs: p.lifetimeMs,
    selfExtend: true,
    hold: p.hold,
  })
  const checker = await connectClient(p.port)
  excludeFromCounting(checker)
  const prefix = p.prefix ?? `h:${p.lib}`
  for (let i = 0; i < 50; i++) await adapter.release(await adapter.acquire(`${prefix}:warm`))
  const perKey = p.perKey ?? 1
  // With several holders per key, holder i holds key ⌊i / perKey⌋.
  const keys = Array.from({ length: p.count }, (_, i) => `${prefix}:${Math.floor(i / perKey)}`)
  const held: Held[] = new Array(p.count)
  await sleep(100)
  const heap0 = heapAfterGc()
  const t0 = performance.now()
  await pool(p.count, async (i) => {
    held[i] = await adapter.acquire(keys[i] as string)
  })
  const acquireSeconds = (performance.now() - t0) / 1000
  const heap1 = heapAfterGc()

  await io.send({ type: 'hold-start' })
  const c0 = clientCounts()
  const cpu0 = process.cpuUsage()
  await sleep(p.holdMs)
  const cpu = process.cpuUsage(cpu0)
  const byCommand = diffCounts(c0, clientCounts())
  await io.send({ type: 'hold-end' })
  // Again after the hold: what a library allocates per lock later (e.g. at its first
  // extension) counts too.
  const heap2 = heapAfterGc()

  let missingKeys = 0
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000).map((k) => adapter.redisKey(k))
    missingKeys += batch.length - ((await checker.exists(...batch)) as number)
  }
  const lostSignals = held.filter((h) => adapter.isLost(h)).length
  const lostReported = adapter.lost()
  await within(
    pool(p.count, async (i) => adapter.release(held[i] as Held)),
    30_000,
    'releasing all',
  ).catch(() => {})
  await within(adapter.close(), 5000, 'close').catch(() => {})
  checker.disconnect()
  await io.send({
    type: 'result',
    acquireSeconds,
    heapBytesPerLock: (Math.max(heap1, heap2) - heap0) / p.count,
    byCommand,
    nodeCpuS: (cpu.user + cpu.system) / 1e6,
    lostSignals,
    lostReported,
    missingKeys,
    strays: io.strays,
  })
}

/** Holds `p.count` locks in one worker process and measures the hold window. */
export async function measureHeld(probe: ServerProbe, p: HeldParams): Promise<HeldResult> {
  await probe.flush()
  const worker = startWorker({ type: 'held', params: p }, p.holdMs + 120_000)
  try {
    await worker.mailbox.next('hold-start', 90_000)
    const s0 = await probe.snapshot()
    await worker.mailbox.next('hold-end', p.holdMs + 30_000)
    const server = serverDelta(s0, await probe.snapshot())
    const r = await worker.mailbox.next('result', 60_000)
    const seconds = p.holdMs / 1000
    const byCommand = r.byCommand as Record<string, number>
    const strays = r.strays as string[]
    return {
      lib: p.lib,
      ...(strays.length > 0 ? { error: `unhandled: ${strays[0]}` } : {}),
      acquireSeconds: r.acquireSeconds as number,
      serverCallsPerSec: server.calls / seconds,
      clientRequestsPerSec: sumCounts(byCommand) / seconds,
      clientByCommand: byCommand,
      serverByCommand: server.byCommand,
      nodeCpuS: r.nodeCpuS as number,
      redisCpuS: server.cpuSeconds,
      heapBytesPerLock: r.heapBytesPerLock as number,
      lostSignals: r.lostSignals as number,
      lostReported: r.lostReported as number,
      missingKeys: r.missingKeys as number,
    }
  } finally {
    await finish(worker)
  }
}

export async function runHeld(
  port: number,
  probe: ServerProbe,
  libs: readonly LibraryName[],
  count: number,
  holdMs: number,
  lifetimeMs: number,
): Promise<{ section: Section; results: HeldResult[] }> {
  const results: HeldResult[] = []
  for (const lib of libs) {
    try {
      results.push(await measureHeld(probe, { port, lib, count, holdMs, lifetimeMs }))
    } catch (err) {
      const nan = Number.NaN
      results.push({
        lib,
        error: errorText(err),
        acquireSeconds: nan,
        serverCallsPerSec: nan,
        clientRequestsPerSec: nan,
        clientByCommand: {},
        serverByCommand: {},
        nodeCpuS: nan,
        redisCpuS: nan,
        heapBytesPerLock: nan,
        lostSignals: 0,
        lostReported: 0,
        missingKeys: 0,
      })
    }
  }
  const peers = results.filter((r) => isPeer(r.lib) && !r.error)
  const bestReq = Math.min(...peers.map((r) => r.clientRequestsPerSec))
  const bestCpu = Math.min(...peers.map((r) => r.nodeCpuS))
  const rows = results.map((r) =>
    r.error && !Number.isFinite(r.serverCallsPerSec)
      ? [r.lib, `ERROR: ${r.error}`, ...Array(10).fill('')]
      : [
          r.error ? `${r.lib} (${r.error})` : r.lib,
          fmt(r.clientRequestsPerSec, 1),
          Number.isFinite(bestReq) ? fmt(r.clientRequestsPerSec / bestReq, 4) : 'n/a',
          fmt(r.serverCallsPerSec, 1),
          fmt(r.nodeCpuS, 3),
          Number.isFinite(bestCpu) ? fmt(r.nodeCpuS / bestCpu, 3) : 'n/a',
          fmt(r.redisCpuS, 3),
          fmt(r.heapBytesPerLock, 0),
          fmt(r.acquireSeconds, 2),
          `${r.lostSignals}/${r.lostReported}`,
          String(r.missingKeys),
        ],
  )
  return {
    section: {
      title: `5. ${count.toLocaleString('en-US')} held locks for ${holdMs / 1000} s, ${lifetimeMs} ms lease`,
      notes: [
        'Each library in its own process; locks acquired 100 at a time, then held; rates are over the hold window only.',
        'client req/s = requests the library sent (counted in ioredis); Redis calls/s = INFO commandstats delta incl. script-internal calls.',
        'Node CPU = process.cpuUsage() (user + system) of the holding process over the window; heap/lock = (heapUsed after acquiring all, or at the end of the hold if higher, − before) / count, each after forced GC.',
        'lost = locks whose loss the library signalled / losses it reported; missing keys = lock keys gone from Redis at the end of the window (both must be 0).',
        'Auto-extension at each library’s default schedule for this lease; redlock4 has none, so the bench extends it 500 ms before expiry (as redlock5’s using() does).',
      ],
      tables: [
        table(
          [
            'library',
            'client req/s',
            '× best peer',
            'Redis calls/s',
            'Node CPU s',
            'CPU × best peer',
            'Redis CPU s',
            'heap B/lock',
            'acquire all s',
            'lost signalled/reported',
            'missing keys',
          ],
          rows,
        ),
      ],
    },
    results,
  }
}
