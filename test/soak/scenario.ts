import path from 'node:path'
import type { Redis } from 'ioredis'
import { type RedisServer, startRedis } from '../helpers/redis-server.js'
import { Cell, type CellOptions } from './cell.js'
import { type CheckResult, check } from './checker.js'
import { type History, readHistory } from './history.js'
import { monoMs } from './log.js'
import { readStore, type StoreState } from './store.js'

/** What every scenario shares: the store Redis, the seed, where logs go. */
export interface SoakContext {
  seed: number
  logDir: string
  store: Redis
  storeUrl: string
}

export type ScenarioOptions = Omit<CellOptions, 'lock' | 'nodes' | 'dir' | 'storeUrl' | 'seed'> & {
  /** Lock nodes: 1 (a plain Redis, the default) or the independent masters of a quorum. */
  nodeCount?: number
}

export interface ScenarioResult {
  run: string
  check: CheckResult
  history: History
  /** Wall time of the scenario, start-up and shutdown included. */
  wallMs: number
  /** Harness problems (a worker that crashed, a respawn that failed): they fail the soak. */
  harnessErrors: string[]
}

/**
 * Starts fresh lock nodes and a cell, lets `drive` inject faults during the load
 * window, shuts everything down and hands the logs and the store to the checker.
 */
export async function runScenario(
  ctx: SoakContext,
  options: ScenarioOptions,
  drive: (cell: Cell) => Promise<void>,
): Promise<ScenarioResult> {
  const began = monoMs()
  const nodes: RedisServer[] = []
  const dir = path.join(ctx.logDir, options.run)
  let cell: Cell | undefined
  try {
    for (let i = 0; i < (options.nodeCount ?? 1); i++) nodes.push(await startRedis())
    const lock = nodes[0] as RedisServer
    cell = await Cell.start({ ...options, lock, nodes, dir, storeUrl: ctx.storeUrl, seed: ctx.seed })
    try {
      await drive(cell)
    } finally {
      for (const node of nodes) {
        if (!node.running) await node.restart().catch(() => {})
        else node.resume()
      }
      await cell.stop()
    }
  } finally {
    await Promise.all(nodes.map((node) => node.stop()))
  }
  const store = new Map<string, StoreState>()
  for (const key of options.keys) store.set(key, await readStore(ctx.store, options.run, key))
  const history = readHistory(
    cell.slots.map((s) => s.logPath),
    cell.nemesisPath,
  )
  const harnessErrors = history.errors
    .filter((e) => e.op === 'main' || e.op === 'critical' || e.op === 'close')
    .map((e) => `${options.run} w${e.w}: ${e.op} ${e.code} ${e.message}`)
  harnessErrors.push(...cell.problems)
  return {
    run: options.run,
    check: check(history, store, options.lifetimeMs),
    history,
    wallMs: monoMs() - began,
    harnessErrors,
  }
}
