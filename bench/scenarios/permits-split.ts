// Scenario 11 (issue 13): a counting semaphore on a quorum of 3 independent masters,
// under the split the issue describes. Limit 2; three holders, each of which reaches
// only two of the nodes — {1,2}, {1,3}, {2,3} — and acquires with a majority there.
// The partition is modelled per holder: its client for the node it cannot reach points
// at a closed loopback port (no offline queue, no reconnection), so every request to
// that node fails at once, as a partitioned node's requests fail after a timeout.
// Nothing else is faked: the three nodes are real redis-servers started for this
// scenario (bench/redis.ts) and stopped by PID.
import { Locker } from 'async-redis-lock'
import { Redis } from 'ioredis'
import { RedlockSemaphore } from 'redis-semaphore'
import type { LibraryName } from '../adapters.js'
import { errorText, finish, type Msg, sleep, startWorker } from '../child.js'
import { freePort, LOOPBACK, startRedis } from '../redis.js'
import { type Section, table } from '../report.js'
import type { WorkerIo } from '../worker.js'

interface SplitParams {
  readonly ports: readonly number[]
  readonly deadPort: number
  readonly limit: number
  readonly lifetimeMs: number
  readonly libs: readonly LibraryName[]
}

/** Node indices (0-based) each holder reaches: the issue's {1,2}, {1,3}, {2,3}. */
const REACH = [
  [0, 1],
  [0, 2],
  [1, 2],
] as const
const NAMES = ['A', 'B', 'C'] as const
const ACQUIRE_TIMEOUT_MS = 500

export interface SplitAttempt {
  holder: string
  reaches: string
  acquired: boolean
  error?: string
  ms: number
}

export interface SplitResult {
  limit: number
  peer?: {
    error?: string
    /** Under the split: each holder's attempt, in order. */
    split: SplitAttempt[]
    /** Holders still holding after one refresh interval (they refresh on their majority). */
    heldAfterRefresh: string[]
    /** Per node, which holders its sorted set lists at the end. */
    nodes: string[][]
    /** Same three holders with every node reachable: how many the library admits. */
    control: SplitAttempt[]
  }
  ours?: {
    error?: string
    /** `limit: 2` on the quorum (all nodes reachable): must reject before sending anything. */
    limitRejected: { code: string; message: string } | null
    /** `limit: 1` under the same split (allowed on a quorum): how many hold at once. */
    split1: SplitAttempt[]
    /** `shared: true` on the quorum (allowed): acquired at all? */
    shared: boolean
  }
}

const reachLabel = (r: readonly number[]) => `{${r.map((i) => i + 1).join(',')}}`

function live(port: number): Redis {
  const c = new Redis({ host: LOOPBACK, port })
  c.on('error', () => {})
  return c
}

/** A client for a node this holder cannot reach: every request fails at once. */
function unreachable(port: number): Redis {
  const c = new Redis({
    host: LOOPBACK,
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  })
  c.on('error', () => {})
  c.connect().catch(() => {})
  return c
}

export async function splitWorker(task: Msg, io: WorkerIo): Promise<void> {
  const p = task.params as SplitParams
  const clients: Redis[] = []
  const track = (c: Redis) => {
    clients.push(c)
    return c
  }
  const view = (reach: readonly number[]) =>
    p.ports.map((port, i) => track(reach.includes(i) ? live(port) : unreachable(p.deadPort)))
  const result: SplitResult = { limit: p.limit }
  try {
    if (p.libs.includes('redis-semaphore')) {
      try {
        result.peer = await peerSplit(p, view)
      } catch (err) {
        result.peer = { error: errorText(err), split: [], heldAfterRefresh: [], nodes: [], control: [] }
      }
    }
    if (p.libs.includes('async-redis-lock')) {
      try {
        result.ours = await oursSplit(p, view)
      } catch (err) {
        result.ours = { error: errorText(err), limitRejected: null, split1: [], shared: false }
      }
    }
  } finally {
    for (const c of clients) c.disconnect()
  }
  await io.send({ type: 'result', result, strays: io.strays })
}

