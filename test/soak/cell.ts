import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { killQuietly } from '../helpers/cleanup.js'
import { spawnWorker, type Worker } from '../helpers/processes.js'
import { type FaultProxy, startProxy } from '../helpers/proxy.js'
import type { RedisServer } from '../helpers/redis-server.js'
import { withTimeout } from '../helpers/wait.js'
import { LogTail, monoMs, SyncLog } from './log.js'
import type { HoldSpec, Variant } from './variants.js'
import type { WorkerConfig } from './worker.js'

const WORKER_SCRIPT = fileURLToPath(new URL('./worker.ts', import.meta.url))
const READY_TIMEOUT_MS = 20_000
/** After endAt a worker finishes its grant, releases and closes; beyond this it is killed. */
const EXIT_GRACE_MS = 8_000

/** Everything about one worker that the cell and its nemesis need. */
export interface Slot {
  readonly id: number
  /** This worker's link to the first lock node (the only one outside quorum mode). */
  readonly proxy: FaultProxy
  /** One fault proxy per lock node: `links[i]` leads to `nodes[i]`. */
  readonly links: readonly FaultProxy[]
  readonly logPath: string
  readonly variant: Variant
  readonly env: Record<string, string>
  worker: Worker
  incarnation: number
  /** SIGSTOPped by the nemesis right now. */
  paused: boolean
  /** Keys this worker holds according to its log: token and acquisition time. */
  readonly holding: Map<string, { token: string; since: number }>
  readonly tail: LogTail
}

export interface WorkerSpec {
  variant: Variant
  env?: Record<string, string>
  stallMs?: number
  /** The Locker's attemptTimeoutMs (default: a quarter of the lease). */
  attemptTimeoutMs?: number
  thinkMs?: number
  minRounds?: number
  maxRounds?: number
  roundGapMs?: number
  /** How the worker holds its keys (default: exclusive). */
  hold?: HoldSpec
}

export interface CellOptions {
  /** Names the store namespace and the log directory. */
  run: string
  dir: string
  /** The first lock node; the only one outside quorum mode. */
  lock: RedisServer
  /** Every lock node: one plain Redis, or the independent masters of a quorum. */
  nodes: readonly RedisServer[]
  storeUrl: string
  keys: string[]
  seed: number
  /** One entry per worker: its variant, extra environment (faketime) and overrides. */
  workers: WorkerSpec[]
  lifetimeMs: number
  extendIntervalMs: number
  retryTimeoutMs: number | null
  maxRounds: number
  roundGapMs: number
  thinkMs: number
  /** Load duration once every worker is ready. */
  durationMs: number
}

/**
 * The lock nodes (one Redis, or the masters of a quorum), one fault proxy per worker
 * per node, the workers, and the nemesis log. Workers run until a common `endAt`; a
 * respawned worker gets the same one.
 */
export class Cell {
  readonly options: CellOptions
  readonly slots: Slot[] = []
  readonly nemesisLog: SyncLog
  readonly nemesisPath: string
  /** Harness failures (a crashed worker, a straggler, a failed respawn): they fail the soak. */
  readonly problems: string[] = []
  startAt = 0
  endAt = 0

  private constructor(options: CellOptions) {
    this.options = options
    mkdirSync(options.dir, { recursive: true })
    this.nemesisPath = path.join(options.dir, 'nemesis.jsonl')
    this.nemesisLog = new SyncLog(this.nemesisPath)
  }

