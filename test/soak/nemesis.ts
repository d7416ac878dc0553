import { setTimeout as sleep } from 'node:timers/promises'
import { killQuietly } from '../helpers/cleanup.js'
import type { FaultProxy } from '../helpers/proxy.js'
import type { RedisServer } from '../helpers/redis-server.js'
import { withTimeout } from '../helpers/wait.js'
import type { Cell, Slot } from './cell.js'
import { monoMs } from './log.js'
import type { Rng } from './prng.js'

/**
 * The faults of issue 4. `worker-pause` and `redis-restart` only in the phase that
 * allows them; `node-pause` and `node-restart` hit one node of a quorum.
 */
export type FaultKind =
  | 'redis-pause'
  | 'worker-kill'
  | 'proxy-delay'
  | 'proxy-blackhole'
  | 'drop-replies'
  | 'reset-after-request'
  | 'pubsub-kill'
  | 'worker-pause'
  | 'redis-restart'
  | 'node-pause'
  | 'node-restart'

/** One planned fault. Targets are drawn now but resolved against the holders at run time. */
export interface Fault {
  /** Offset from the start of the load window, ms. */
  at: number
  kind: FaultKind
  /** How long the fault lasts before it is healed, ms (0 for instant ones). */
  durationMs: number
  /** Multiple of the lease, for pauses. */
  factor?: number
  /** Proxy delay per direction, ms. */
  delayMs?: number
  /** How many proxies a delay hits. */
  spread?: number
  /** A draw used to choose among the workers (holders first) when the fault fires. */
  pick: number
}

/** Cards per kind in one deck: redis pauses once per factor, holder pauses thrice. */
const CARDS: Record<FaultKind, number> = {
  'redis-pause': 3,
  'worker-kill': 1,
  'proxy-delay': 1,
  'proxy-blackhole': 1,
  'drop-replies': 1,
  'reset-after-request': 1,
  'pubsub-kill': 1,
  'worker-pause': 3,
  'redis-restart': 0,
  'node-pause': 3,
  'node-restart': 2,
}
const REDIS_PAUSE_FACTORS = [0.3, 1, 3]

/** A shuffled deck holding every kind: each deck played covers every fault once. */
function deck(
  rng: Rng,
  kinds: readonly FaultKind[],
  weights: Partial<Record<FaultKind, number>>,
): FaultKind[] {
  const cards = kinds.flatMap((k) => Array.from({ length: weights[k] ?? CARDS[k] }, () => k))
  for (let i = cards.length - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    ;[cards[i], cards[j]] = [cards[j] as FaultKind, cards[i] as FaultKind]
  }
  return cards
}

/**
 * Plans the faults of one phase from the seeded stream: one fault at a time, a quiet
 * gap after each so recovery is part of what is measured. Kinds are dealt from
 * shuffled decks, so a phase sees every kind (and every Redis pause factor) before
 * any repeats. A restart (outside the safety contract) happens once, at 50 to 70 %.
 */