async function attempt(holder: string, reaches: string, fn: () => Promise<boolean>): Promise<SplitAttempt> {
  const t0 = performance.now()
  try {
    const acquired = await fn()
    return { holder, reaches, acquired, ms: performance.now() - t0 }
  } catch (err) {
    return { holder, reaches, acquired: false, error: errorText(err), ms: performance.now() - t0 }
  }
}

async function peerSplit(p: SplitParams, view: (reach: readonly number[]) => Redis[]) {
  const options = {
    lockTimeout: p.lifetimeMs,
    acquireTimeout: ACQUIRE_TIMEOUT_MS,
    onLockLost: () => {},
  }
  const key = 'split'
  const holders = REACH.map((r) => new RedlockSemaphore(view(r), key, p.limit, options))
  const split: SplitAttempt[] = []
  for (const [i, s] of holders.entries())
    split.push(await attempt(NAMES[i] as string, reachLabel(REACH[i] ?? []), () => s.tryAcquire()))
  // One refresh interval (0.8 × lockTimeout) and a bit: the split holds, it is not a transient.
  await sleep(p.lifetimeMs)
  const heldAfterRefresh = holders.flatMap((s, i) => (s.isAcquired ? [NAMES[i] as string] : []))
  const names = new Map(holders.map((s, i) => [s.identifier, NAMES[i] as string]))
  const nodes: string[][] = []
  for (const port of p.ports) {
    const c = live(port)
    const members = (await c.zrange(`semaphore:${key}`, '0', '-1')) as string[]
    nodes.push(members.map((m) => names.get(m) ?? '?').sort())
    c.disconnect()
  }
  for (const s of holders) await s.release().catch(() => {})
  // Control: the same three holders with all three nodes reachable.
  const all = [0, 1, 2] as const
  const control: SplitAttempt[] = []
  const controlHolders = NAMES.map(() => new RedlockSemaphore(view(all), 'control', p.limit, options))
  for (const [i, s] of controlHolders.entries())
    control.push(await attempt(NAMES[i] as string, reachLabel(all), () => s.tryAcquire()))
  for (const s of controlHolders) await s.release().catch(() => {})
  return { split, heldAfterRefresh, nodes, control }
}

async function oursSplit(p: SplitParams, view: (reach: readonly number[]) => Redis[]) {
  const quorum = new Locker(view([0, 1, 2]), { lifetimeMs: p.lifetimeMs })
  let limitRejected: { code: string; message: string } | null = null
  try {
    const lock = await quorum.acquire('ours:split', { limit: p.limit })
    await lock.release()
  } catch (err) {
    const code = (err as { code?: unknown }).code
    limitRejected = { code: typeof code === 'string' ? code : 'none', message: errorText(err) }
  }
  const shared = await quorum.tryAcquire('ours:shared', { shared: true })
  await shared?.release()
  await quorum.close()
  const lockers = REACH.map((r) => new Locker(view(r), { lifetimeMs: p.lifetimeMs }))
  const split1: SplitAttempt[] = []
  const held: Awaited<ReturnType<Locker['acquire']>>[] = []
  for (const [i, locker] of lockers.entries()) {
    split1.push(
      await attempt(NAMES[i] as string, reachLabel(REACH[i] ?? []), async () => {
        const lock = await locker.tryAcquire('ours:split1', { limit: 1 })
        if (lock) held.push(lock)
        return lock !== null
      }),
    )
  }
  for (const lock of held) await lock.release().catch(() => {})
  for (const locker of lockers) await locker.close().catch(() => {})
  return { limitRejected, split1, shared: shared !== null }
}

export async function runPermitsSplit(
  libs: readonly LibraryName[],
  pin: boolean,
  limit: number,
  lifetimeMs: number,
): Promise<{ section: Section; results: SplitResult }> {
  const nodes = await Promise.all([0, 1, 2].map(() => startRedis(pin)))
  let result: SplitResult
  try {
    const deadPort = await freePort()
    const ports = nodes.map((n) => n.port)
    const worker = startWorker(
      { type: 'split', params: { ports, deadPort, limit, lifetimeMs, libs } },
      60_000,
    )
    try {
      const m = await worker.mailbox.next('result', 60_000)
      result = m.result as SplitResult
    } catch (err) {
      result = {
        limit,
        peer: { error: errorText(err), split: [], heldAfterRefresh: [], nodes: [], control: [] },
      }
    } finally {
      await finish(worker)
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop()))
  }
  return { section: render(result, lifetimeMs), results: result }
}