  static async start(options: CellOptions): Promise<Cell> {
    const cell = new Cell(options)
    for (const [id, spec] of options.workers.entries()) {
      const links: FaultProxy[] = []
      for (const node of options.nodes) links.push(await startProxy({ host: node.host, port: node.port }))
      const proxy = links[0] as FaultProxy
      const logPath = path.join(options.dir, `w${id}.jsonl`)
      const slot: Slot = {
        id,
        proxy,
        links,
        logPath,
        variant: spec.variant,
        env: spec.env ?? {},
        worker: undefined as unknown as Worker,
        incarnation: 0,
        paused: false,
        holding: new Map(),
        tail: new LogTail(logPath),
      }
      cell.slots.push(slot)
    }
    await Promise.all(cell.slots.map((slot) => cell.#spawn(slot)))
    // The load window starts once everybody is ready (start-up on a busy 2-core
    // machine takes a while and varies); the go file tells workers when it ends.
    cell.startAt = monoMs()
    cell.endAt = cell.startAt + options.durationMs
    // Renamed into place, so a worker never reads a half-written file.
    writeFileSync(`${cell.goPath}.tmp`, String(cell.endAt))
    renameSync(`${cell.goPath}.tmp`, cell.goPath)
    cell.nemesisLog.write('load-start', { endAt: cell.endAt })
    return cell
  }

  get goPath(): string {
    return path.join(this.options.dir, 'go')
  }

  /** Reads new log lines and updates which worker holds which key. */
  refresh(): void {
    for (const slot of this.slots) {
      for (const e of slot.tail.read()) {
        const key = e.key as string
        if (e.ev === 'start') slot.holding.clear()
        else if (e.ev === 'acquired' && e.held === true)
          slot.holding.set(key, { token: String(e.token), since: e.t })
        else if ((e.ev === 'release-start' || e.ev === 'lost') && slot.holding.get(key)?.token === e.token) {
          slot.holding.delete(key)
        }
      }
    }
  }

  /** Workers holding a lock right now (by their logs), not paused; the latest acquisition first. */
  holders(): Slot[] {
    this.refresh()
    const since = (s: Slot): number => Math.max(...[...s.holding.values()].map((h) => h.since))
    return this.slots
      .filter((s) => s.holding.size > 0 && !s.paused && !s.worker.exitInfo)
      .sort((a, b) => since(b) - since(a))
  }

  /** SIGKILL (a crash) and start the worker again; returns the killed pid. */
  async killAndRespawn(slot: Slot, downMs: number): Promise<number> {
    const pid = slot.worker.pid
    killQuietly(pid, 'SIGKILL')
    await withTimeout(slot.worker.exited, EXIT_GRACE_MS, `worker ${pid} survived SIGKILL`)
    slot.paused = false
    await new Promise((r) => setTimeout(r, downMs))
    slot.incarnation++
    if (monoMs() < this.endAt - 500) {
      await this.#spawn(slot)
      this.nemesisLog.write('respawned', { w: slot.id, pid: slot.worker.pid })
    }
    return pid
  }

  /** Waits for every worker to finish after endAt; stragglers are killed. Closes the proxies. */
  async stop(): Promise<void> {
    for (const slot of this.slots) {
      for (const link of slot.links) {
        if (link.mode.kind === 'pass') continue
        link.setMode({ kind: 'pass' })
        link.resetAll()
      }
      if (slot.paused) killQuietly(slot.worker.pid, 'SIGCONT')
      slot.paused = false
    }
    const wait = Math.max(0, this.endAt - monoMs()) + EXIT_GRACE_MS
    await Promise.all(
      this.slots.map(async (slot) => {
        try {
          await withTimeout(slot.worker.exited, wait)
        } catch {
          this.nemesisLog.write('straggler-killed', { w: slot.id, pid: slot.worker.pid })
          this.problems.push(`w${slot.id} (pid ${slot.worker.pid}) did not exit in time and was killed`)
          killQuietly(slot.worker.pid, 'SIGKILL')
          await slot.worker.exited
        }
        const exit = slot.worker.exitInfo
        if (exit?.code !== 0 && exit?.signal !== 'SIGKILL') {
          this.nemesisLog.write('worker-failed', { w: slot.id, ...exit, stderr: slot.worker.stderrText() })
          this.problems.push(
            `w${slot.id} exited with ${JSON.stringify(exit)}: ${slot.worker.stderrText().slice(-500)}`,
          )
        }
      }),
    )
    await Promise.all(this.slots.flatMap((s) => s.links.map((link) => link.close())))
    this.nemesisLog.close()
  }

  async #spawn(slot: Slot): Promise<void> {
    const o = this.options
    const spec = o.workers[slot.id]
    const stallMs = spec?.stallMs
    const cfg: WorkerConfig = {
      id: slot.id,
      run: o.run,
      lockUrls: slot.links.map((link) => link.url),
      storeUrl: o.storeUrl,
      keys: o.keys,
      logPath: slot.logPath,
      variant: slot.variant,
      seed: o.seed,
      incarnation: slot.incarnation,
      goPath: this.goPath,
      lifetimeMs: o.lifetimeMs,
      extendIntervalMs: o.extendIntervalMs,
      retryTimeoutMs: o.retryTimeoutMs,
      minRounds: spec?.minRounds ?? 1,
      maxRounds: spec?.maxRounds ?? o.maxRounds,
      roundGapMs: spec?.roundGapMs ?? o.roundGapMs,
      thinkMs: spec?.thinkMs ?? o.thinkMs,
      ...(stallMs === undefined ? {} : { stallMs }),
      ...(spec?.attemptTimeoutMs === undefined ? {} : { attemptTimeoutMs: spec.attemptTimeoutMs }),
      ...(spec?.hold === undefined ? {} : { hold: spec.hold }),
      // Two workers of every four drive the lock with Valkey GLIDE, the others with
      // ioredis (control 3 stalls inside ioredis, so its workers stay on ioredis).
      client: stallMs === undefined && slot.id % 4 >= 2 ? 'valkey-glide' : 'ioredis',
    }
    slot.worker = spawnWorker(WORKER_SCRIPT, [], { ...slot.env, SOAK_WORKER: JSON.stringify(cfg) })
    slot.holding.clear()
    await slot.worker.waitForLine((line) => line === 'ready', READY_TIMEOUT_MS)
  }
}