export function planFaults(
  rng: Rng,
  kinds: readonly FaultKind[],
  windowMs: number,
  lifetimeMs: number,
  /** Cards per kind where a phase wants other weights than {@link CARDS}. */
  weights: Partial<Record<FaultKind, number>> = {},
  /** Kinds dealt first (one card each, in this order), so a short phase is sure to see them. */
  ensure: readonly FaultKind[] = [],
): Fault[] {
  const pool = kinds.filter((k) => k !== 'redis-restart')
  const faults: Fault[] = []
  const wantsRestart = kinds.includes('redis-restart')
  const restartAt = windowMs * rng.range(0.5, 0.7)
  let restarted = false
  let cards: FaultKind[] = []
  let redisPauses = 0
  const factorOffset = rng.int(REDIS_PAUSE_FACTORS.length)
  let t = rng.range(600, 1200)
  let first = true
  while (t < windowMs - 2000) {
    if (cards.length === 0) {
      cards = deck(rng, pool, weights)
      if (first) {
        // Cards are drawn from the end: move one card of each ensured kind there.
        for (const kind of [...ensure].reverse()) {
          const at = cards.lastIndexOf(kind)
          if (at >= 0) cards.push(...cards.splice(at, 1))
        }
      }
      first = false
    }
    const kind: FaultKind =
      wantsRestart && !restarted && t >= restartAt ? 'redis-restart' : (cards.pop() as FaultKind)
    restarted ||= kind === 'redis-restart'
    const fault: Fault = { at: Math.round(t), kind, durationMs: 0, pick: rng.int(1 << 30) }
    switch (kind) {
      case 'redis-pause':
      case 'node-pause':
        fault.factor = REDIS_PAUSE_FACTORS[
          (factorOffset + redisPauses++) % REDIS_PAUSE_FACTORS.length
        ] as number
        fault.durationMs = Math.round(fault.factor * lifetimeMs)
        break
      case 'worker-pause':
        fault.factor = Math.round(rng.range(1.5, 4) * 10) / 10
        fault.durationMs = Math.round(fault.factor * lifetimeMs)
        break
      case 'proxy-delay':
        // Per direction, with up to 25 % jitter: a round trip of at most a third of the lease.
        fault.delayMs = Math.round(rng.range(2, lifetimeMs / 7.5))
        fault.spread = 1 + rng.int(3)
        fault.durationMs = Math.round(rng.range(1000, 2500))
        break
      case 'proxy-blackhole':
        fault.durationMs = Math.round(rng.range(0.5, 3) * lifetimeMs)
        break
      case 'drop-replies':
      case 'reset-after-request':
        fault.durationMs = Math.round(rng.range(0.5, 2) * lifetimeMs)
        break
      case 'worker-kill':
        fault.durationMs = Math.round(rng.range(100, 400))
        break
      case 'redis-restart':
        // An outage: down for 1 to 2 s, then back empty. Waiters ride it out within
        // their retryTimeoutMs (3 s) and get the keys after the restart.
        fault.durationMs = Math.round(rng.range(1000, 2000))
        break
      case 'node-restart':
        // Redlock's delayed restart: a node back empty sooner than a lease after its
        // crash can cost a lease held on a bare majority (see SAFETY.md).
        fault.durationMs = Math.round(rng.range(1.2, 2.5) * lifetimeMs)
        break
      default:
        break
    }
    faults.push(fault)
    t += fault.durationMs + rng.range(500, 1400)
  }
  if (wantsRestart && !restarted) {
    // A short window skipped past the planned moment: restart after the last fault.
    faults.push({
      at: Math.round(Math.min(t, windowMs - 1000)),
      kind: 'redis-restart',
      durationMs: 1000,
      pick: 0,
    })
  }
  return faults
}

/**
 * The freshest holder: a fault on an idle worker teaches little, and the holder
 * that acquired last has most of its critical section ahead, so the fault is most
 * likely to outlast its lease. With no holder, a worker drawn from the plan.
 */
function target(cell: Cell, pick: number): Slot {
  const holders = cell.holders()
  if (holders[0]) return holders[0]
  const alive = cell.slots.filter((s) => !s.worker.exitInfo)
  return alive[pick % alive.length] ?? (cell.slots[0] as Slot)
}

/** Which of a worker's links (one per lock node) a fault hits: the only one outside quorum mode. */
function linkOf(slot: Slot, pick: number): { node: number; link: FaultProxy } {
  const node = (pick >> 4) % slot.links.length
  return { node, link: slot.links[node] as FaultProxy }
}

/**
 * Heals a proxy fault: back to pass, and links reset because the proxy dropped bytes
 * (a real network would have retransmitted them or timed the connection out).
 */
function heal(link: FaultProxy): void {
  link.setMode({ kind: 'pass' })
  link.resetAll()
}