const count = (attempts: readonly SplitAttempt[]) => attempts.filter((a) => a.acquired).length

/** How many holders a side admitted under the split (NaN when it did not run). */
export function splitHolders(r: SplitResult): { peer: number; ours: number } {
  return {
    peer: r.peer && !r.peer.error ? count(r.peer.split) : Number.NaN,
    ours: r.ours && !r.ours.error ? count(r.ours.split1) : Number.NaN,
  }
}

function render(r: SplitResult, lifetimeMs: number): Section {
  const show = (a: SplitAttempt) =>
    a.acquired ? 'acquired' : a.error ? `refused (${a.error.slice(0, 160)})` : 'refused'
  const rows: string[][] = []
  if (r.peer) {
    if (r.peer.error) rows.push(['redis-semaphore RedlockSemaphore', `ERROR: ${r.peer.error}`, '', '', ''])
    else {
      rows.push([
        `redis-semaphore \`RedlockSemaphore\` limit ${r.limit}, split`,
        r.peer.split.map((a) => `${a.holder} ${a.reaches}: ${show(a)}`).join('; '),
        `**${count(r.peer.split)}**`,
        `still held after ${lifetimeMs} ms (refreshes): ${r.peer.heldAfterRefresh.join(', ') || 'none'}`,
        r.peer.nodes.map((n, i) => `node ${i + 1}: {${n.join(',')}}`).join('; '),
      ])
      rows.push([
        `redis-semaphore \`RedlockSemaphore\` limit ${r.limit}, no split (control)`,
        r.peer.control.map((a) => `${a.holder}: ${show(a)}`).join('; '),
        String(count(r.peer.control)),
        '',
        '',
      ])
    }
  }
  if (r.ours) {
    if (r.ours.error) rows.push(['async-redis-lock', `ERROR: ${r.ours.error}`, '', '', ''])
    else {
      rows.push([
        `async-redis-lock \`limit: ${r.limit}\` on the quorum`,
        r.ours.limitRejected
          ? `rejected before sending anything: ${r.ours.limitRejected.code}: ${r.ours.limitRejected.message}`
          : '**accepted** (expected a rejection)',
        r.ours.limitRejected ? '– (rejected)' : '?',
        '',
        '',
      ])
      rows.push([
        'async-redis-lock `limit: 1`, split (allowed on a quorum)',
        r.ours.split1.map((a) => `${a.holder} ${a.reaches}: ${show(a)}`).join('; '),
        String(count(r.ours.split1)),
        '',
        '',
      ])
    }
  }
  return {
    title: `11. Semaphore on a quorum of 3 under a split: limit ${r.limit}, holders reaching nodes {1,2}, {1,3}, {2,3}`,
    notes: [
      'Three real redis-servers (independent masters, started for this scenario). Each holder has its own three clients; the client for the node it cannot reach points at a closed loopback port with no offline queue and no reconnection, so its requests to that node fail at once (a partition, as the holder sees it). Holders acquire one after another: A, B, C.',
      `redis-semaphore: \`new RedlockSemaphore(clients, key, ${r.limit}, { lockTimeout: ${lifetimeMs}, acquireTimeout: ${ACQUIRE_TIMEOUT_MS}, onLockLost })\` + \`tryAcquire()\` (defaults otherwise: retryInterval 10 ms, refresh every 0.8 × lockTimeout). It counts holders per node and needs a majority of nodes below the limit.`,
      `async-redis-lock: \`new Locker(clients, { lifetimeMs: ${lifetimeMs} })\`; \`acquire(key, { limit: ${r.limit} })\` on the full quorum, then \`tryAcquire(key, { limit: 1 })\` under the same split (a permit of limit 1 is a majority mutex)${r.ours ? `; \`shared: true\` on the quorum: ${r.ours.shared ? 'acquired' : 'not acquired'}` : ''}.`,
    ],
    tables: [table(['case', 'attempts', 'holders at once', 'afterwards', 'node contents'], rows)],
  }
}