/** Runs one fault to completion (including its heal) and logs both ends with monotonic times. */
export async function inject(cell: Cell, fault: Fault): Promise<void> {
  const log = cell.nemesisLog
  const lock = cell.options.lock
  const base = { kind: fault.kind, planned: fault.at }
  switch (fault.kind) {
    case 'redis-pause': {
      log.write('fault-start', { ...base, pid: lock.pid, factor: fault.factor })
      lock.pause()
      await sleep(fault.durationMs)
      lock.resume()
      break
    }
    case 'redis-restart': {
      log.write('fault-start', { ...base, downMs: fault.durationMs })
      await lock.kill()
      await sleep(fault.durationMs)
      await lock.restart()
      break
    }
    case 'node-pause': {
      const node = fault.pick % cell.options.nodes.length
      const server = cell.options.nodes[node] as RedisServer
      log.write('fault-start', { ...base, node, pid: server.pid, factor: fault.factor })
      server.pause()
      await sleep(fault.durationMs)
      server.resume()
      break
    }
    case 'node-restart': {
      const node = fault.pick % cell.options.nodes.length
      const server = cell.options.nodes[node] as RedisServer
      log.write('fault-start', { ...base, node, pid: server.pid, downMs: fault.durationMs })
      await server.kill()
      await sleep(fault.durationMs)
      await server.restart()
      break
    }
    case 'pubsub-kill': {
      const node = fault.pick % cell.options.nodes.length
      const server = cell.options.nodes[node] as RedisServer
      log.write('fault-start', { ...base, node })
      try {
        const killed = await withTimeout(server.command('CLIENT', 'KILL', 'TYPE', 'pubsub'), 5000)
        log.write('fault-note', { ...base, killed })
      } catch (err) {
        // Not a lock failure: the fault simply did not happen; say so in the log.
        log.write('fault-note', { ...base, failed: String(err) })
      }
      break
    }
    case 'worker-pause': {
      const slot = target(cell, fault.pick)
      const pid = slot.worker.pid
      slot.paused = true
      log.write('fault-start', {
        ...base,
        w: slot.id,
        pid,
        factor: fault.factor,
        keys: [...slot.holding.keys()],
      })
      killQuietly(pid, 'SIGSTOP')
      await sleep(fault.durationMs)
      killQuietly(pid, 'SIGCONT')
      slot.paused = false
      log.write('fault-end', { ...base, w: slot.id, pid })
      return
    }
    case 'worker-kill': {
      const slot = target(cell, fault.pick)
      log.write('fault-start', { ...base, w: slot.id, pid: slot.worker.pid, keys: [...slot.holding.keys()] })
      try {
        await cell.killAndRespawn(slot, fault.durationMs)
      } catch (err) {
        // A respawn that cannot start is a harness failure: logged and surfaced by the run.
        log.write('respawn-failed', { ...base, w: slot.id, message: String(err) })
        cell.problems.push(`respawn of w${slot.id} failed: ${String(err)}`)
      }
      break
    }
    case 'proxy-delay': {
      const slots = [...cell.slots]
      const chosen: { w: number; node: number; link: FaultProxy }[] = []
      for (let i = 0; i < (fault.spread ?? 1) && slots.length > 0; i++) {
        const [s] = slots.splice((fault.pick + i * 7) % slots.length, 1)
        if (s) chosen.push({ w: s.id, ...linkOf(s, fault.pick + (i << 4)) })
      }
      const nodes = cell.options.nodes.length > 1 ? { nodes: chosen.map((c) => c.node) } : {}
      log.write('fault-start', { ...base, ws: chosen.map((c) => c.w), ...nodes, delayMs: fault.delayMs })
      const ms = fault.delayMs ?? 0
      for (const c of chosen) c.link.setMode({ kind: 'delay', ms, jitterMs: ms / 4 })
      await sleep(fault.durationMs)
      // Delayed chunks are still delivered in order, so no reset is needed here.
      for (const c of chosen) c.link.setMode({ kind: 'pass' })
      break
    }
    case 'proxy-blackhole':
    case 'drop-replies':
    case 'reset-after-request': {
      const slot = target(cell, fault.pick)
      const { node, link } = linkOf(slot, fault.pick)
      const at = cell.options.nodes.length > 1 ? { node } : {}
      log.write('fault-start', { ...base, w: slot.id, ...at, keys: [...slot.holding.keys()] })
      link.setMode({ kind: fault.kind === 'proxy-blackhole' ? 'blackhole' : fault.kind })
      await sleep(fault.durationMs)
      heal(link)
      break
    }
  }
  log.write('fault-end', base)
}

/** Plays a plan against the cell's load window; never runs past its end. */
export async function runNemesis(cell: Cell, faults: readonly Fault[]): Promise<void> {
  for (const fault of faults) {
    const wait = cell.startAt + fault.at - monoMs()
    if (wait > 0) await sleep(wait)
    if (monoMs() + fault.durationMs > cell.endAt - 500) break
    await inject(cell, fault)
  }
}
